/**
 * String formats shared by the three kinds: a pattern (a safe charset, so no value can inject into a shell, a Nix
 * expression, a flake URL or a path) plus CEL rules with TypeScript twins for what a pattern cannot say well.
 * Every pattern is anchored and valid in both RE2 (API server) and JavaScript.
 */
import { isIP } from "./net.js";
import type { Rule } from "./schema.js";

export interface StringFormat {
  readonly maxLength: number;
  readonly pattern?: string;
  readonly patternName?: string;
  readonly patternMessage?: string;
  readonly rules?: readonly Rule<string>[];
}

const DNS_LABEL_63 = "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?";

/** Machine hostnames: a DNS-1123 subdomain (labels of at most 63 characters, dots allowed), at most 253. */
export const HOSTNAME = {
  maxLength: 253,
  pattern: `^${DNS_LABEL_63}([.]${DNS_LABEL_63})*$`,
  patternName: "hostname",
  patternMessage:
    "must be a lowercase DNS-1123 hostname: labels of a-z, 0-9 and '-' (at most 63 characters, starting and ending with a letter or digit) separated by '.'",
} as const satisfies StringFormat;

/** Names of Kubernetes objects (Secrets, Machines, ...): a DNS-1123 subdomain as Kubernetes validates it. */
export const OBJECT_NAME = {
  maxLength: 253,
  pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
  patternName: "objectName",
  patternMessage:
    "must be a Kubernetes object name (DNS-1123 subdomain): lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
} as const satisfies StringFormat;

/** Keys of a Secret's data. */
export const SECRET_KEY = {
  maxLength: 253,
  pattern: "^[-._a-zA-Z0-9]+$",
  patternName: "secretKey",
  patternMessage: "must be a Secret key: letters, digits, '-', '_' and '.'",
} as const satisfies StringFormat;

/** A POSIX portable user name; the first character excludes '-' so it can never be read as an option. */
export const SSH_USER = {
  maxLength: 32,
  pattern: "^[a-z_][a-z0-9_-]{0,31}$",
  patternName: "posixUserName",
  patternMessage:
    "must be a POSIX user name: lowercase letters, digits, '_' and '-', starting with a letter or '_', at most 32 characters",
} as const satisfies StringFormat;

export const isIPRule: Rule<string> = {
  name: "ipAddress",
  rule: "isIP(self)",
  message: "must be an IPv4 or IPv6 address literal (no zone, not IPv4-mapped, no leading zeros)",
  check: isIP,
};

/** IP address literals; 45 characters is the longest IPv6 text form. */
export const IP_ADDRESS = { maxLength: 45, rules: [isIPRule] } as const satisfies StringFormat;

const URL_HOST = "(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?)";

/** Git repositories: http(s) URLs, no credentials, query, fragment, whitespace or control characters. */
export const GIT_URL = {
  maxLength: 2048,
  pattern: `^https?://${URL_HOST}(:[0-9]{1,5})?(/[-A-Za-z0-9._~%+@:/]*)?$`,
  patternName: "gitUrl",
  patternMessage:
    "must be an http:// or https:// URL (host, optional port and path; no credentials, query, fragment, whitespace or control characters)",
  rules: [
    {
      name: "noCredentialsInUrl",
      rule: "!self.matches('^[A-Za-z][-A-Za-z0-9+.]*://[^/]*@')",
      message: "must not contain credentials (user@ or user:password@); put them in the Secret named by credentialsRef",
      check: (s) => !/^[A-Za-z][-A-Za-z0-9+.]*:\/\/[^/]*@/u.test(s),
    },
    {
      name: "noDotSegmentsInUrl",
      rule: "!self.matches('^[A-Za-z][-A-Za-z0-9+.]*://[^/]*(/[^/]*)*/[.][.]?(/|$)')",
      message: "must not contain '.' or '..' path segments",
      check: (s) => !/^[A-Za-z][-A-Za-z0-9+.]*:\/\/[^/]*(\/[^/]*)*\/\.\.?(\/|$)/u.test(s),
    },
  ],
} as const satisfies StringFormat;

/** A branch, tag, full ref name or commit id, restricted to a charset that is safe everywhere. */
export const GIT_REF = {
  maxLength: 255,
  pattern: "^[A-Za-z0-9_][-A-Za-z0-9_./]*$",
  patternName: "gitRefCharset",
  patternMessage:
    "must be a git branch, tag or commit: letters, digits, '-', '_', '.' and '/', starting with a letter, digit or '_'",
  rules: [
    {
      name: "gitRefName",
      rule: "!self.contains('..') && !self.contains('//') && !self.contains('/.') && !self.endsWith('/') && !self.endsWith('.') && !self.endsWith('.lock')",
      message: "must be a valid git ref name: no '..', '//' or '/.', and not ending with '/', '.' or '.lock'",
      check: (s) =>
        !s.includes("..") &&
        !s.includes("//") &&
        !s.includes("/.") &&
        !s.endsWith("/") &&
        !s.endsWith(".") &&
        !s.endsWith(".lock"),
    },
  ],
} as const satisfies StringFormat;

const FLAKE_DIR_SEGMENT = "[A-Za-z0-9_][-A-Za-z0-9_.]*";
/** Attribute names: one Nix attribute (no '.', no quotes), so every DNS-1123 label (a Machine name) is one. */
const FLAKE_ATTR = "[A-Za-z0-9_][-A-Za-z0-9_]{0,62}";

/** `#attr`, `.#attr`, `./dir#attr` or `dir/sub#attr`. */
export const FLAKE_REF = {
  maxLength: 1024,
  pattern: `^([.]|([.]/)?${FLAKE_DIR_SEGMENT}(/${FLAKE_DIR_SEGMENT})*)?#${FLAKE_ATTR}$`,
  patternName: "flakeRef",
  patternMessage:
    "must be a flake reference '#attr', '.#attr' or 'relative/dir#attr': dir segments of letters, digits, '-', '_' and '.' (not starting with '.'), attr of letters, digits, '-' and '_' (at most 63 characters)",
} as const satisfies StringFormat;

const PATH_CHARSET = {
  pattern: "^[-._a-zA-Z0-9/]+$",
  patternName: "pathCharset",
  patternMessage: "must be a path of letters, digits, '-', '_', '.' and '/' (no whitespace or control characters)",
} as const;

const noDotSegments: Rule<string> = {
  name: "noDotSegments",
  rule: "!self.matches('(^|/)[.][.]?(/|$)')",
  message: "must not contain '.' or '..' segments",
  check: (s) => !/(^|\/)\.\.?(\/|$)/u.test(s),
};

const noEmptySegments: Rule<string> = {
  name: "noEmptySegments",
  rule: "!self.contains('//')",
  message: "must not contain '//'",
  check: (s) => !s.includes("//"),
};

const noTrailingSlash: Rule<string> = {
  name: "noTrailingSlash",
  rule: "!self.endsWith('/')",
  message: "must not end with '/'",
  check: (s) => !s.endsWith("/"),
};

/** A path relative to the flake source: no leading '/' or '-', no '.'/'..' segments, no '//', no trailing '/'. */
export const RELATIVE_PATH = {
  maxLength: 1024,
  ...PATH_CHARSET,
  rules: [
    {
      name: "relativePath",
      rule: "!self.startsWith('/')",
      message: "must be a relative path (no leading '/')",
      check: (s) => !s.startsWith("/"),
    },
    { ...noDotSegments, message: "must be a relative path without '.' or '..' segments" },
    noEmptySegments,
    noTrailingSlash,
    {
      name: "noLeadingDash",
      rule: "!self.startsWith('-')",
      message: "must not start with '-' (it could be read as a command-line option)",
      check: (s) => !s.startsWith("-"),
    },
  ],
} as const satisfies StringFormat;

/** An absolute path on the machine: leading '/', no '.'/'..' segments, no '//', no trailing '/'. */
export const ABSOLUTE_PATH = {
  maxLength: 1024,
  ...PATH_CHARSET,
  rules: [
    {
      name: "absolutePath",
      rule: "self.startsWith('/')",
      message: "must be an absolute path (starting with '/')",
      check: (s) => s.startsWith("/"),
    },
    { ...noDotSegments, message: "must be an absolute path without '.' or '..' segments" },
    noEmptySegments,
    noTrailingSlash,
  ],
} as const satisfies StringFormat;

/** Octal file mode of 3 digits with an optional leading 0; no setuid, setgid or sticky bits. */
export const FILE_MODE = {
  maxLength: 4,
  pattern: "^0?[0-7]{3}$",
  patternName: "fileMode",
  patternMessage: 'must be an octal file mode such as "0400" or "600" (no setuid, setgid or sticky bits)',
} as const satisfies StringFormat;

/**
 * An OpenSSH public key line: key type, base64 key, optional comment of letters, digits, spaces and `-._@+=:`.
 * 4096 characters hold an RSA key of 16384 bits.
 */
export const SSH_PUBLIC_KEY = {
  maxLength: 4096,
  pattern:
    "^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh[.]com|sk-ecdsa-sha2-nistp256@openssh[.]com) [A-Za-z0-9+/]+={0,2}( [-A-Za-z0-9._@+=: ]*)?$",
  patternName: "sshPublicKey",
  patternMessage:
    "must be an OpenSSH public key line: '<type> <base64>' with an optional comment of letters, digits, spaces and -._@+=: (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521 or sk-* types)",
} as const satisfies StringFormat;

/** A Linux network interface name (at most 15 characters). */
export const INTERFACE_NAME = {
  maxLength: 15,
  pattern: "^[A-Za-z0-9][-A-Za-z0-9_.]{0,14}$",
  patternName: "interfaceName",
  patternMessage:
    "must be a network interface name: letters, digits, '-', '_' and '.', starting with a letter or digit, at most 15 characters",
} as const satisfies StringFormat;

export const LABEL_KEY_PATTERN =
  "^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";

/** A label key: optional DNS prefix and '/', then a name of at most 63 characters. */
export const LABEL_KEY = {
  maxLength: 317,
  pattern: LABEL_KEY_PATTERN,
  patternName: "labelKey",
  patternMessage:
    "must be a label key: an optional DNS-1123 prefix and '/', then at most 63 letters, digits, '-', '_' or '.'",
} as const satisfies StringFormat;

/** A label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit. */
export const LABEL_VALUE = {
  maxLength: 63,
  pattern: "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$",
  patternName: "labelValue",
  patternMessage:
    "must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
} as const satisfies StringFormat;

/** Regular expressions of every pattern, compiled once (JavaScript twins of the API server's RE2 matches). */
const compiled = new Map<string, RegExp>();

export function patternRegExp(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp(pattern, "u");
    compiled.set(pattern, re);
  }
  return re;
}

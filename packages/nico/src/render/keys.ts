/** SSH keys for cluster.nix: public key lines derived from the machines' private keys, and their validation. */
import ssh2, { type ParsedKey } from "ssh2";
import { formats } from "@nio/api";

/** Raised for a private key that cannot give a public key (malformed, encrypted, or a public key). */
export class InvalidPrivateKeyError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InvalidPrivateKeyError";
  }
}

/**
 * The OpenSSH public key line ("ssh-ed25519 AAAA…", no comment) of an unencrypted private key in OpenSSH, PEM (PKCS#1,
 * PKCS#8) or PPK form. The comment is dropped so the same key held by several Machines gives the same line. Throws an
 * {@link InvalidPrivateKeyError} (never quoting the key) when the key is malformed, encrypted or not a private key.
 */
export function publicKeyFromPrivate(privateKey: Buffer): string {
  const parsed = parseKey(privateKey);
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase/i.test(parsed.message);
    throw new InvalidPrivateKeyError(
      encrypted
        ? "the SSH private key is encrypted; NICO needs a key without a passphrase"
        : `the SSH private key cannot be parsed: ${parsed.message}`,
      { cause: parsed },
    );
  }
  const key = parsed;
  if (!key) throw new InvalidPrivateKeyError("the SSH private key file holds no key");
  if (!key.isPrivateKey()) throw new InvalidPrivateKeyError("expected an SSH private key, got a public key");
  return `${key.type} ${key.getPublicSSH().toString("base64")}`;
}

/** ssh2's parseKey; the first key when a file holds several (ssh2 then returns an array its types do not admit). */
function parseKey(data: Buffer | string): ParsedKey | Error | undefined {
  const parsed: unknown = ssh2.utils.parseKey(data);
  if (Array.isArray(parsed)) return parsed[0] as ParsedKey | undefined;
  return parsed as ParsedKey | Error;
}

const SSH_PUBLIC_KEY_RE = new RegExp(formats.SSH_PUBLIC_KEY.pattern, "u");

/**
 * Why `line` is not an acceptable authorized key, or undefined when it is: one line, at most 4096 characters, of an
 * allowed key type with a safe comment (the API's sshPublicKey format), whose key blob ssh2 parses as that same type.
 */
export function authorizedKeyProblem(line: unknown): { rule: string; message: string } | undefined {
  if (typeof line !== "string") return { rule: "sshPublicKey", message: "must be a string" };
  if (/[\r\n]/.test(line)) return { rule: "singleLine", message: "must not contain a newline or carriage return" };
  if (line.length > formats.SSH_PUBLIC_KEY.maxLength || !SSH_PUBLIC_KEY_RE.test(line)) {
    return { rule: "sshPublicKey", message: formats.SSH_PUBLIC_KEY.patternMessage };
  }
  const key = parseKey(line);
  if (!key || key instanceof Error || key.isPrivateKey() || key.type !== line.split(" ")[0]) {
    return { rule: "sshPublicKey", message: "must be an OpenSSH public key whose key data parses as its key type" };
  }
  return undefined;
}

/** `<type> <base64>` of a valid key line: two lines for the same key with different comments are the same key. */
export function keyIdentity(line: string): string {
  return line.split(" ").slice(0, 2).join(" ");
}

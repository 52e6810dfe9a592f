/**
 * The validation table: bad objects (each names the field and rule it breaks) and good variations. The same cases
 * feed the runtime validator (validate.test.ts) and the real API server (apiserver.test.ts).
 */
import type { Edit, KindName } from "./support.js";

export interface BadCase extends Edit {
  kind: KindName;
  name: string;
  /** The field the refusal must name. */
  field: string;
  /** The rule the runtime validator reports on that field. */
  rule: string;
}

export interface GoodCase extends Edit {
  kind: KindName;
  name: string;
}

const long = (n: number, c = "a"): string => c.repeat(n);
const ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/** Rows of [name, path to set, value, rule, field reported (default: the path)]. */
function cases(kind: KindName, rows: [string, string, unknown, string, string?][]): BadCase[] {
  return rows.map(([name, path, value, rule, field]) => ({
    kind,
    name,
    field: field ?? path,
    rule,
    set: { [path]: value },
  }));
}

const machine = cases("Machine", [
  ["hostname with uppercase", "spec.hostname", "Worker-01", "hostname"],
  ["hostname with underscore", "spec.hostname", "worker_01", "hostname"],
  ["hostname with leading dash", "spec.hostname", "-worker", "hostname"],
  ["hostname with trailing dash", "spec.hostname", "worker-", "hostname"],
  ["hostname with empty label", "spec.hostname", "a..b", "hostname"],
  ["hostname with 64-character label", "spec.hostname", `${long(64)}.local`, "hostname"],
  ["hostname with whitespace", "spec.hostname", "worker 01", "hostname"],
  ["hostname with shell metacharacters", "spec.hostname", "worker-01;reboot", "hostname"],
  [
    "hostname longer than 253",
    "spec.hostname",
    `${long(60)}.${long(60)}.${long(60)}.${long(60)}.${long(10)}`,
    "maxLength",
  ],
  ["hostname missing", "spec.hostname", undefined, "required"],
  ["hostname not a string", "spec.hostname", 42, "type"],
  ["ipAddress octet > 255", "spec.ipAddress", "192.168.1.256", "ipAddress"],
  ["ipAddress with leading zero", "spec.ipAddress", "192.168.01.1", "ipAddress"],
  ["ipAddress IPv4-mapped IPv6", "spec.ipAddress", "::ffff:192.168.1.1", "ipAddress"],
  ["ipAddress with zone", "spec.ipAddress", "fe80::1%eth0", "ipAddress"],
  ["ipAddress a host name", "spec.ipAddress", "example.com", "ipAddress"],
  ["ipAddress with trailing space", "spec.ipAddress", "192.168.1.1 ", "ipAddress"],
  ["ipAddress too long", "spec.ipAddress", `${long(40, "1")}.1.1.1`, "maxLength"],
  ["sshUser with uppercase", "spec.sshUser", "Root", "posixUserName"],
  ["sshUser an ssh option", "spec.sshUser", "-oProxyCommand=reboot", "posixUserName"],
  ["sshUser with space", "spec.sshUser", "user name", "posixUserName"],
  ["sshUser empty", "spec.sshUser", "", "posixUserName"],
  ["sshUser longer than 32", "spec.sshUser", long(33), "maxLength"],
  ["sshPort 0", "spec.sshPort", 0, "minimum"],
  ["sshPort 65536", "spec.sshPort", 65536, "maximum"],
  ["sshPort a string", "spec.sshPort", "22", "type"],
  ["sshPort not an integer", "spec.sshPort", 22.5, "type"],
  ["sshKeySecretRef.name not a DNS name", "spec.sshKeySecretRef.name", "Worker_Key", "objectName"],
  ["sshKeySecretRef.key with '/'", "spec.sshKeySecretRef.key", "keys/id", "secretKey"],
  ["sshKeySecretRef without name", "spec.sshKeySecretRef.name", undefined, "required"],
  ["sshHostKey not a key", "spec.sshHostKey", "not a key", "sshPublicKey"],
  ["sshHostKey with a newline", "spec.sshHostKey", `${ED25519}\n${ED25519}`, "sshPublicKey"],
  ["sshHostKey too long", "spec.sshHostKey", `ssh-rsa ${long(16400, "A")}`, "maxLength"],
  ["sshHostKey oversized key blob", "spec.sshHostKey", `ssh-rsa ${long(10000, "A")}`, "maxLength"],
  ["sshHostKey comment with a pipe", "spec.sshHostKey", `${ED25519} x | touch /tmp/pwned`, "sshPublicKey"],
  ["sshHostKey comment with &&", "spec.sshHostKey", `${ED25519} x && touch /tmp/pwned`, "sshPublicKey"],
  ["sshHostKey comment with $()", "spec.sshHostKey", `${ED25519} $(id)`, "sshPublicKey"],
]);

const F = "spec.additionalFiles";
const H = "spec.hostFiles";
const hostFile = { path: "/var/lib/nico/join-token", value: { secretRef: { name: "join-token" } } };

/** A bad hostFiles[0] entry; the error is reported on the entry's `field` (path, mode or value). */
function hostFileCases(rows: [string, Record<string, unknown>, "path" | "mode" | "value", string][]): BadCase[] {
  return rows.map(([name, entry, field, rule]) => ({
    kind: "NixosConfiguration",
    name,
    field: `${H}[0].${field}`,
    rule,
    set: { [`${H}[0]`]: entry },
  }));
}

const hostFiles = hostFileCases([
  ["hostFiles path relative", { ...hostFile, path: "var/lib/x" }, "path", "absolutePath"],
  ["hostFiles path '..'", { ...hostFile, path: "/var/lib/../etc/shadow" }, "path", "noDotSegments"],
  ["hostFiles path '/'", { ...hostFile, path: "/" }, "path", "noTrailingSlash"],
  ["hostFiles path '//'", { ...hostFile, path: "//etc/x" }, "path", "noEmptySegments"],
  ["hostFiles path with space", { ...hostFile, path: "/etc/my file" }, "path", "pathCharset"],
  ["hostFiles mode not octal", { ...hostFile, mode: "0800" }, "mode", "fileMode"],
  ["hostFiles mode with sticky bit", { ...hostFile, mode: "1777" }, "mode", "fileMode"],
  ["hostFiles mode 0o40", { ...hostFile, mode: "0o40" }, "mode", "fileMode"],
  ["hostFiles mode 0o400 (too long)", { ...hostFile, mode: "0o400" }, "mode", "maxLength"],
  ["hostFiles mode a number", { ...hostFile, mode: 400 }, "mode", "type"],
  ["hostFiles value missing", { path: hostFile.path }, "value", "required"],
  [
    "hostFiles inline and secretRef",
    { ...hostFile, value: { inline: "x", secretRef: { name: "s" } } },
    "value",
    "exactlyOneHostFileValue",
  ],
  [
    "hostFiles nixosFacter (additionalFiles only)",
    { ...hostFile, value: { nixosFacter: true } },
    "value",
    "exactlyOneHostFileValue",
  ],
]);

const nixosConfiguration: BadCase[] = [
  ...hostFiles,
  ...cases("NixosConfiguration", [
    ["gitRepo scp-like ssh", "spec.gitRepo", "git@github.com:org/repo.git", "gitUrl"],
    ["gitRepo ssh://", "spec.gitRepo", "ssh://github.com/org/repo.git", "gitUrl"],
    ["gitRepo ftp://", "spec.gitRepo", "ftp://github.com/org/repo.git", "gitUrl"],
    ["gitRepo file://", "spec.gitRepo", "file:///etc/nixos", "gitUrl"],
    ["gitRepo with user:password", "spec.gitRepo", "https://user:secret@github.com/org/repo.git", "noCredentialsInUrl"],
    ["gitRepo with .. segments", "spec.gitRepo", "https://github.com/org/repo.git/../../../etc", "noDotSegmentsInUrl"],
    ["gitRepo ending in /..", "spec.gitRepo", "https://github.com/org/..", "noDotSegmentsInUrl"],
    ["gitRepo with a . segment", "spec.gitRepo", "https://github.com/./org/repo.git", "noDotSegmentsInUrl"],
    ["gitRepo with token@", "spec.gitRepo", "https://ghp_token@github.com/org/repo.git", "noCredentialsInUrl"],
    ["gitRepo with query", "spec.gitRepo", "https://github.com/org/repo.git?ref=x", "gitUrl"],
    ["gitRepo with whitespace", "spec.gitRepo", "https://github.com/org/my repo.git", "gitUrl"],
    ["gitRepo with newline", "spec.gitRepo", "https://github.com/org/repo.git\n--upload-pack=x", "gitUrl"],
    ["gitRepo too long", "spec.gitRepo", `https://github.com/${long(2040)}`, "maxLength"],
    ["gitRepo missing", "spec.gitRepo", undefined, "required"],
    ["ref with '..'", "spec.ref", "main..evil", "gitRefName"],
    ["ref an option", "spec.ref", "--upload-pack=reboot", "gitRefCharset"],
    ["ref with space", "spec.ref", "feature branch", "gitRefCharset"],
    ["ref ending in .lock", "spec.ref", "refs/heads/x.lock", "gitRefName"],
    ["ref with @{", "spec.ref", "main@{1}", "gitRefCharset"],
    ["ref with hidden component", "spec.ref", "refs/.hidden", "gitRefName"],
    ["ref too long", "spec.ref", long(256), "maxLength"],
    ["credentialsRef.name not a DNS name", "spec.credentialsRef.name", "Git_Credentials", "objectName"],
    ["configurationSubdir absolute", "spec.configurationSubdir", "/etc/nixos", "relativePath"],
    ["configurationSubdir '..'", "spec.configurationSubdir", "../outside", "noDotSegments"],
    ["configurationSubdir inner '..'", "spec.configurationSubdir", "a/../../b", "noDotSegments"],
    ["configurationSubdir './'", "spec.configurationSubdir", "./nix", "noDotSegments"],
    ["configurationSubdir '//'", "spec.configurationSubdir", "a//b", "noEmptySegments"],
    ["configurationSubdir trailing '/'", "spec.configurationSubdir", "nix/", "noTrailingSlash"],
    ["configurationSubdir an option", "spec.configurationSubdir", "--help", "noLeadingDash"],
    ["configurationSubdir with space", "spec.configurationSubdir", "my dir", "pathCharset"],
    ["configurationSubdir with newline", "spec.configurationSubdir", "a\nb", "pathCharset"],
    ["configurationSubdir with NUL", "spec.configurationSubdir", "a\u0000b", "pathCharset"],
    ["configurationSubdir too long", "spec.configurationSubdir", long(1025), "maxLength"],
    ["flake without '#'", "spec.flake", "worker", "flakeRef"],
    ["flake without attr", "spec.flake", ".#", "flakeRef"],
    ["flake attr path", "spec.flake", "#nixosConfigurations.worker", "flakeRef"],
    ["flake with shell", "spec.flake", "#worker;reboot", "flakeRef"],
    ["flake with command substitution", "spec.flake", "#$(reboot)", "flakeRef"],
    ["flake dir '..'", "spec.flake", "../x#worker", "flakeRef"],
    ["flake dir absolute", "spec.flake", "/etc/nixos#worker", "flakeRef"],
    ["flake remote ref", "spec.flake", "github:org/repo#worker", "flakeRef"],
    ["flake attr with quote", "spec.flake", "#work'er", "flakeRef"],
    ["flake attr longer than 63", "spec.flake", `#${long(64)}`, "flakeRef"],
    ["flake missing", "spec.flake", undefined, "required"],
    [
      "onRemoveFlake the seed fragment (a file, not a flake ref)",
      "spec.onRemoveFlake",
      "hosts/minimal.nix",
      "flakeRef",
    ],
    ["machineRef missing", "spec.machineRef", undefined, "required"],
    ["machineRef.name not a DNS name", "spec.machineRef.name", "Worker 01", "objectName"],
    ["fullInstall a string", "spec.fullInstall", "yes", "type"],
    ["suspend a string", "spec.suspend", "true", "type"],
    ["additionalFiles path absolute", `${F}[0].path`, "/etc/passwd", "relativePath"],
    ["additionalFiles path '..'", `${F}[1].path`, "../flake.nix", "noDotSegments"],
    ["additionalFiles path escaping", `${F}[1].path`, "config/../../x", "noDotSegments"],
    ["additionalFiles path a directory", `${F}[1].path`, "config/", "noTrailingSlash"],
    ["additionalFiles path an option", `${F}[1].path`, "-rf", "noLeadingDash"],
    ["additionalFiles path empty", `${F}[1].path`, "", "pathCharset"],
    ["additionalFiles path missing", `${F}[1].path`, undefined, "required"],
    ["additionalFiles duplicate path", `${F}[1].path`, "secrets/database-password", "duplicate", `${F}[1]`],
    ["additionalFiles value empty", `${F}[1].value`, {}, "exactlyOneFileValue"],
    [
      "additionalFiles inline and nixosFacter",
      `${F}[1].value`,
      { inline: "x", nixosFacter: true },
      "exactlyOneFileValue",
    ],
    [
      "additionalFiles inline and secretRef",
      `${F}[1].value`,
      { inline: "x", secretRef: { name: "s" } },
      "exactlyOneFileValue",
    ],
    [
      "additionalFiles nixosFacter false only",
      `${F}[2].value.nixosFacter`,
      false,
      "exactlyOneFileValue",
      `${F}[2].value`,
    ],
    ["additionalFiles secretRef.key with '/'", `${F}[0].value.secretRef.key`, "a/b", "secretKey"],
    ["additionalFiles secretRef.name not a DNS name", `${F}[0].value.secretRef.name`, "DB", "objectName"],
    ["additionalFiles inline too long", `${F}[1].value.inline`, long(262145), "maxLength"],
  ]),
  {
    kind: "NixosConfiguration",
    name: "additionalFiles more than 64",
    field: F,
    rule: "maxItems",
    set: { [F]: Array.from({ length: 65 }, (_, i) => ({ path: `f${i}`, value: { inline: "x" } })) },
  },
];
const CP = "spec.controlPlane";
const DP = "spec.dataPlane";
const sel = (role: string): unknown => ({ matchLabels: { role } });

const kubernetesCluster: BadCase[] = [
  ...cases("KubernetesCluster", [
    ["name longer than 63 (a label value)", "metadata.name", long(64), "maxLength"],
    ["gitRepo with credentials", "spec.gitRepo", "https://user:pw@github.com/org/repo.git", "noCredentialsInUrl"],
    ["configurationSubdir absolute", "spec.configurationSubdir", "/nix", "relativePath"],
    ["configurationSubdir '..'", "spec.configurationSubdir", "nix/../..", "noDotSegments"],
    ["controlPlane missing", CP, undefined, "required"],
    ["controlPlane count missing with selector", `${CP}.count`, undefined, "countRequiredWithSelector"],
    ["controlPlane count 0", `${CP}.count`, 0, "minimum"],
    ["controlPlane count 8", `${CP}.count`, 8, "maximum"],
    ["controlPlane count a string", `${CP}.count`, "3", "type"],
    ["dataPlane count 1001", `${DP}.count`, 1001, "maximum"],
    ["dataPlane count -1", `${DP}.count`, -1, "minimum"],
    ["empty selector", `${CP}.machineSelector`, {}, "nonEmptySelector"],
    ["empty matchLabels", `${CP}.machineSelector`, { matchLabels: {} }, "nonEmptySelector"],
    ["matchLabels bad key", `${CP}.machineSelector.matchLabels`, { "bad key!": "x" }, "labelKeys"],
    ["matchLabels bad value", `${CP}.machineSelector.matchLabels.role`, "not valid!", "labelValue"],
    ["matchExpressions unknown operator", `${CP}.machineSelector.matchExpressions[0].operator`, "Equals", "enum"],
    ["vip not an IP", "spec.vip", "192.168.1.300", "ipAddress"],
    ["vip a host name", "spec.vip", "api.example.com", "ipAddress"],
    ["network.prefixLength 0", "spec.network.prefixLength", 0, "minimum"],
    ["network.prefixLength 129", "spec.network.prefixLength", 129, "maximum"],
    ["network.virtualRouterId 0", "spec.network.virtualRouterId", 0, "minimum"],
    ["network.virtualRouterId 256", "spec.network.virtualRouterId", 256, "maximum"],
    ["network.interface with shell", "spec.network.interface", "eth0;reboot", "interfaceName"],
    ["network.interface longer than 15", "spec.network.interface", long(16), "maxLength"],
    ["network.gateway not an IP", "spec.network.gateway", "router", "ipAddress"],
    [
      "network.nameservers not an IP",
      "spec.network.nameservers",
      ["8.8.8.8", "dns.google"],
      "ipAddress",
      "spec.network.nameservers[1]",
    ],
    ["rollout.maxUnavailable 0", "spec.rollout.maxUnavailable", 0, "minimum"],
    ["suspend a string", "spec.suspend", "no", "type"],
  ]),
  {
    kind: "KubernetesCluster",
    name: "controlPlane with neither machines nor selector",
    field: CP,
    rule: "machinesXorSelector",
    set: { [CP]: { count: 3 } },
  },
  {
    kind: "KubernetesCluster",
    name: "controlPlane with both machines and selector",
    field: CP,
    rule: "machinesXorSelector",
    set: { [`${CP}.machines`]: ["cp-01", "cp-02", "cp-03"] },
  },
  {
    kind: "KubernetesCluster",
    name: "controlPlane count differs from machines",
    field: `${CP}.count`,
    rule: "countMatchesMachines",
    set: { [CP]: { machines: ["cp-01", "cp-02"], count: 3 } },
  },
  {
    kind: "KubernetesCluster",
    name: "controlPlane machines empty",
    field: `${CP}.machines`,
    rule: "minItems",
    set: { [CP]: { machines: [] } },
  },
  {
    kind: "KubernetesCluster",
    name: "controlPlane more than 7 machines",
    field: `${CP}.machines`,
    rule: "maxItems",
    set: { [CP]: { machines: Array.from({ length: 8 }, (_, i) => `cp-0${i}`) } },
  },
  {
    kind: "KubernetesCluster",
    name: "controlPlane duplicate machine",
    field: `${CP}.machines[1]`,
    rule: "duplicate",
    set: { [CP]: { machines: ["cp-01", "cp-01"] } },
  },
  {
    kind: "KubernetesCluster",
    name: "controlPlane machine name not a DNS name",
    field: `${CP}.machines[0]`,
    rule: "objectName",
    set: { [CP]: { machines: ["CP_01"] } },
  },
  {
    kind: "KubernetesCluster",
    name: "machine in both control plane and data plane",
    field: `${DP}.machines`,
    rule: "disjointMachines",
    set: { [CP]: { machines: ["cp-01"] }, [DP]: { machines: ["cp-01", "worker-01"] } },
  },
  {
    kind: "KubernetesCluster",
    name: "matchExpressions In without values",
    field: `${CP}.machineSelector.matchExpressions[0].values`,
    rule: "selectorValues",
    set: { [`${CP}.machineSelector`]: { matchExpressions: [{ key: "role", operator: "In" }] } },
  },
  {
    kind: "KubernetesCluster",
    name: "matchExpressions Exists with values",
    field: `${CP}.machineSelector.matchExpressions[0].values`,
    rule: "selectorValues",
    set: { [`${CP}.machineSelector`]: { matchExpressions: [{ key: "role", operator: "Exists", values: ["x"] }] } },
  },
  {
    kind: "KubernetesCluster",
    name: "IPv4 vip with prefixLength 33",
    field: "spec.network.prefixLength",
    rule: "ipv4PrefixLength",
    set: { "spec.vip": "192.168.1.100", "spec.network.prefixLength": 33 },
  },
  {
    kind: "KubernetesCluster",
    name: "IPv4 gateway with prefixLength 64",
    field: "spec.network.prefixLength",
    rule: "ipv4PrefixLength",
    set: { "spec.network": { gateway: "192.168.1.1", prefixLength: 64 } },
  },
  {
    kind: "KubernetesCluster",
    name: "dataPlane selector without count",
    field: `${DP}.count`,
    rule: "countRequiredWithSelector",
    set: { [DP]: { machineSelector: sel("worker") } },
  },
];

export const BAD_CASES: BadCase[] = [...machine, ...nixosConfiguration, ...kubernetesCluster];

export const GOOD_CASES: GoodCase[] = [
  { kind: "Machine", name: "seed Machine unchanged", set: {} },
  { kind: "Machine", name: "IPv6 address", set: { "spec.ipAddress": "2001:db8::10" } },
  { kind: "Machine", name: "IPv6 with embedded IPv4", set: { "spec.ipAddress": "64:ff9b::192.0.2.33" } },
  { kind: "Machine", name: "no ipAddress", set: { "spec.ipAddress": undefined } },
  { kind: "Machine", name: "hostname with dots", set: { "spec.hostname": "cp-01.lab.example.com" } },
  { kind: "Machine", name: "hostname an IP", set: { "spec.hostname": "192.168.1.100" } },
  { kind: "Machine", name: "non-root user", set: { "spec.sshUser": "deploy_user-2" } },
  { kind: "Machine", name: "user starting with _", set: { "spec.sshUser": "_nio" } },
  { kind: "Machine", name: "port 2222", set: { "spec.sshPort": 2222 } },
  { kind: "Machine", name: "port 65535", set: { "spec.sshPort": 65535 } },
  { kind: "Machine", name: "no sshKeySecretRef", set: { "spec.sshKeySecretRef": undefined } },
  { kind: "Machine", name: "secret key", set: { "spec.sshKeySecretRef.key": "id_ed25519" } },
  { kind: "Machine", name: "pinned host key", set: { "spec.sshHostKey": ED25519 } },
  { kind: "Machine", name: "pinned host key with comment", set: { "spec.sshHostKey": `${ED25519} root@cp-01` } },
  { kind: "Machine", name: "null sshPort (dropped, defaulted)", set: { "spec.sshPort": null } },
  { kind: "NixosConfiguration", name: "seed NixosConfiguration with additionalFiles", set: {} },
  { kind: "NixosConfiguration", name: "flake #attr", set: { "spec.flake": "#worker" } },
  { kind: "NixosConfiguration", name: "flake ./dir#attr", set: { "spec.flake": "./hosts#worker" } },
  { kind: "NixosConfiguration", name: "flake dir/sub#attr", set: { "spec.flake": "hosts/prod#web_01-a" } },
  { kind: "NixosConfiguration", name: "flake attr starting with a digit", set: { "spec.flake": "#01-node" } },
  { kind: "NixosConfiguration", name: "onRemoveFlake #minimal", set: { "spec.onRemoveFlake": "#minimal" } },
  { kind: "NixosConfiguration", name: "http URL with port", set: { "spec.gitRepo": "http://127.0.0.1:8080/r.git" } },
  { kind: "NixosConfiguration", name: "IPv6 host", set: { "spec.gitRepo": "https://[2001:db8::1]:8443/org/repo" } },
  { kind: "NixosConfiguration", name: "path with ~ and @", set: { "spec.gitRepo": "https://h.example/~u/r@v2.git" } },
  { kind: "NixosConfiguration", name: "ref branch", set: { "spec.ref": "main" } },
  { kind: "NixosConfiguration", name: "ref tag", set: { "spec.ref": "v1.2.3" } },
  { kind: "NixosConfiguration", name: "ref full name", set: { "spec.ref": "refs/heads/feature/x" } },
  { kind: "NixosConfiguration", name: "ref commit", set: { "spec.ref": "0123456789abcdef0123456789abcdef01234567" } },
  { kind: "NixosConfiguration", name: "configurationSubdir nested", set: { "spec.configurationSubdir": "nix/hosts" } },
  { kind: "NixosConfiguration", name: "hidden file", set: { [`${F}[1].path`]: "config/.env.nix" } },
  { kind: "NixosConfiguration", name: "secretRef with key", set: { [`${F}[0].value.secretRef.key`]: "password" } },
  { kind: "NixosConfiguration", name: "nixosFacter false with inline", set: { [`${F}[1].value.nixosFacter`]: false } },
  { kind: "NixosConfiguration", name: "hostFiles secret", set: { [`${H}[0]`]: { ...hostFile, mode: "0600" } } },
  {
    kind: "NixosConfiguration",
    name: "hostFiles inline, mode 644",
    set: { [`${H}[0]`]: { path: "/etc/x", mode: "644", value: { inline: "" } } },
  },
  {
    kind: "NixosConfiguration",
    name: "suspended full install",
    set: { "spec.suspend": true, "spec.fullInstall": true },
  },
  { kind: "KubernetesCluster", name: "seed KubernetesCluster unchanged", set: {} },
  {
    kind: "KubernetesCluster",
    name: "explicit machines with count",
    set: { [CP]: { machines: ["cp-01", "cp-02", "cp-03"], count: 3 } },
  },
  { kind: "KubernetesCluster", name: "explicit machines without count", set: { [DP]: { machines: ["w-1", "w-2"] } } },
  { kind: "KubernetesCluster", name: "no dataPlane", set: { [DP]: undefined } },
  { kind: "KubernetesCluster", name: "dataPlane count 0", set: { [`${DP}.count`]: 0 } },
  { kind: "KubernetesCluster", name: "even control plane", set: { [`${CP}.count`]: 2 } },
  {
    kind: "KubernetesCluster",
    name: "matchExpressions",
    set: {
      [`${CP}.machineSelector`]: {
        matchLabels: { "example.com/rack": "r1" },
        matchExpressions: [
          { key: "role", operator: "In", values: ["control-plane", "cp"] },
          { key: "nico.homystack.com/cluster", operator: "DoesNotExist" },
        ],
      },
    },
  },
  {
    kind: "KubernetesCluster",
    name: "vip and IPv4 network",
    set: {
      "spec.vip": "192.168.1.100",
      "spec.network": { interface: "enp1s0", prefixLength: 24, gateway: "192.168.1.1", nameservers: ["1.1.1.1"] },
    },
  },
  {
    kind: "KubernetesCluster",
    name: "IPv6 vip /64",
    set: { "spec.vip": "2001:db8::100", "spec.network.prefixLength": 64 },
  },
  { kind: "KubernetesCluster", name: "rollout", set: { "spec.rollout.maxUnavailable": 10, "spec.ref": "v1" } },
  { kind: "KubernetesCluster", name: "name of 63 characters", set: { "metadata.name": long(63) } },
];

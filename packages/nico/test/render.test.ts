/**
 * cluster.nix rendering: the exact output shape, determinism, every validation rule (table), Nix string escaping and
 * SSH public keys; then real Nix (the testbed's offline nix) evaluates rendered files and escaped strings.
 */
import { expect } from "chai";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { cleanNixStderr, nixOffline } from "@nio/testbed";
import {
  InvalidPrivateKeyError,
  TopologyValidationError,
  describeTopologyErrors,
  nixScalar,
  nixString,
  normalizeAuthorizedKeys,
  publicKeyFromPrivate,
  renderClusterNix,
  validateTopology,
  type ClusterTopology,
} from "../src/render/index.js";

const run = promisify(execFile);

interface TestKeys {
  dir: string;
  /** ed25519 private key (OpenSSH format, no passphrase) and its public line as ssh-keygen -y prints it. */
  ed25519: { priv: Buffer; pub: string };
  ed25519b: { priv: Buffer; pub: string };
  rsaPem: { priv: Buffer; pub: string };
  ecdsa: { priv: Buffer; pub: string };
  encrypted: Buffer;
}

async function keygen(
  dir: string,
  name: string,
  args: string[],
  passphrase = "",
): Promise<{ priv: Buffer; pub: string }> {
  const file = join(dir, name);
  await run("ssh-keygen", ["-q", ...args, "-N", passphrase, "-C", `${name}@test`, "-f", file]);
  const pub = (await readFile(`${file}.pub`, "utf8")).trim();
  return { priv: await readFile(file), pub };
}

async function makeTestKeys(): Promise<TestKeys> {
  const dir = await mkdtemp(join(tmpdir(), "nico-keys-"));
  return {
    dir,
    ed25519: await keygen(dir, "ed", ["-t", "ed25519"]),
    ed25519b: await keygen(dir, "ed2", ["-t", "ed25519"]),
    rsaPem: await keygen(dir, "rsa", ["-t", "rsa", "-b", "2048", "-m", "PEM"]),
    ecdsa: await keygen(dir, "ecdsa", ["-t", "ecdsa", "-b", "256"]),
    encrypted: (await keygen(dir, "enc", ["-t", "ed25519"], "secret-passphrase")).priv,
  };
}

/** "<type> <base64>" of a public key line (comment dropped). */
function bare(line: string): string {
  return line.split(" ").slice(0, 2).join(" ");
}

function v4Topology(keys: string[]): ClusterTopology {
  return {
    name: "prod-cluster",
    vip: "192.168.1.100",
    initialized: false,
    network: {
      interface: "eth0",
      prefixLength: 24,
      gateway: "192.168.1.1",
      nameservers: ["192.168.1.1"],
      virtualRouterId: 51,
    },
    controlPlane: [
      { name: "cp-01", ip: "192.168.1.101" },
      { name: "cp-02", ip: "192.168.1.102" },
      { name: "cp-03", ip: "192.168.1.103" },
    ],
    workers: [
      { name: "worker-01", ip: "192.168.1.201" },
      { name: "worker-02", ip: "192.168.1.202" },
    ],
    authorizedKeys: keys,
  };
}

function v6Topology(keys: string[]): ClusterTopology {
  return {
    name: "v6",
    vip: "fd00:10::100",
    initialized: true,
    network: {
      interface: "ens18",
      prefixLength: 64,
      gateway: "fd00:10::1",
      nameservers: ["fd00:10::53", "2001:4860:4860::8888"],
      virtualRouterId: 7,
    },
    controlPlane: [{ name: "cp-a", ip: "fd00:10::101" }],
    workers: [{ name: "w-a", ip: "fd00:10::201" }],
    authorizedKeys: keys,
  };
}

type Mutation = (t: ClusterTopology) => void;
interface BadCase {
  name: string;
  mutate: Mutation;
  /** Exactly the errors expected, as [field, rule]. */
  errors: [string, string][];
}

function clone(t: ClusterTopology): ClusterTopology {
  return structuredClone(t);
}

function cp(t: ClusterTopology, i: number): { name: string; ip: string } {
  const n = t.controlPlane[i];
  if (!n) throw new Error(`no controlPlane[${i}]`);
  return n;
}

function wk(t: ClusterTopology, i: number): { name: string; ip: string } {
  const n = t.workers[i];
  if (!n) throw new Error(`no workers[${i}]`);
  return n;
}

const BAD: BadCase[] = [
  // names
  { name: "uppercase cluster name", mutate: (t) => void (t.name = "Prod"), errors: [["name", "dnsLabel"]] },
  { name: "empty cluster name", mutate: (t) => void (t.name = ""), errors: [["name", "dnsLabel"]] },
  { name: "cluster name of 64 chars", mutate: (t) => void (t.name = "a".repeat(64)), errors: [["name", "dnsLabel"]] },
  { name: "cluster name with a dot", mutate: (t) => void (t.name = "prod.cluster"), errors: [["name", "dnsLabel"]] },
  { name: "cluster name ending in -", mutate: (t) => void (t.name = "prod-"), errors: [["name", "dnsLabel"]] },
  {
    name: "cluster name with a digit first",
    mutate: (t) => void (t.name = "1prod"),
    errors: [["name", "nixAttributeName"]],
  },
  { name: "cluster name a Nix keyword", mutate: (t) => void (t.name = "let"), errors: [["name", "nixAttributeName"]] },
  {
    name: "hostile cluster name (Nix code)",
    mutate: (t) => void (t.name = 'x"; builtins.abort "x'),
    errors: [["name", "dnsLabel"]],
  },
  {
    name: "hostile cluster name (interpolation)",
    mutate: (t) => void (t.name = "${builtins.readFile /etc/shadow}"),
    errors: [["name", "dnsLabel"]],
  },
  { name: "cluster name with a newline", mutate: (t) => void (t.name = "prod\nx"), errors: [["name", "dnsLabel"]] },
  {
    name: "node name with an underscore",
    mutate: (t) => void (cp(t, 1).name = "cp_02"),
    errors: [["controlPlane[1].name", "dnsLabel"]],
  },
  {
    name: "node name with a backslash",
    mutate: (t) => void (wk(t, 0).name = "w\\1"),
    errors: [["workers[0].name", "dnsLabel"]],
  },
  {
    name: "node name starting with a digit",
    mutate: (t) => void (wk(t, 1).name = "01"),
    errors: [["workers[1].name", "nixAttributeName"]],
  },
  {
    name: "node name a Nix keyword",
    mutate: (t) => void (wk(t, 1).name = "in"),
    errors: [["workers[1].name", "nixAttributeName"]],
  },
  {
    name: "node named minimal",
    mutate: (t) => void (wk(t, 0).name = "minimal"),
    errors: [["workers[0].name", "reservedName"]],
  },
  {
    name: "worker named like a control-plane node",
    mutate: (t) => void (wk(t, 1).name = "cp-01"),
    errors: [["workers[1].name", "uniqueNodeName"]],
  },
  {
    name: "two control-plane nodes with one name",
    mutate: (t) => void (cp(t, 2).name = "cp-02"),
    errors: [["controlPlane[2].name", "uniqueNodeName"]],
  },
  // addresses
  {
    name: "node ip with five octets",
    mutate: (t) => void (cp(t, 0).ip = "192.168.1.1.1"),
    errors: [["controlPlane[0].ip", "ipLiteral"]],
  },
  {
    name: "node ip with a leading zero",
    mutate: (t) => void (cp(t, 1).ip = "192.168.1.010"),
    errors: [["controlPlane[1].ip", "ipLiteral"]],
  },
  {
    name: "node ip with a zone",
    mutate: (t) => void (wk(t, 0).ip = "fe80::1%eth0"),
    errors: [["workers[0].ip", "ipLiteral"]],
  },
  {
    name: "IPv4-mapped node ip",
    mutate: (t) => void (wk(t, 0).ip = "::ffff:192.168.1.201"),
    errors: [["workers[0].ip", "ipLiteral"]],
  },
  {
    name: "hostile node ip",
    mutate: (t) => void (wk(t, 0).ip = '192.168.1.201"; builtins.abort "x'),
    errors: [["workers[0].ip", "ipLiteral"]],
  },
  {
    name: "empty node ip (Machine without spec.ipAddress)",
    mutate: (t) => void (wk(t, 1).ip = ""),
    errors: [["workers[1].ip", "ipLiteral"]],
  },
  { name: "vip not an IP", mutate: (t) => void (t.vip = "vip.local"), errors: [["vip", "ipLiteral"]] },
  {
    name: "IPv6 worker in an IPv4 cluster",
    mutate: (t) => void (wk(t, 0).ip = "fd00::201"),
    errors: [["workers[0].ip", "ipFamily"]],
  },
  {
    name: "IPv6 worker without a vip (family of controlPlane[0])",
    mutate: (t) => {
      t.vip = null;
      wk(t, 0).ip = "fd00::201";
    },
    errors: [["workers[0].ip", "ipFamily"]],
  },
  {
    name: "vip equal to a node ip",
    mutate: (t) => void (cp(t, 1).ip = "192.168.1.100"),
    errors: [["controlPlane[1].ip", "vipNotNodeIp"]],
  },
  {
    name: "two nodes with one ip",
    mutate: (t) => void (wk(t, 1).ip = "192.168.1.103"),
    errors: [["workers[1].ip", "uniqueNodeIp"]],
  },
  {
    name: "worker outside the vip's /24",
    mutate: (t) => void (wk(t, 0).ip = "192.168.2.201"),
    errors: [["workers[0].ip", "sameSubnet"]],
  },
  {
    name: "workers outside a /25",
    mutate: (t) => void (t.network.prefixLength = 25),
    errors: [
      ["workers[0].ip", "sameSubnet"],
      ["workers[1].ip", "sameSubnet"],
    ],
  },
  {
    name: "without a vip: worker outside controlPlane[0]'s subnet",
    mutate: (t) => {
      t.vip = null;
      wk(t, 1).ip = "10.0.0.2";
    },
    errors: [["workers[1].ip", "sameSubnet"]],
  },
  // network
  {
    name: "interface with a space",
    mutate: (t) => void (t.network.interface = "eth 0"),
    errors: [["network.interface", "interfaceName"]],
  },
  {
    name: "interface of 16 characters",
    mutate: (t) => void (t.network.interface = "enp0s31f6abcdefg"),
    errors: [["network.interface", "interfaceName"]],
  },
  {
    name: "interface with a newline",
    mutate: (t) => void (t.network.interface = "eth0\n"),
    errors: [["network.interface", "interfaceName"]],
  },
  {
    name: "interface with a backslash",
    mutate: (t) => void (t.network.interface = "eth\\0"),
    errors: [["network.interface", "interfaceName"]],
  },
  {
    name: "interface starting with a dot",
    mutate: (t) => void (t.network.interface = ".eth0"),
    errors: [["network.interface", "interfaceName"]],
  },
  {
    name: "prefixLength 0",
    mutate: (t) => void (t.network.prefixLength = 0),
    errors: [["network.prefixLength", "prefixLength"]],
  },
  {
    name: "prefixLength 33 for IPv4",
    mutate: (t) => void (t.network.prefixLength = 33),
    errors: [["network.prefixLength", "prefixLength"]],
  },
  {
    name: "fractional prefixLength",
    mutate: (t) => void (t.network.prefixLength = 24.5),
    errors: [["network.prefixLength", "prefixLength"]],
  },
  {
    name: "virtualRouterId 0",
    mutate: (t) => void (t.network.virtualRouterId = 0),
    errors: [["network.virtualRouterId", "virtualRouterId"]],
  },
  {
    name: "virtualRouterId 256",
    mutate: (t) => void (t.network.virtualRouterId = 256),
    errors: [["network.virtualRouterId", "virtualRouterId"]],
  },
  {
    name: "gateway not an IP",
    mutate: (t) => void (t.network.gateway = "router"),
    errors: [["network.gateway", "ipLiteral"]],
  },
  {
    name: "IPv6 gateway in an IPv4 cluster",
    mutate: (t) => void (t.network.gateway = "fd00::1"),
    errors: [["network.gateway", "ipFamily"]],
  },
  {
    name: "nameserver not an IP",
    mutate: (t) => void (t.network.nameservers = ["192.168.1.1", "dns.example"]),
    errors: [["network.nameservers[1]", "ipLiteral"]],
  },
  {
    name: "hostile nameserver",
    mutate: (t) => void (t.network.nameservers = ["${builtins.readFile /etc/shadow}"]),
    errors: [["network.nameservers[0]", "ipLiteral"]],
  },
  // lists and flags
  {
    name: "no control-plane node",
    mutate: (t) => void (t.controlPlane = []),
    errors: [["controlPlane", "controlPlaneRequired"]],
  },
  {
    name: "initialized not a boolean",
    mutate: (t) => void ((t as unknown as Record<string, unknown>).initialized = "yes"),
    errors: [["initialized", "boolean"]],
  },
];

function pairs(t: ClusterTopology): [string, string][] {
  return validateTopology(t).map((e) => [e.field, e.rule]);
}

describe("render: validateTopology", () => {
  let keys: TestKeys;
  let base: ClusterTopology;
  before(async () => {
    keys = await makeTestKeys();
    base = v4Topology([keys.ed25519.pub, bare(keys.rsaPem.pub)]);
  });
  after(async () => rm(keys.dir, { recursive: true, force: true }));

  it("accepts the IPv4 and IPv6 examples, without vip, workers, gateway or nameservers", () => {
    expect(validateTopology(base)).to.deep.equal([]);
    expect(validateTopology(v6Topology([keys.ecdsa.pub]))).to.deep.equal([]);
    const bareMinimum = clone(base);
    bareMinimum.vip = null;
    bareMinimum.workers = [];
    bareMinimum.network.gateway = null;
    bareMinimum.network.nameservers = [];
    bareMinimum.authorizedKeys = [];
    expect(validateTopology(bareMinimum)).to.deep.equal([]);
  });

  it("accepts prefixLength 128 and a node anywhere in a /16 for IPv6 and IPv4", () => {
    const v6 = v6Topology([]);
    v6.network.prefixLength = 128;
    v6.vip = null;
    v6.workers = [];
    expect(validateTopology(v6)).to.deep.equal([]);
    const wide = clone(base);
    wide.network.prefixLength = 16;
    const w = wide.workers[0];
    if (w) w.ip = "192.168.200.1";
    expect(validateTopology(wide)).to.deep.equal([]);
  });

  for (const c of BAD) {
    it(`refuses: ${c.name}`, () => {
      const t = clone(base);
      c.mutate(t);
      expect(pairs(t)).to.deep.equal(c.errors);
      for (const e of validateTopology(t)) expect(e.message).to.match(/^must /);
    });
  }

  const v6Bad: BadCase[] = [
    {
      name: "IPv6 prefixLength 129",
      mutate: (t) => void (t.network.prefixLength = 129),
      errors: [["network.prefixLength", "prefixLength"]],
    },
    {
      name: "IPv6 worker outside the vip's /64",
      mutate: (t) => void (wk(t, 0).ip = "fd00:11::201"),
      errors: [["workers[0].ip", "sameSubnet"]],
    },
    {
      name: "IPv4 worker in an IPv6 cluster",
      mutate: (t) => void (wk(t, 0).ip = "10.0.0.1"),
      errors: [["workers[0].ip", "ipFamily"]],
    },
    {
      name: "IPv4 gateway in an IPv6 cluster",
      mutate: (t) => void (t.network.gateway = "10.0.0.1"),
      errors: [["network.gateway", "ipFamily"]],
    },
  ];
  for (const c of v6Bad) {
    it(`refuses: ${c.name}`, () => {
      const t = v6Topology([keys.ed25519.pub]);
      c.mutate(t);
      expect(pairs(t)).to.deep.equal(c.errors);
    });
  }

  it("names the subnet in the sameSubnet message", () => {
    const t = clone(base);
    wk(t, 0).ip = "192.168.2.201";
    expect(validateTopology(t)[0]?.message).to.equal("must be in the subnet 192.168.1.0/24 of vip");
    const v6 = v6Topology([]);
    wk(v6, 0).ip = "fd00:11::201";
    expect(validateTopology(v6)[0]?.message).to.equal("must be in the subnet fd00:10::/64 of vip");
  });

  describe("authorized keys", () => {
    const keyCases: { name: string; key: () => string; rule: string }[] = [
      {
        name: "a key followed by a newline and another key",
        key: () => `${keys.ed25519.pub}\n${keys.ecdsa.pub}`,
        rule: "singleLine",
      },
      { name: "a key with a carriage return", key: () => `${keys.ed25519.pub}\r`, rule: "singleLine" },
      { name: "an unsupported key type", key: () => "ssh-dss AAAAB3NzaC1kc3MAAACBAP", rule: "sshPublicKey" },
      { name: "a truncated key blob", key: () => "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", rule: "sshPublicKey" },
      {
        name: "an RSA blob labelled ed25519",
        key: () => `ssh-ed25519 ${keys.rsaPem.pub.split(" ")[1]}`,
        rule: "sshPublicKey",
      },
      { name: "a comment with a quote", key: () => `${bare(keys.ed25519.pub)} a"b`, rule: "sshPublicKey" },
      {
        name: "a comment with an interpolation",
        key: () => `${bare(keys.ed25519.pub)} \${builtins.readFile /etc/shadow}`,
        rule: "sshPublicKey",
      },
      { name: "a private key", key: () => keys.ed25519.priv.toString("utf8"), rule: "singleLine" },
      { name: "an empty string", key: () => "", rule: "sshPublicKey" },
    ];
    for (const c of keyCases) {
      it(`refuses ${c.name}`, () => {
        const t = clone(base);
        t.authorizedKeys = [keys.ed25519b.pub, c.key()];
        expect(pairs(t)).to.deep.equal([["authorizedKeys[1]", c.rule]]);
      });
    }
  });

  it("collects every error at once, and renderClusterNix throws them all", () => {
    const t = clone(base);
    t.name = "Bad";
    t.vip = "192.168.1.101";
    t.network.virtualRouterId = 300;
    wk(t, 0).name = "minimal";
    t.authorizedKeys = ["nope"];
    const expected: [string, string][] = [
      ["name", "dnsLabel"],
      ["workers[0].name", "reservedName"],
      ["network.virtualRouterId", "virtualRouterId"],
      ["controlPlane[0].ip", "vipNotNodeIp"],
      ["authorizedKeys[0]", "sshPublicKey"],
    ];
    expect(pairs(t)).to.deep.equal(expected);
    let thrown: unknown;
    try {
      renderClusterNix(t);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).to.be.instanceOf(TopologyValidationError);
    const err = thrown as TopologyValidationError;
    expect(err.errors.map((e) => [e.field, e.rule])).to.deep.equal(expected);
    for (const [field, rule] of expected) expect(err.message).to.include(`${field}: must`).and.include(`[${rule}]`);
  });

  it("maps topology fields back to the KubernetesCluster and Machine fields", () => {
    const t = clone(base);
    t.name = "Bad";
    cp(t, 1).ip = "x";
    t.network.prefixLength = 40;
    expect(describeTopologyErrors(validateTopology(t), t)).to.deep.equal([
      "metadata.name: must be a DNS label (RFC 1123): 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit [dnsLabel]",
      "spec.network.prefixLength: must be an integer from 1 to 32 for IPv4 [prefixLength]",
      "Machine cp-02 spec.ipAddress (controlPlane[1].ip): must be an IPv4 or IPv6 address literal (no zone, not IPv4-mapped, no leading zeros) [ipLiteral]",
    ]);
  });
});

describe("render: renderClusterNix", () => {
  let keys: TestKeys;
  before(async () => {
    keys = await makeTestKeys();
  });
  after(async () => rm(keys.dir, { recursive: true, force: true }));

  it("renders the documented shape", () => {
    const t = v4Topology([keys.ed25519.pub]);
    t.workers = t.workers.slice(0, 1);
    t.controlPlane = t.controlPlane.slice(0, 1);
    expect(renderClusterNix(t)).to
      .equal(`# Generated by NICO for KubernetesCluster "prod-cluster". Do not edit: NICO rewrites this file.
{
  name = "prod-cluster";
  vip = "192.168.1.100";
  initialized = false;
  network = {
    interface = "eth0";
    prefixLength = 24;
    gateway = "192.168.1.1";
    nameservers = [ "192.168.1.1" ];
    virtualRouterId = 51;
  };
  controlPlane = [
    { name = "cp-01"; ip = "192.168.1.101"; }
  ];
  workers = [
    { name = "worker-01"; ip = "192.168.1.201"; }
  ];
  authorizedKeys = [
    "${keys.ed25519.pub}"
  ];
}
`);
  });

  it("renders null vip and gateway, empty lists as [ ], true and several nameservers", () => {
    const t = v6Topology([]);
    t.vip = null;
    t.network.gateway = null;
    t.workers = [];
    const text = renderClusterNix(t);
    expect(text).to.include("  vip = null;\n");
    expect(text).to.include("  initialized = true;\n");
    expect(text).to.include("    gateway = null;\n");
    expect(text).to.include('    nameservers = [ "fd00:10::53" "2001:4860:4860::8888" ];\n');
    expect(text).to.include("  workers = [ ];\n");
    expect(text).to.include("  authorizedKeys = [ ];\n");
    t.network.nameservers = [];
    expect(renderClusterNix(t)).to.include("    nameservers = [ ];\n");
  });

  it("is deterministic: same input, same bytes; keys sorted and deduplicated by key; node order kept", () => {
    const a = v4Topology([keys.ed25519.pub, keys.rsaPem.pub, keys.ecdsa.pub, bare(keys.ed25519.pub)]);
    const b = v4Topology([keys.ecdsa.pub, bare(keys.ed25519.pub), keys.rsaPem.pub, keys.ed25519.pub, keys.rsaPem.pub]);
    expect(renderClusterNix(a)).to.equal(renderClusterNix(structuredClone(a)));
    expect(renderClusterNix(a)).to.equal(renderClusterNix(b));
    const expectedKeys = normalizeAuthorizedKeys(a.authorizedKeys);
    expect(expectedKeys).to.have.length(3);
    expect(expectedKeys).to.deep.equal([...expectedKeys].sort());
    const reversed = v4Topology([]);
    reversed.controlPlane.reverse();
    const text = renderClusterNix(reversed);
    expect(text.indexOf('"cp-03"')).to.be.lessThan(text.indexOf('"cp-01"'));
  });

  it("does not modify its input", () => {
    const t = v4Topology([keys.rsaPem.pub, keys.ed25519.pub]);
    const copy = structuredClone(t);
    renderClusterNix(t);
    expect(t).to.deep.equal(copy);
  });
});

describe("render: nixString and nixScalar", () => {
  const cases: [string, string][] = [
    ["plain", '"plain"'],
    ["", '""'],
    ['a"b', '"a\\"b"'],
    ["back\\slash", '"back\\\\slash"'],
    ["${x}", '"\\${x}"'],
    ["$${x}", '"\\$\\${x}"'],
    ["$", '"\\$"'],
    ["a\nb\r\tc", '"a\\nb\\r\\tc"'],
    ["''${x}", "\"''\\${x}\""],
    ["ü😀", '"ü😀"'],
  ];
  for (const [input, output] of cases) {
    it(`escapes ${JSON.stringify(input)}`, () => expect(nixString(input)).to.equal(output));
  }

  it("never leaves an unescaped quote, interpolation or line break", () => {
    const hostile = ['"; builtins.abort "x', "${builtins.readFile /etc/shadow}", 'x\\"; y', "a\nb", "\\${x}"];
    for (const s of hostile) {
      const body = nixString(s).slice(1, -1);
      expect(body).not.to.match(/(^|[^\\])(\\\\)*"/);
      expect(body).not.to.match(/(^|[^\\])(\\\\)*\$\{/);
      expect(body).not.to.match(/[\n\r]/);
    }
  });

  it("refuses NUL, which a Nix string cannot hold", () => {
    expect(() => nixString("a\0b")).to.throw(RangeError, /NUL/);
  });

  it("renders scalars and refuses anything else", () => {
    expect(nixScalar(null)).to.equal("null");
    expect(nixScalar(true)).to.equal("true");
    expect(nixScalar(false)).to.equal("false");
    expect(nixScalar(42)).to.equal("42");
    expect(nixScalar("x")).to.equal('"x"');
    for (const bad of [1.5, Number.NaN, 2 ** 60, undefined, {}, [], () => 1]) {
      expect(() => nixScalar(bad)).to.throw(TypeError);
    }
  });
});

describe("render: publicKeyFromPrivate", () => {
  let keys: TestKeys;
  before(async () => {
    keys = await makeTestKeys();
  });
  after(async () => rm(keys.dir, { recursive: true, force: true }));

  it("derives the same public key as ssh-keygen -y, without the comment (ed25519, RSA PEM, ECDSA)", () => {
    for (const k of [keys.ed25519, keys.rsaPem, keys.ecdsa]) {
      expect(publicKeyFromPrivate(k.priv)).to.equal(bare(k.pub));
    }
    expect(publicKeyFromPrivate(keys.ed25519.priv)).to.match(/^ssh-ed25519 AAAA[A-Za-z0-9+/]+=*$/);
  });

  it("refuses an encrypted key, saying so", () => {
    expect(() => publicKeyFromPrivate(keys.encrypted))
      .to.throw(InvalidPrivateKeyError, /encrypted/)
      .with.property("message")
      .that.does.not.include("BEGIN");
  });

  it("refuses garbage and public keys with a clear message", () => {
    expect(() => publicKeyFromPrivate(Buffer.from("not a key"))).to.throw(InvalidPrivateKeyError, /cannot be parsed/);
    expect(() => publicKeyFromPrivate(Buffer.from(keys.ed25519.pub))).to.throw(InvalidPrivateKeyError, /public key/);
  });
});

/** `nix eval --json --expr <expr>` through the testbed's offline nix, in `cwd`, parsed. */
async function nixEvalExpr(expr: string, cwd: string): Promise<unknown> {
  const res = await nixOffline(["eval", "--impure", "--json", "--expr", expr], { cwd, timeoutMs: 60_000 });
  if (res.code !== 0) throw new Error(`nix eval failed (${res.code}): ${cleanNixStderr(res.stderr)}`);
  return JSON.parse(res.stdout) as unknown;
}

describe("render: real Nix evaluates the output", function () {
  this.timeout(120_000);
  let keys: TestKeys;
  let dir: string;
  before(async () => {
    keys = await makeTestKeys();
    dir = await mkdtemp(join(tmpdir(), "nico-render-nix-"));
  });
  after(async () => {
    await rm(keys.dir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  const topologies: [string, () => ClusterTopology][] = [
    ["IPv4 with vip and workers", () => v4Topology([keys.ed25519.pub, keys.rsaPem.pub, bare(keys.ed25519.pub)])],
    ["IPv6 with vip", () => v6Topology([keys.ecdsa.pub, keys.ed25519b.pub])],
    [
      "IPv4 without vip and gateway",
      () => {
        const t = v4Topology([keys.ed25519.pub]);
        t.vip = null;
        t.network.gateway = null;
        return t;
      },
    ],
    [
      "no workers, no nameservers, no keys",
      () => {
        const t = v4Topology([]);
        t.workers = [];
        t.network.nameservers = [];
        t.initialized = true;
        return t;
      },
    ],
  ];
  for (const [name, make] of topologies) {
    it(`import ./cluster.nix equals the input: ${name}`, async () => {
      const t = make();
      await writeFile(join(dir, "cluster.nix"), renderClusterNix(t));
      const value = await nixEvalExpr("import ./cluster.nix", dir);
      expect(value).to.deep.equal({ ...t, authorizedKeys: normalizeAuthorizedKeys(t.authorizedKeys) });
    });
  }

  it("nixString output evaluates to the literal string, hostile or not", async () => {
    const strings = [
      '"; builtins.abort "x',
      'x"; builtins.abort "x"; "',
      "${builtins.readFile /etc/shadow}",
      "$${builtins.readFile /etc/shadow}",
      '\\${builtins.abort "x"}',
      "''${x}''",
      "trailing backslash\\",
      "\\",
      "$",
      "${",
      "line\nbreak\r\ncrlf\rcr\ttab",
      "controls \x01\x1b\x7f end",
      "ü😀 — unicode",
      "# not a comment",
      "/* not a comment */",
    ];
    const expr = `[ ${strings.map(nixString).join(" ")} ]`;
    expect(await nixEvalExpr(expr, dir)).to.deep.equal(strings);
  });

  it("a hostile value inside an attribute set stays one string", async () => {
    const hostile = '"; x = builtins.abort "pwned"; y = "';
    const value = await nixEvalExpr(`{ name = ${nixString(hostile)}; }`, dir);
    expect(value).to.deep.equal({ name: hostile });
  });
});

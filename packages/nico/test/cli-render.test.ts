/**
 * `nico render` without an API server: argument parsing and exit codes, the YAML path with the seed's
 * KubernetesCluster example and five Machines, and the flake copy (symlinks never followed out of the tree).
 * The rendered flakes are evaluated with the testbed's offline Nix.
 */
import { expect } from "chai";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import { nixEval, nixFlakeShow, repoRoot } from "@nio/testbed";
import { parseRenderArgs, UsageError, type ParsedRenderArgs } from "../src/cli/args.js";
import { copyFlake } from "../src/cli/flake-copy.js";
import { runRenderCommand } from "../src/cli/render.js";

const run = promisify(execFile);

interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

async function nicoRender(argv: string[]): Promise<Captured> {
  let stdout = "";
  let stderr = "";
  const code = await runRenderCommand(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { code, stdout, stderr };
}

function usageError(argv: string[]): string {
  try {
    parseRenderArgs(argv);
  } catch (err) {
    expect(err).to.be.instanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error(`no usage error for ${argv.join(" ")}`);
}

describe("cli: nico render arguments", () => {
  const cases: [string, string[], ParsedRenderArgs][] = [
    [
      "API mode with defaults",
      ["--cluster", "prod-cluster", "--flake", "nix", "--out", "out"],
      {
        help: false,
        source: { kind: "api", cluster: "prod-cluster", namespace: "default", kubeconfig: undefined },
        flake: "nix",
        out: "out",
        force: false,
      },
    ],
    [
      "API mode with every option, a leading 'render' and --opt=value forms",
      ["render", "--cluster=c1", "-n", "team-a", "--kubeconfig", "/k", "--flake=f", "--out", "o", "--force"],
      {
        help: false,
        source: { kind: "api", cluster: "c1", namespace: "team-a", kubeconfig: "/k" },
        flake: "f",
        out: "o",
        force: true,
      },
    ],
    [
      "file mode",
      ["-f", "cluster.yaml", "--flake", "nix", "--out", "out"],
      {
        help: false,
        source: { kind: "file", file: "cluster.yaml", cluster: undefined, namespace: undefined },
        flake: "nix",
        out: "out",
        force: false,
      },
    ],
    [
      "file mode choosing a cluster",
      ["--file", "c.yaml", "--cluster", "a", "--namespace", "ns", "--flake", "nix", "--out", "out"],
      {
        help: false,
        source: { kind: "file", file: "c.yaml", cluster: "a", namespace: "ns" },
        flake: "nix",
        out: "out",
        force: false,
      },
    ],
    ["--help", ["--help"], { help: true }],
    ["-h among other options", ["--cluster", "x", "-h"], { help: true }],
  ];
  for (const [name, argv, expected] of cases) {
    it(`parses ${name}`, () => expect(parseRenderArgs(argv)).to.deep.equal(expected));
  }

  const bad: [string, string[], RegExp][] = [
    ["no arguments", [], /one of --cluster <name> or -f <file.yaml> is required/],
    ["no --flake", ["--cluster", "c", "--out", "o"], /--flake <dir> is required/],
    ["no --out", ["--cluster", "c", "--flake", "f"], /--out <dir> is required/],
    ["an unknown option", ["--cluster", "c", "--flake", "f", "--out", "o", "--bogus"], /Unknown option '--bogus'/],
    ["a positional argument", ["--cluster", "c", "--flake", "f", "--out", "o", "extra"], /positional/],
    ["a missing option value", ["--flake", "f", "--out", "o", "--cluster"], /--cluster/],
    ["-f with --kubeconfig", ["-f", "x.yaml", "--kubeconfig", "k", "--flake", "f", "--out", "o"], /--kubeconfig/],
    ["a cluster name that is no object name", ["--cluster", "Bad_Name", "--flake", "f", "--out", "o"], /--cluster/],
    ["a namespace that is no DNS label", ["--cluster", "c", "-n", "a.b", "--flake", "f", "--out", "o"], /--namespace/],
    ["a value for --force", ["--cluster", "c", "--flake", "f", "--out", "o", "--force=yes"], /--force/],
  ];
  for (const [name, argv, message] of bad) {
    it(`refuses ${name}`, () => expect(usageError(argv)).to.match(message));
  }

  it("prints the usage for --help (exit 0) and with a usage error (exit 2)", async () => {
    const help = await nicoRender(["--help"]);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/^Usage:\n {2}nico render --cluster <name>/);
    expect(help.stderr).to.equal("");
    const bad = await nicoRender(["--cluster"]);
    expect(bad.code).to.equal(2);
    expect(bad.stderr)
      .to.match(/^nico render: .*--cluster/)
      .and.include("Usage:");
    expect(bad.stdout).to.equal("");
  });
});

// ---------------------------------------------------------------------------------------------- fixtures

/** The KubernetesCluster of seeds/003 ("Usage with NICO"), unchanged. */
const SEED_CLUSTER = `apiVersion: nico.homystack.com/v1alpha1
kind: KubernetesCluster
metadata:
  name: prod-cluster
  namespace: default
spec:
  gitRepo: "https://github.com/your-org/nico-configs.git"
  configurationSubdir: "nix"  # This directory

  controlPlane:
    machineSelector:
      matchLabels:
        role: control-plane
    count: 3

  dataPlane:
    machineSelector:
      matchLabels:
        role: worker
    count: 5
`;

/** The Machine of seeds/003 ("Machine Requirements"), with the name, role and address varied. */
function seedMachine(name: string, role: "control-plane" | "worker", ip: string): string {
  return `apiVersion: nio.homystack.com/v1alpha1
kind: Machine
metadata:
  name: ${name}
  labels:
    role: ${role}  # or worker
spec:
  hostname: ${name}.local
  ipAddress: ${ip}
  sshUser: root
  sshKeySecretRef:
    name: machine-ssh-key  # ED25519 private key
`;
}

const FIVE_MACHINES = [
  seedMachine("cp-01", "control-plane", "192.168.1.101"),
  seedMachine("cp-02", "control-plane", "192.168.1.102"),
  seedMachine("cp-03", "control-plane", "192.168.1.103"),
  seedMachine("worker-01", "worker", "192.168.1.201"),
  seedMachine("worker-02", "worker", "192.168.1.202"),
];

function secretYaml(name: string, privateKey: Buffer, form: "data" | "stringData"): string {
  const value = form === "data" ? privateKey.toString("base64") : privateKey.toString("utf8");
  return stringify({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name },
    type: "Opaque",
    [form]: { "ssh-privatekey": value },
  });
}

/** A small flake that reads cluster.nix like nix/ does and exposes what it read. */
const PROBE_FLAKE = `{
  description = "probe";
  outputs = { self }: let cluster = import ./cluster.nix; in {
    inherit cluster;
    nodes = map (n: n.name) (cluster.controlPlane ++ cluster.workers);
    helper = import ./lib/helper.nix;
  };
}
`;

interface Keys {
  ed25519: Buffer;
  ed25519Pub: string;
  encrypted: Buffer;
}

async function makeKeys(dir: string): Promise<Keys> {
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "seed@test", "-f", join(dir, "id")]);
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "pass-phrase", "-f", join(dir, "enc")]);
  const pub = (await readFile(join(dir, "id.pub"), "utf8")).trim().split(" ").slice(0, 2).join(" ");
  return { ed25519: await readFile(join(dir, "id")), ed25519Pub: pub, encrypted: await readFile(join(dir, "enc")) };
}

describe("cli: nico render -f (YAML)", function () {
  this.timeout(120_000);
  let dir: string;
  let keys: Keys;
  let flake: string;
  let n = 0;
  const outDir = (): string => join(dir, `out-${++n}`);
  const writeYaml = async (docs: string[]): Promise<string> => {
    const file = join(dir, `objects-${++n}.yaml`);
    await writeFile(file, docs.join("---\n"));
    return file;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nico-cli-"));
    keys = await makeKeys(dir);
    flake = join(dir, "flake");
    await mkdir(join(flake, "lib"), { recursive: true });
    await writeFile(join(flake, "flake.nix"), PROBE_FLAKE);
    await writeFile(join(flake, "lib", "helper.nix"), '"helper"\n');
    await writeFile(join(flake, "cluster.nix"), "# example, replaced by nico render\n{ }\n");
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it("renders the seed's cluster with five machines: 3 control-plane nodes, the 2 workers there are", async () => {
    const out = outDir();
    const file = await writeYaml([SEED_CLUSTER, ...FIVE_MACHINES, secretYaml("machine-ssh-key", keys.ed25519, "data")]);
    const r = await nicoRender(["-f", file, "--flake", flake, "--out", out]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.include("warning: spec.dataPlane: need 5 workers matching role=worker, 2 free");
    expect(r.stdout).to.include("KubernetesCluster default/prod-cluster").and.include(join(out, "cluster.nix"));
    for (const node of ["cp-01  192.168.1.101", "cp-03  192.168.1.103", "worker-02  192.168.1.202"]) {
      expect(r.stdout).to.include(node);
    }
    expect(await nixEval(out, "nodes")).to.deep.equal(["cp-01", "cp-02", "cp-03", "worker-01", "worker-02"]);
    expect(await nixEval(out, "cluster")).to.deep.equal({
      name: "prod-cluster",
      vip: null,
      initialized: false,
      network: { interface: "eth0", prefixLength: 24, gateway: null, nameservers: [], virtualRouterId: 51 },
      controlPlane: [
        { name: "cp-01", ip: "192.168.1.101" },
        { name: "cp-02", ip: "192.168.1.102" },
        { name: "cp-03", ip: "192.168.1.103" },
      ],
      workers: [
        { name: "worker-01", ip: "192.168.1.201" },
        { name: "worker-02", ip: "192.168.1.202" },
      ],
      authorizedKeys: [keys.ed25519Pub],
    });
    expect(await nixEval(out, "helper")).to.equal("helper");
    expect((await stat(join(out, "cluster.nix"))).mode & 0o777).to.equal(0o644);
    expect(await readFile(join(out, "lib", "helper.nix"), "utf8")).to.equal('"helper"\n');
  });

  it("renders with the real nix/ flake, which lists exactly the nodes (and minimal)", async function () {
    const nixDir = join(repoRoot, "nix");
    if (!existsSync(join(nixDir, "flake.nix"))) this.skip();
    const out = outDir();
    const file = await writeYaml([
      SEED_CLUSTER,
      ...FIVE_MACHINES,
      secretYaml("machine-ssh-key", keys.ed25519, "stringData"),
    ]);
    const r = await nicoRender(["-f", file, "--flake", nixDir, "--out", out]);
    expect(r.code, r.stderr).to.equal(0);
    const show = await nixFlakeShow(out);
    expect(Object.keys(show.nixosConfigurations as Record<string, unknown>).sort()).to.deep.equal([
      "cp-01",
      "cp-02",
      "cp-03",
      "minimal",
      "worker-01",
      "worker-02",
    ]);
  });

  it("warns about a missing Secret, once, naming the machines, and renders no key", async () => {
    const out = outDir();
    const file = await writeYaml([SEED_CLUSTER, ...FIVE_MACHINES]);
    const r = await nicoRender(["-f", file, "--flake", flake, "--out", out]);
    expect(r.code, r.stderr).to.equal(0);
    const warning = r.stderr.split("\n").filter((l) => l.includes("machine-ssh-key"));
    expect(warning).to.deep.equal([
      "nico render: warning: Secret default/machine-ssh-key not found (spec.sshKeySecretRef of Machine cp-01, cp-02, cp-03, worker-01, worker-02): no authorized key from them",
    ]);
    expect(await nixEval(out, "cluster.authorizedKeys")).to.deep.equal([]);
  });

  it("takes vip, network and status.initialized from the cluster, and a worker count that fits", async () => {
    const out = outDir();
    const cluster = SEED_CLUSTER.replace("count: 5", "count: 1").concat(
      "  vip: 192.168.1.100\n",
      "  network:\n    interface: ens18\n    gateway: 192.168.1.1\n    nameservers: [192.168.1.1, 9.9.9.9]\n    virtualRouterId: 42\n",
      "status:\n  initialized: true\n",
    );
    const file = await writeYaml([cluster, ...FIVE_MACHINES, secretYaml("machine-ssh-key", keys.ed25519, "data")]);
    const r = await nicoRender(["-f", file, "--flake", flake, "--out", out]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.equal("");
    const value = (await nixEval(out, "cluster")) as Record<string, unknown>;
    expect(value.vip).to.equal("192.168.1.100");
    expect(value.initialized).to.equal(true);
    expect(value.network).to.deep.equal({
      interface: "ens18",
      prefixLength: 24,
      gateway: "192.168.1.1",
      nameservers: ["192.168.1.1", "9.9.9.9"],
      virtualRouterId: 42,
    });
    expect(value.workers).to.deep.equal([{ name: "worker-01", ip: "192.168.1.201" }]);
  });

  it("fails (exit 1) on a short control plane, naming spec.controlPlane, and writes nothing", async () => {
    const out = outDir();
    const file = await writeYaml([SEED_CLUSTER, ...FIVE_MACHINES.slice(1)]);
    const r = await nicoRender(["-f", file, "--flake", flake, "--out", out]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include(
      "nico render: error: spec.controlPlane: need 3 control-plane machines matching role=control-plane, 2 free",
    );
    expect(existsSync(out)).to.equal(false);
  });

  it("fails on a topology error, naming the Machine field and the rule", async () => {
    const out = outDir();
    const cluster = SEED_CLUSTER.replace("count: 5", "count: 2").concat("  vip: 10.0.0.100\n");
    const file = await writeYaml([cluster, ...FIVE_MACHINES]);
    const r = await nicoRender(["-f", file, "--flake", flake, "--out", out]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include("cluster.nix cannot be rendered:");
    expect(r.stderr).to.include(
      "Machine cp-01 spec.ipAddress (controlPlane[0].ip): must be in the subnet 10.0.0.0/24 of vip [sameSubnet]",
    );
    expect(r.stderr).to.include("Machine worker-02 spec.ipAddress (workers[1].ip)");
    expect(existsSync(out)).to.equal(false);
  });

  it("fails on objects the API would refuse, naming the document and field", async () => {
    const hostile = SEED_CLUSTER.concat("  network:\n    interface: 'eth0; reboot'\n");
    const r1 = await nicoRender([
      "-f",
      await writeYaml([hostile, ...FIVE_MACHINES]),
      "--flake",
      flake,
      "--out",
      outDir(),
    ]);
    expect(r1.code).to.equal(1);
    expect(r1.stderr).to.match(
      /document 1: KubernetesCluster default\/prod-cluster is invalid:\n {2}spec\.network\.interface: /,
    );
    const badIp = FIVE_MACHINES.map((m) => m.replace("192.168.1.102", "192.168.1.300"));
    const r2 = await nicoRender(["-f", await writeYaml([SEED_CLUSTER, ...badIp]), "--flake", flake, "--out", outDir()]);
    expect(r2.code).to.equal(1);
    expect(r2.stderr).to.match(
      /document 3: Machine default\/cp-02 is invalid:\n {2}spec\.ipAddress: must be an IPv4 or IPv6/,
    );
  });

  it("fails on an encrypted SSH key, without printing the key", async () => {
    const file = await writeYaml([
      SEED_CLUSTER,
      ...FIVE_MACHINES,
      secretYaml("machine-ssh-key", keys.encrypted, "data"),
    ]);
    const r = await nicoRender(["-f", file, "--flake", flake, "--out", outDir()]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include(
      "Machine cp-01 spec.sshKeySecretRef: Secret default/machine-ssh-key key ssh-privatekey: the SSH private key is encrypted",
    );
    expect(r.stderr).not.to.include("PRIVATE KEY");
  });

  it("chooses among several clusters with --cluster and -n, and says when it cannot", async () => {
    const other = SEED_CLUSTER.replace("name: prod-cluster", "name: other").replace(
      "namespace: default",
      "namespace: team",
    );
    const file = await writeYaml([
      SEED_CLUSTER,
      other,
      ...FIVE_MACHINES,
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n",
    ]);
    const several = await nicoRender(["-f", file, "--flake", flake, "--out", outDir()]);
    expect(several.code).to.equal(1);
    expect(several.stderr).to.include("several KubernetesClusters (prod-cluster, other); choose one with --cluster");
    const chosen = await nicoRender(["-f", file, "--cluster", "prod-cluster", "--flake", flake, "--out", outDir()]);
    expect(chosen.code, chosen.stderr).to.equal(0);
    expect(chosen.stderr).to.include("ignoring Namespace team");
    // with -n team, objects without a namespace (the machines) are in "team" too
    const team = await nicoRender(["-f", file, "-n", "team", "--flake", flake, "--out", outDir()]);
    expect(team.code, team.stderr).to.equal(0);
    expect(team.stdout).to.include("KubernetesCluster team/other");
    // machines explicitly in "default" are not the "team" cluster's
    const inDefault = FIVE_MACHINES.map((m) => m.replace("metadata:\n", "metadata:\n  namespace: default\n"));
    const file2 = await writeYaml([SEED_CLUSTER, other, ...inDefault]);
    const short = await nicoRender(["-f", file2, "-n", "team", "--flake", flake, "--out", outDir()]);
    expect(short.code).to.equal(1);
    expect(short.stderr).to.include(
      "spec.controlPlane: need 3 control-plane machines matching role=control-plane, 0 free",
    );
    const none = await nicoRender(["-f", file, "--cluster", "nope", "--flake", flake, "--out", outDir()]);
    expect(none.stderr).to.include("no KubernetesCluster named nope");
  });

  it("refuses a non-empty --out unless --force, and never writes through a symlink there", async () => {
    const out = outDir();
    const file = await writeYaml([SEED_CLUSTER, ...FIVE_MACHINES]);
    const victim = join(dir, "victim.txt");
    await writeFile(victim, "untouched\n");
    await mkdir(out);
    await symlink(victim, join(out, "flake.nix"));
    await symlink(victim, join(out, "cluster.nix"));
    await writeFile(join(out, "keep.txt"), "kept\n");
    const refused = await nicoRender(["-f", file, "--flake", flake, "--out", out]);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.include("exists and is not empty (use --force to write into it)");
    const forced = await nicoRender(["-f", file, "--flake", flake, "--out", out, "--force"]);
    expect(forced.code, forced.stderr).to.equal(0);
    expect(await readFile(victim, "utf8")).to.equal("untouched\n");
    expect((await lstat(join(out, "flake.nix"))).isFile()).to.equal(true);
    expect((await lstat(join(out, "cluster.nix"))).isFile()).to.equal(true);
    expect(await readFile(join(out, "keep.txt"), "utf8")).to.equal("kept\n");
    expect(await nixEval(out, "nodes")).to.have.length(5);
  });

  it("reports a missing file and a missing flake as errors (exit 1)", async () => {
    const noFile = await nicoRender(["-f", join(dir, "none.yaml"), "--flake", flake, "--out", outDir()]);
    expect(noFile.code).to.equal(1);
    expect(noFile.stderr).to.match(/-f .*none\.yaml: ENOENT/);
    const file = await writeYaml([SEED_CLUSTER, ...FIVE_MACHINES]);
    const noFlake = await nicoRender(["-f", file, "--flake", join(dir, "nowhere"), "--out", outDir()]);
    expect(noFlake.code).to.equal(1);
    expect(noFlake.stderr).to.match(/--flake .*nowhere: no such directory/);
  });
});

describe("cli: flake copy", () => {
  let dir: string;
  let src: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nico-copy-"));
    src = join(dir, "src");
    await mkdir(join(src, "nodes", "deep"), { recursive: true });
    await writeFile(join(src, "flake.nix"), "{ outputs = _: { }; }\n");
    await writeFile(join(src, "nodes", "common.nix"), "{ }\n");
    await writeFile(join(src, "nodes", "deep", "x.nix"), "{ }\n");
    await writeFile(join(src, "run.sh"), "#!/bin/sh\n");
    await chmod(join(src, "run.sh"), 0o700);
    await writeFile(join(dir, "secret.txt"), "outside\n");
    await mkdir(join(dir, "outside-dir"));
    await writeFile(join(dir, "outside-dir", "f"), "outside\n");
    await symlink("../common.nix", join(src, "nodes", "deep", "rel-link.nix")); // inside
    await symlink(join(src, "nodes"), join(src, "abs-link")); // inside, absolute
    await symlink("../secret.txt", join(src, "escape.txt")); // outside
    await symlink(join(dir, "outside-dir"), join(src, "result")); // outside (like a nix build result)
    await symlink("missing.nix", join(src, "dangling.nix"));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it("copies files and in-tree symlinks, skips symlinks leaving the tree or dangling", async () => {
    const out = join(dir, "out");
    const r = await copyFlake(src, out, { force: false });
    expect(r.out).to.equal(out);
    expect((await readdir(out)).sort()).to.deep.equal(["abs-link", "flake.nix", "nodes", "run.sh"]);
    expect(await readlink(join(out, "nodes", "deep", "rel-link.nix"))).to.equal("../common.nix");
    expect(await readlink(join(out, "abs-link"))).to.equal("nodes");
    expect(await readFile(join(out, "abs-link", "deep", "x.nix"), "utf8")).to.equal("{ }\n");
    expect((await stat(join(out, "run.sh"))).mode & 0o777).to.equal(0o755);
    expect((await stat(join(out, "flake.nix"))).mode & 0o777).to.equal(0o644);
    expect(r.warnings).to.deep.equal([
      "skipped symlink dangling.nix -> missing.nix: its target does not exist",
      "skipped symlink escape.txt -> ../secret.txt: it points outside the flake directory",
      `skipped symlink result -> ${join(dir, "outside-dir")}: it points outside the flake directory`,
    ]);
    expect(r.entries).to.equal(6);
  });

  it("refuses an --out inside the flake, a flake inside --out, a file as --out, a flake without flake.nix", async () => {
    const refuse = async (flake: string, out: string, message: RegExp): Promise<void> => {
      let err: unknown;
      try {
        await copyFlake(flake, out, { force: true });
      } catch (e) {
        err = e;
      }
      expect(err, `${flake} -> ${out}`).to.be.instanceOf(Error);
      expect((err as Error).message).to.match(message);
    };
    await refuse(src, join(src, "nodes", "new-out"), /must not be the flake directory or inside it/);
    await refuse(src, src, /must not be the flake directory or inside it/);
    await refuse(src, join(src, "abs-link", "x"), /must not be the flake directory or inside it/);
    await refuse(src, dir, /must not contain the flake directory/);
    await refuse(src, join(src, "flake.nix"), /exists and is not a directory/);
    await refuse(join(src, "nodes"), join(dir, "o2"), /no flake\.nix file in it/);
  });
});

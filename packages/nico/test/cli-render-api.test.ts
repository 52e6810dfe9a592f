/**
 * `nico render --cluster` against the testbed's real kube-apiserver + etcd with the CRDs from crds/: the seed's
 * KubernetesCluster, five Machines and their SSH key Secret are created through the API, then rendered into a copy
 * of nix/ (or a probe flake) and evaluated with the offline Nix.
 */
import { expect } from "chai";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { LABELS, type KubernetesClusterSpecInput, type MachineSpecInput } from "@nio/api";
import { createKube, loadKubeConfig, type Kube, type KubeObject } from "@nio/runtime";
import { nixEval, nixFlakeShow, repoRoot, runChecked, startTestbed, type Testbed } from "@nio/testbed";
import { runRenderCommand } from "../src/cli/render.js";
import { kubernetesClusters, machines, secrets } from "../src/resources.js";

const run = promisify(execFile);
const NS = "default";

type ClusterInput = KubeObject & { spec: KubernetesClusterSpecInput };
type MachineInput = KubeObject & { spec: MachineSpecInput };

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

/** The seed's KubernetesCluster ("Usage with NICO" in seeds/003). */
function seedCluster(): ClusterInput {
  return {
    apiVersion: "nico.homystack.com/v1alpha1",
    kind: "KubernetesCluster",
    metadata: { name: "prod-cluster", namespace: NS },
    spec: {
      gitRepo: "https://github.com/your-org/nico-configs.git",
      configurationSubdir: "nix",
      controlPlane: { machineSelector: { matchLabels: { role: "control-plane" } }, count: 3 },
      dataPlane: { machineSelector: { matchLabels: { role: "worker" } }, count: 5 },
    },
  };
}

/** The seed's Machine ("Machine Requirements" in seeds/003), name, role and address varied. */
function seedMachine(name: string, role: string, ip: string, labels: Record<string, string> = {}): MachineInput {
  return {
    apiVersion: "nio.homystack.com/v1alpha1",
    kind: "Machine",
    metadata: { name, namespace: NS, labels: { role, ...labels } },
    spec: { hostname: `${name}.local`, ipAddress: ip, sshUser: "root", sshKeySecretRef: { name: "machine-ssh-key" } },
  };
}

describe("cli: nico render --cluster (API, real kube-apiserver)", function () {
  this.timeout(300_000);
  let tb: Testbed;
  let kube: Kube;
  let dir: string;
  let kubeconfig: string;
  let probeFlake: string;
  let publicKey: string;
  let n = 0;
  const outDir = (): string => join(dir, `out-${++n}`);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nico-cli-api-"));
    tb = await startTestbed({ hosts: 0 });
    kubeconfig = tb.controlPlane.kubeconfigPath;
    const kubectl = (args: string[]): Promise<string> =>
      runChecked(tb.binaries.kubectl, ["--kubeconfig", kubeconfig, ...args]);
    await kubectl(["apply", "--server-side", "-f", join(repoRoot, "crds")]);
    await kubectl(["wait", "--for=condition=Established", "--timeout=30s", "crd", "--all"]);
    kube = createKube(loadKubeConfig(kubeconfig));

    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "api@test", "-f", join(dir, "id")]);
    publicKey = (await readFile(join(dir, "id.pub"), "utf8")).trim().split(" ").slice(0, 2).join(" ");
    const privateKey = await readFile(join(dir, "id"));
    await kube.create<KubeObject & { data: Record<string, string> }>(secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "machine-ssh-key", namespace: NS },
      data: { "ssh-privatekey": privateKey.toString("base64") },
    });
    const fleet = [
      seedMachine("cp-01", "control-plane", "192.168.1.101"),
      seedMachine("cp-02", "control-plane", "192.168.1.102"),
      seedMachine("cp-03", "control-plane", "192.168.1.103"),
      seedMachine("worker-01", "worker", "192.168.1.201"),
      // claimed by another cluster: never selected
      seedMachine("worker-02", "worker", "192.168.1.202", { [LABELS.cluster]: "other-cluster" }),
    ];
    for (const m of fleet) await kube.create(machines, m);
    await kube.create(kubernetesClusters, seedCluster());

    probeFlake = join(dir, "probe");
    await mkdir(probeFlake);
    await writeFile(join(probeFlake, "flake.nix"), "{ outputs = { self }: { cluster = import ./cluster.nix; }; }\n");
  });

  after(async () => {
    kube?.close();
    await tb?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("reads the cluster, machines and Secret from the API and renders what the operator would", async () => {
    const out = outDir();
    const r = await nicoRender([
      "--cluster",
      "prod-cluster",
      "--kubeconfig",
      kubeconfig,
      "--flake",
      probeFlake,
      "--out",
      out,
    ]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.equal(
      "nico render: warning: spec.dataPlane: need 5 workers matching role=worker, 1 free (not usable: worker-02: claimed by cluster other-cluster) (rendering the 1 available)\n",
    );
    expect(r.stdout).to.include("KubernetesCluster default/prod-cluster (from the API");
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
      workers: [{ name: "worker-01", ip: "192.168.1.201" }],
      authorizedKeys: [publicKey],
    });
    expect((await stat(join(out, "cluster.nix"))).mode & 0o777).to.equal(0o644);
  });

  it("renders into a copy of nix/ whose `nix flake show` lists exactly the nodes (and minimal)", async function () {
    const nixDir = join(repoRoot, "nix");
    if (!existsSync(join(nixDir, "flake.nix"))) {
      // nix/ is written by another part of the project; without it there is no flake to show.
      this.skip();
    }
    const out = outDir();
    const r = await nicoRender([
      "--cluster",
      "prod-cluster",
      "--kubeconfig",
      kubeconfig,
      "--flake",
      nixDir,
      "--out",
      out,
    ]);
    expect(r.code, r.stderr).to.equal(0);
    const show = await nixFlakeShow(out);
    expect(Object.keys(show.nixosConfigurations as Record<string, unknown>).sort()).to.deep.equal([
      "cp-01",
      "cp-02",
      "cp-03",
      "minimal",
      "worker-01",
    ]);
  });

  it("follows status.initialized and spec changes", async () => {
    await kube.patch(
      kubernetesClusters,
      { namespace: NS, name: "prod-cluster" },
      { status: { initialized: true } },
      "merge",
      { subresource: "status" },
    );
    await kube.patch(
      kubernetesClusters,
      { namespace: NS, name: "prod-cluster" },
      { spec: { vip: "192.168.1.100", dataPlane: { count: 1 }, network: { nameservers: ["192.168.1.1"] } } },
      "merge",
    );
    const out = outDir();
    const r = await nicoRender([
      "--cluster",
      "prod-cluster",
      "--kubeconfig",
      kubeconfig,
      "--flake",
      probeFlake,
      "--out",
      out,
    ]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.equal("");
    const value = (await nixEval(out, "cluster")) as { initialized: boolean; vip: string; network: unknown };
    expect(value.initialized).to.equal(true);
    expect(value.vip).to.equal("192.168.1.100");
    expect(value.network).to.deep.include({ nameservers: ["192.168.1.1"], interface: "eth0" });
  });

  it("fails clearly (exit 1) for a cluster that does not exist or an unreadable kubeconfig", async () => {
    const missing = await nicoRender([
      "--cluster",
      "nope",
      "--kubeconfig",
      kubeconfig,
      "--flake",
      probeFlake,
      "--out",
      outDir(),
    ]);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.equal("nico render: error: KubernetesCluster default/nope not found\n");
    const noConfig = await nicoRender([
      "--cluster",
      "prod-cluster",
      "--kubeconfig",
      join(dir, "no-kubeconfig"),
      "--flake",
      probeFlake,
      "--out",
      outDir(),
    ]);
    expect(noConfig.code).to.equal(1);
    expect(noConfig.stderr).to.match(/^nico render: error: .*no-kubeconfig/);
  });

  it("refuses a short control plane, naming spec.controlPlane", async () => {
    await kube.delete(machines, { namespace: NS, name: "cp-03" });
    const r = await nicoRender([
      "--cluster",
      "prod-cluster",
      "--kubeconfig",
      kubeconfig,
      "--flake",
      probeFlake,
      "--out",
      outDir(),
    ]);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include(
      "nico render: error: spec.controlPlane: need 3 control-plane machines matching role=control-plane, 2 free",
    );
  });
});

import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { LABELS } from "@nio/api";
import { nixOfflineChecked, type Host, type RebuildRecord } from "@nio/testbed";
import { NS, condition, machineFor, seedCluster, startNicoTestEnv, until, type NicoTestEnv } from "./support/env.js";
import { kubernetesClusters, machines } from "../src/resources.js";

const CP = ["cp-01", "cp-02", "cp-03"];
const WORKERS = ["worker-01", "worker-02", "worker-03"];
const VIP = "127.0.0.250";

interface ClusterNix {
  name: string;
  vip: string | null;
  initialized: boolean;
  controlPlane: { name: string; ip: string }[];
  workers: { name: string; ip: string }[];
  authorizedKeys: string[];
}

const started = (r: RebuildRecord): number => Date.parse(r.time);
const finished = (r: RebuildRecord): number => Date.parse(r.time) + r.durationMs;

async function successes(host: Host): Promise<RebuildRecord[]> {
  return (await host.rebuildRecords()).filter((r) => r.result === "success");
}

/** Evaluates the cluster.nix a host's last rebuild got, with real Nix. */
async function clusterNixOf(host: Host, record: RebuildRecord, dir: string): Promise<ClusterNix> {
  const file = join(dir, `${host.name}-${record.time}.nix`);
  await writeFile(file, await host.readFile(`${record.flakeDir}/cluster.nix`));
  return JSON.parse(await nixOfflineChecked(["eval", "--json", "--file", file])) as ClusterNix;
}

async function gone(env: NicoTestEnv, cluster: string, timeoutMs = 60_000): Promise<void> {
  await until(
    `${cluster} gone`,
    async () => (await env.cluster(cluster).catch(() => undefined)) === undefined,
    (isGone) => isGone,
    timeoutMs,
  );
}

describe("NICO: a KubernetesCluster from labelled machines, and back", function () {
  this.timeout(600_000);
  let env: NicoTestEnv;
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "nico-cluster-"));
    env = await startNicoTestEnv({ hosts: [...CP, ...WORKERS] });
    for (const name of CP) await env.create(machineFor(env.host(name), { role: "control-plane" }));
    for (const name of WORKERS.slice(0, 2)) await env.create(machineFor(env.host(name), { role: "worker" }));
    await env.create(machineFor(env.host("worker-03"), { role: "spare" }));
  });
  after(async () => {
    await env?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it("builds the seed's cluster: claims, rollout order, cluster.nix, token, kubeconfig, Ready", async () => {
    await env.create(
      seedCluster("prod-cluster", env.repoUrl, {
        vip: VIP,
        dataPlane: { machineSelector: { matchLabels: { role: "worker" } }, count: 2 },
      }),
    );
    const ready = await until(
      "cluster Ready",
      () => env.cluster("prod-cluster"),
      (c) => c.status?.phase === "Ready",
      300_000,
    );
    expect(ready.status?.controlPlaneReady).to.equal("3/3");
    expect(ready.status?.dataPlaneReady).to.equal("2/2");
    expect(ready.status?.initialized).to.equal(true);
    expect(ready.status?.endpoint).to.equal(`https://${VIP}:6443`);
    expect(condition(ready, "MachinesClaimed")?.status).to.equal("True");
    expect(condition(ready, "Ready")?.status).to.equal("True");
    expect(ready.status?.nodes?.map((n) => [n.machine, n.role, n.index])).to.deep.equal([
      ["cp-01", "control-plane", 0],
      ["cp-02", "control-plane", 1],
      ["cp-03", "control-plane", 2],
      ["worker-01", "worker", 0],
      ["worker-02", "worker", 1],
    ]);

    // Claims: every node's Machine carries the cluster and role labels; the spare does not.
    for (const name of [...CP, "worker-01", "worker-02"]) {
      const m = await env.machine(name);
      expect(m.metadata.labels?.[LABELS.cluster], name).to.equal("prod-cluster");
      expect(m.metadata.labels?.[LABELS.role], name).to.equal(CP.includes(name) ? "control-plane" : "worker");
    }
    expect((await env.machine("worker-03")).metadata.labels?.[LABELS.cluster]).to.equal(undefined);

    // Five configurations, each with its own flake attribute and #minimal for removal, owned by the cluster.
    const configs = await env.configurations("prod-cluster");
    expect(configs.map((c) => c.metadata.name).sort()).to.deep.equal(
      [...CP, "worker-01", "worker-02"].map((n) => `prod-cluster-${n}`).sort(),
    );
    for (const c of configs) {
      expect(c.spec.flake).to.equal(`#${c.spec.machineRef.name}`);
      expect(c.spec.onRemoveFlake).to.equal("#minimal");
      expect(c.spec.ref).to.equal(ready.status?.commit);
      expect(c.metadata.ownerReferences?.[0]?.kind).to.equal("KubernetesCluster");
    }

    // Each host built its own attribute, and the cluster.nix it got evaluates and lists all five nodes.
    const token = Buffer.from((await env.secret("prod-cluster-join-token"))?.data?.token ?? "", "base64");
    expect(token.length).to.be.at.least(64);
    const tokenSha = createHash("sha256").update(token).digest("hex");
    for (const name of [...CP, "worker-01", "worker-02"]) {
      const host = env.host(name);
      const ok = await successes(host);
      expect(ok.length, name).to.be.at.least(1);
      const last = ok[ok.length - 1] as RebuildRecord;
      expect(last.attr).to.equal(name);
      const nix = await clusterNixOf(host, last, scratch);
      expect(nix.controlPlane.map((n) => n.name)).to.deep.equal(CP);
      expect(nix.workers.map((n) => n.name)).to.deep.equal(["worker-01", "worker-02"]);
      expect(nix.controlPlane[0]?.ip).to.equal(host.name === "cp-01" ? host.address : env.host("cp-01").address);
      expect(nix.vip).to.equal(VIP);
      expect(nix.initialized).to.equal(true);
      expect(nix.authorizedKeys).to.have.length(1);
      // The token is a root-only host file, never part of the flake source.
      expect(await host.exists("/var/lib/nico/join-token")).to.equal(true);
      expect((await host.fileMode("/var/lib/nico/join-token")) & 0o777).to.equal(0o400);
      expect((await host.readFile("/var/lib/nico/join-token")).equals(token)).to.equal(true);
      expect((last.files ?? []).some((f) => f.sha256 === tokenSha || f.path.endsWith("join-token"))).to.equal(false);
      expect(await host.exists("/root/.ssh/id_ed25519")).to.equal(true);
    }

    // Rollout order: cp-01 bootstraps alone (initialized = false), then re-applies with initialized = true; the other
    // control-plane nodes follow one at a time, workers only after the whole control plane.
    const cp1 = await successes(env.host("cp-01"));
    const first = cp1[0] as RebuildRecord;
    expect((await clusterNixOf(env.host("cp-01"), first, scratch)).initialized).to.equal(false);
    const cp2First = (await successes(env.host("cp-02")))[0] as RebuildRecord;
    const cp3First = (await successes(env.host("cp-03")))[0] as RebuildRecord;
    const initDone = cp1.filter((r) => started(r) < started(cp2First)).map(finished);
    expect(initDone.length, "cp-01 applied twice before cp-02 started").to.be.at.least(2);
    expect(started(cp3First)).to.be.greaterThan(finished(cp2First));
    for (const w of ["worker-01", "worker-02"]) {
      const wFirst = (await successes(env.host(w)))[0] as RebuildRecord;
      expect(started(wFirst), w).to.be.greaterThan(finished(cp3First));
    }

    // The kubeconfig Secret points at the VIP.
    const kc = Buffer.from((await env.secret("prod-cluster-kubeconfig"))?.data?.value ?? "", "base64").toString();
    expect(kc).to.include(`server: https://${VIP}:6443`);
    expect(ready.status?.kubeconfigSecret).to.equal("prod-cluster-kubeconfig");

    // The rendered cluster.nix is published for people.
    const topo = await env.configMap("prod-cluster-topology");
    expect(topo?.data?.["cluster.nix"]).to.include('name = "prod-cluster";');
  });

  it("scales the workers 2 → 3 (claims one more) and back (cleans it up, then releases it)", async () => {
    await env.kube.patch(
      machines,
      { namespace: NS, name: "worker-03" },
      { metadata: { labels: { role: "worker" } } },
      "merge",
    );
    await env.kube.patch(
      kubernetesClusters,
      { namespace: NS, name: "prod-cluster" },
      { spec: { dataPlane: { count: 3 } } },
      "merge",
    );
    const scaled = await until(
      "3 workers ready",
      () => env.cluster("prod-cluster"),
      (c) => c.status?.dataPlaneReady === "3/3" && c.status.phase === "Ready",
      300_000,
    );
    expect(scaled.status?.nodes?.map((n) => n.machine)).to.include("worker-03");
    expect((await env.machine("worker-03")).metadata.labels?.[LABELS.cluster]).to.equal("prod-cluster");
    const w3 = await successes(env.host("worker-03"));
    expect(w3.at(-1)?.attr).to.equal("worker-03");
    // Everyone's cluster.nix now lists three workers.
    const cp1Last = (await successes(env.host("cp-01"))).at(-1) as RebuildRecord;
    expect((await clusterNixOf(env.host("cp-01"), cp1Last, scratch)).workers).to.have.length(3);

    await env.kube.patch(
      kubernetesClusters,
      { namespace: NS, name: "prod-cluster" },
      { spec: { dataPlane: { count: 2 } } },
      "merge",
    );
    await until(
      "worker-03 released",
      () => env.machine("worker-03"),
      (m) => m.metadata.labels?.[LABELS.cluster] === undefined,
      300_000,
    );
    expect(await env.configuration("prod-cluster-worker-03")).to.equal(undefined);
    const removed = (await successes(env.host("worker-03"))).at(-1);
    expect(removed?.attr).to.equal("minimal");
    await until(
      "back to 2 workers, Ready",
      () => env.cluster("prod-cluster"),
      (c) => c.status?.dataPlaneReady === "2/2" && c.status.phase === "Ready",
      300_000,
    );
  });

  it("a pushed commit (signed webhook) rolls through: control plane one at a time, then workers", async () => {
    const before = await env.cluster("prod-cluster");
    const counts = new Map<string, number>();
    for (const name of [...CP, "worker-01", "worker-02"])
      counts.set(name, (await env.host(name).rebuildRecords()).length);
    const commit = await env.push("v2", { "nix/VERSION": "v2\n" });
    expect(commit).to.not.equal(before.status?.commit);
    expect(await env.notifyPush()).to.equal(202);
    const done = await until(
      "every node on the new commit",
      () => env.cluster("prod-cluster"),
      (c) =>
        c.status?.commit === commit &&
        c.status.phase === "Ready" &&
        (c.status.nodes ?? []).every((n) => n.appliedCommit === commit && n.ready),
      300_000,
    );
    expect(done.status?.nodes).to.have.length(5);
    const firstNew = async (name: string): Promise<RebuildRecord> => {
      const recs = (await env.host(name).rebuildRecords()).slice(counts.get(name));
      const rec = recs.find((r) => r.result === "success");
      expect(rec, `${name} applied the new commit`).to.not.equal(undefined);
      return rec as RebuildRecord;
    };
    const [c1, c2, c3, w1, w2] = await Promise.all([...CP, "worker-01", "worker-02"].map(firstNew));
    expect(started(c2 as RebuildRecord)).to.be.greaterThan(finished(c1 as RebuildRecord));
    expect(started(c3 as RebuildRecord)).to.be.greaterThan(finished(c2 as RebuildRecord));
    expect(started(w1 as RebuildRecord)).to.be.greaterThan(finished(c3 as RebuildRecord));
    // maxUnavailable 1: the two workers never update at the same time.
    const [a, b] = [w1 as RebuildRecord, w2 as RebuildRecord].sort((x, y) => started(x) - started(y));
    expect(started(b as RebuildRecord)).to.be.greaterThan(finished(a as RebuildRecord));
  });

  it("a second cluster wanting the same machines waits with a clear condition and provisions nothing", async () => {
    await env.create(
      seedCluster("other-cluster", env.repoUrl, {
        dataPlane: { machineSelector: { matchLabels: { role: "worker" } }, count: 1 },
      }),
    );
    const pending = await until(
      "other-cluster Pending",
      () => env.cluster("other-cluster"),
      (c) => c.status?.phase === "Pending",
    );
    const claimed = condition(pending, "MachinesClaimed");
    expect(claimed?.status).to.equal("False");
    expect(claimed?.reason).to.equal("WaitingForMachines");
    expect(claimed?.message).to.match(/need 3 control-plane machines matching role=control-plane, 0 free/);
    expect(await env.configurations("other-cluster")).to.have.length(0);
    expect(await env.secret("other-cluster-join-token")).to.equal(undefined);
    await env.kube.delete(kubernetesClusters, { namespace: NS, name: "other-cluster" });
    await gone(env, "other-cluster");
  });

  it("deletes the cluster: workers, then control plane (first node last) get #minimal; claims and Secrets go", async () => {
    const before = new Map<string, number>();
    for (const name of [...CP, "worker-01", "worker-02"])
      before.set(name, (await env.host(name).rebuildRecords()).length);
    await env.kube.delete(kubernetesClusters, { namespace: NS, name: "prod-cluster" });
    await gone(env, "prod-cluster", 300_000);
    const minimalAt = new Map<string, RebuildRecord>();
    for (const name of [...CP, "worker-01", "worker-02"]) {
      const recs = (await env.host(name).rebuildRecords()).slice(before.get(name));
      const minimal = recs.find((r) => r.attr === "minimal" && r.result === "success");
      expect(minimal, `${name} got #minimal`).to.not.equal(undefined);
      minimalAt.set(name, minimal as RebuildRecord);
      const m = await env.machine(name);
      expect(m.metadata.labels?.[LABELS.cluster], name).to.equal(undefined);
      expect(m.metadata.labels?.[LABELS.role], name).to.equal(undefined);
      expect(m.metadata.labels?.role).to.equal(CP.includes(name) ? "control-plane" : "worker");
    }
    const at = (n: string): RebuildRecord => minimalAt.get(n) as RebuildRecord;
    const lastWorker = Math.max(finished(at("worker-01")), finished(at("worker-02")));
    expect(started(at("cp-03"))).to.be.greaterThan(lastWorker);
    expect(started(at("cp-02"))).to.be.greaterThan(finished(at("cp-03")));
    expect(started(at("cp-01"))).to.be.greaterThan(finished(at("cp-02")));
    expect(await env.configurations("prod-cluster")).to.have.length(0);
    expect(await env.secret("prod-cluster-join-token")).to.equal(undefined);
    expect(await env.secret("prod-cluster-kubeconfig")).to.equal(undefined);
    expect(await env.configMap("prod-cluster-topology")).to.equal(undefined);
  });
});

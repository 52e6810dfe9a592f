import { expect } from "chai";
import { ANNOTATIONS, LABELS } from "@nio/api";
import { readJsonLines, sleep, type AnywhereRecord, type K3sRecord, type KeepalivedRecord } from "@nio/testbed";
import {
  NS,
  SSH_KEY_SECRET,
  condition,
  machineFor,
  seedCluster,
  startNicoTestEnv,
  until,
  type NicoTestEnv,
} from "./support/env.js";
import { clusterEvents, matching, metricSamples, metricValue, type MetricSample } from "./support/observe.js";
import {
  kubernetesClusters,
  machines,
  nixosConfigurations,
  secrets,
  type ClusterObject,
  type ConfigObject,
} from "../src/resources.js";

/**
 * Edge cases of the KubernetesCluster controller against the testbed: clusters racing for the same machines, too few
 * machines, the k3s/keepalived settings every activation got, reinstalling the first node after `initialized`,
 * hostile input, and the metrics and events of a lifecycle. One testbed for the file; hosts are reused.
 */

const RACE = ["rc-1", "rc-2", "rc-3"];
const REINSTALL = ["rs-cp", "rs-w"];
const HOSTILE = ["hx-good", "hx-target"];
const OTHER_NS = "edge-two";
const VIP = "127.0.0.240";
const REINSTALL_VIP = "127.0.0.241";
const JOIN_TOKEN_PATH = "/var/lib/nico/join-token";
const CONTROLLER = "kubernetescluster";

/** A cluster of `count` control-plane nodes chosen by `role=<role>` and no workers. */
function cpOnly(
  name: string,
  repoUrl: string,
  role: string,
  count: number,
  extra: Record<string, unknown> = {},
): ClusterObject {
  return seedCluster(name, repoUrl, {
    controlPlane: { machineSelector: { matchLabels: { role } }, count },
    dataPlane: undefined,
    ...extra,
  });
}

async function gone(env: NicoTestEnv, name: string, timeoutMs = 120_000): Promise<void> {
  await until(
    `${name} gone`,
    async () => (await env.cluster(name).catch(() => undefined)) === undefined,
    (isGone) => isGone,
    timeoutMs,
  );
}

async function setLabel(env: NicoTestEnv, machine: string, key: string, value: string | null): Promise<void> {
  await env.kube.patch(machines, { namespace: NS, name: machine }, { metadata: { labels: { [key]: value } } }, "merge");
}

const starts = <T extends { event: string }>(records: T[]): T[] => records.filter((r) => r.event === "start");

describe("NICO edge cases: races, shortages, bootstrap settings, reinstall, hostile input, metrics", function () {
  this.timeout(600_000);
  let env: NicoTestEnv;
  const samples = (): Promise<MetricSample[]> => metricSamples(env.nico.manager.metrics.registry);
  /** nico_machine_claims_total{result="claimed"} before cluster "few" existed. */
  let claimedBeforeFew = 0;

  before(async () => {
    env = await startNicoTestEnv({ hosts: [...RACE, ...REINSTALL, ...HOSTILE, "one-cp", "two-cp"] });
    // Nix evaluation is irrelevant for the race and the hostile input: instant applies (with the k3s kubeconfig).
    for (const h of [...RACE, "hx-good", "one-cp", "two-cp"]) await env.host(h).setInstantApply(true, { k3s: true });
    for (const h of RACE) await env.create(machineFor(env.host(h), { role: "control-plane" }));
  });
  after(async () => {
    await env?.stop();
  });

  it("two clusters racing for the same 3 machines: exactly one wins every machine, the other waits", async () => {
    // What each round's loser provisioned (checked after all rounds, so every round runs).
    const provisioned: string[] = [];
    for (let round = 1; round <= 3; round++) {
      const [a, b] = [`race-a${round}`, `race-b${round}`];
      try {
        provisioned.push(...(await raceRound(round, a, b)));
      } finally {
        // Clean up even when the round failed, so the machines are free for the next round and the next tests.
        await Promise.all([a, b].map((n) => env.kube.delete(kubernetesClusters, { namespace: NS, name: n })));
        await Promise.all([gone(env, a), gone(env, b)]);
      }
      for (const m of RACE) {
        expect((await env.machine(m)).metadata.labels?.[LABELS.cluster], `${m} released`).to.equal(undefined);
      }
    }
    expect(provisioned, "what the losers provisioned").to.deep.equal([]);
  });

  /** One race; returns what the loser provisioned although it lost (nothing, hopefully). */
  async function raceRound(round: number, a: string, b: string): Promise<string[]> {
    const violations = new Set<string>();
    let loserHas: string[] = [];
    let bothTokens: string | undefined;
    let sampling = true;
    // While the race runs: never configurations for both clusters at once (nor join tokens: reported, not fatal).
    const sampler = (async () => {
      while (sampling) {
        const cfgs = await env.kube.list<ConfigObject>(nixosConfigurations, { namespace: NS });
        const owners = new Set(cfgs.items.map((c) => c.metadata.labels?.[LABELS.cluster]));
        if (owners.has(a) && owners.has(b)) violations.add(`round ${round}: configurations for both clusters`);
        const tokens = await Promise.all([a, b].map((n) => env.secret(`${n}-join-token`)));
        if (tokens.every((t) => t !== undefined)) bothTokens = `round ${round}: join tokens for both clusters at once`;
        await sleep(100);
      }
    })();
    try {
      await Promise.all([
        env.create(cpOnly(a, env.repoUrl, "control-plane", 3)),
        env.create(cpOnly(b, env.repoUrl, "control-plane", 3)),
      ]);
      const owners = await until(
        `round ${round}: every machine claimed by one cluster`,
        () => Promise.all(RACE.map(async (m) => (await env.machine(m)).metadata.labels?.[LABELS.cluster])),
        (o) => o.every((x) => x !== undefined && x === o[0]),
        120_000,
      );
      const winner = owners[0] as string;
      const loser = winner === a ? b : a;
      if (round === 1) {
        const ready = await until(
          `${winner} Ready`,
          () => env.cluster(winner),
          (c) => c.status?.phase === "Ready",
        );
        expect(ready.status?.controlPlaneReady).to.equal("3/3");
      } else {
        await until(
          `${winner} emits 3 configurations`,
          () => env.configurations(winner),
          (c) => c.length === 3,
        );
      }
      const lost = await until(
        `${loser} Pending`,
        () => env.cluster(loser),
        (c) => c.status?.phase === "Pending" && condition(c, "MachinesClaimed") !== undefined,
      );
      const claimed = condition(lost, "MachinesClaimed");
      expect(claimed?.status, loser).to.equal("False");
      expect(claimed?.reason).to.equal("WaitingForMachines");
      expect(claimed?.message).to.match(/need 3 control-plane machines matching role=control-plane, 0 free/);
      expect(claimed?.message).to.include(`claimed by cluster ${winner}`);
      for (const m of RACE) {
        expect((await env.machine(m)).metadata.labels?.[LABELS.role], m).to.equal("control-plane");
      }
      // The loser provisioned nothing.
      const found = {
        configurations: (await env.configurations(loser)).length > 0,
        "join-token Secret": (await env.secret(`${loser}-join-token`)) !== undefined,
        "topology ConfigMap": (await env.configMap(`${loser}-topology`)) !== undefined,
        "status.nodes": (lost.status?.nodes?.length ?? 0) > 0,
      };
      loserHas = Object.entries(found)
        .filter(([, v]) => v)
        .map(([k]) => `round ${round}: loser ${loser} (winner ${winner}) has ${k}`);
    } finally {
      sampling = false;
      await sampler;
    }
    expect([...violations]).to.deep.equal([]);
    return bothTokens ? [...loserHas, bothTokens] : loserHas;
  }

  it("too few machines: Pending with a clear condition, nothing provisioned; a third machine lets it proceed", async () => {
    await setLabel(env, "rc-3", "role", null);
    // This cluster also shows the bootstrap settings and the metrics below: real Nix evaluation from here on.
    for (const h of RACE) await env.host(h).setInstantApply(false);
    claimedBeforeFew = metricValue(await samples(), "nico_machine_claims_total", { result: "claimed" });
    await env.create(cpOnly("few", env.repoUrl, "control-plane", 3, { vip: VIP }));
    const pending = await until(
      "few Pending",
      () => env.cluster("few"),
      (c) => c.status?.phase === "Pending" && condition(c, "MachinesClaimed")?.status === "False",
    );
    const claimed = condition(pending, "MachinesClaimed");
    expect(claimed?.reason).to.equal("WaitingForMachines");
    expect(claimed?.message).to.match(/^need 3 control-plane machines matching role=control-plane, 2 free/);
    expect(condition(pending, "Ready")?.status).to.not.equal("True");
    // A few reconciles later still nothing: no claim, no configuration, no token, no topology.
    await sleep(2_000);
    for (const m of RACE) expect((await env.machine(m)).metadata.labels?.[LABELS.cluster], m).to.equal(undefined);
    expect(await env.configurations("few")).to.have.length(0);
    expect(await env.secret("few-join-token")).to.equal(undefined);
    expect(await env.configMap("few-topology")).to.equal(undefined);
    expect((await env.cluster("few")).status?.phase).to.equal("Pending");

    await setLabel(env, "rc-3", "role", "control-plane");
    const ready = await until(
      "few Ready",
      () => env.cluster("few"),
      (c) => c.status?.phase === "Ready",
      240_000,
    );
    expect(ready.status?.nodes?.map((n) => [n.machine, n.role, n.index])).to.deep.equal([
      ["rc-1", "control-plane", 0],
      ["rc-2", "control-plane", 1],
      ["rc-3", "control-plane", 2],
    ]);
    expect(condition(ready, "MachinesClaimed")?.status).to.equal("True");
    expect(ready.status?.initialized).to.equal(true);
  });

  it("k3s and keepalived settings per node: only the first node's first activation bootstraps", async () => {
    const serverAddr = `https://${VIP}:6443`;
    // Activations of the race (instant applies) carry no settings; the evaluated ones of cluster "few" do.
    const evaluated = (recs: K3sRecord[]): K3sRecord[] => starts(recs).filter((r) => r.instant !== true);
    const byHost = new Map<string, K3sRecord[]>();
    for (const h of RACE) byHost.set(h, evaluated(await env.host(h).k3sRecords()));
    const [first, ...laterOnFirst] = byHost.get("rc-1") ?? [];
    expect(first, "rc-1 started k3s").to.not.equal(undefined);
    expect(first?.clusterInit, "first activation of the first node").to.equal(true);
    expect(first?.serverAddr ?? "").to.equal("");
    expect(laterOnFirst.length, "rc-1 re-applied after initialized").to.be.at.least(1);
    const later = [...laterOnFirst, ...(byHost.get("rc-2") ?? []), ...(byHost.get("rc-3") ?? [])];
    expect(byHost.get("rc-2"), "rc-2 started k3s").to.not.have.length(0);
    expect(byHost.get("rc-3"), "rc-3 started k3s").to.not.have.length(0);
    for (const r of [first, ...later]) {
      expect(r?.role).to.equal("server");
      expect(r?.tokenFile).to.equal(JOIN_TOKEN_PATH);
      expect(r?.tokenSet, "no token in the Nix config").to.equal(false);
      expect(r?.result, `${r?.attr} ${r?.time}: ${r?.error ?? ""}`).to.equal("running");
    }
    for (const r of later) {
      expect(r.clusterInit ?? false, `${r.attr} ${r.time}`).to.equal(false);
      expect(r.serverAddr, `${r.attr} ${r.time}`).to.equal(serverAddr);
      expect(r.extraFlags).to.include(`--tls-san=${VIP}`);
    }

    const vrrp = (r: KeepalivedRecord | undefined): Record<string, unknown> | undefined => r?.vrrpInstances?.nico_vip;
    for (const [index, h] of RACE.entries()) {
      const ka = starts(await env.host(h).keepalivedRecords());
      expect(ka.length, `${h} started keepalived`).to.be.at.least(1);
      for (const r of ka) {
        const inst = vrrp(r);
        expect(inst?.priority, h).to.equal(150 - index);
        expect(inst?.state, h).to.equal(index === 0 ? "MASTER" : "BACKUP");
        expect(inst?.virtualIps, h).to.deep.equal([{ addr: `${VIP}/24` }]);
        expect(inst?.virtualRouterId, h).to.equal(51);
        expect(inst?.unicastSrcIp, h).to.equal(env.host(h).address);
      }
    }
  });

  it("metrics move and per-cluster series go with the cluster; events mark every transition", async () => {
    const uid = (await env.cluster("few")).metadata.uid;
    const ready = await samples();
    const before = {
      released: metricValue(ready, "nico_machine_claims_total", { result: "released" }),
      reconciles: metricValue(ready, "nico_reconcile_total", { controller: CONTROLLER }),
      durations: metricValue(ready, "nico_reconcile_duration_seconds_count", { controller: CONTROLLER }),
    };
    try {
      expect(metricValue(ready, "nico_clusters_total", { phase: "Ready" })).to.equal(1);
      expect(metricValue(ready, "nico_clusters_total")).to.equal(1);
      const nodes = (role: string, state: string): number =>
        metricValue(ready, "nico_cluster_nodes", { cluster: "few", role, state });
      expect(nodes("control-plane", "ready")).to.equal(3);
      expect(nodes("control-plane", "notready")).to.equal(0);
      expect(nodes("worker", "ready")).to.equal(0);
      expect(metricValue(ready, "nico_machine_claims_total", { result: "claimed" })).to.be.at.least(
        claimedBeforeFew + 3,
      );
      expect(before.reconciles).to.be.greaterThan(0);
      expect(before.durations).to.be.greaterThan(0);
    } finally {
      // Deleting the cluster is the rest of the lifecycle; it also frees rc-* for the tests below.
      for (const h of RACE) await env.host(h).setInstantApply(true, { k3s: true });
      await env.kube.delete(kubernetesClusters, { namespace: NS, name: "few" });
      await gone(env, "few", 180_000);
    }
    const after = await until(
      "series of few gone",
      samples,
      (s) => metricValue(s, "nico_clusters_total") === 0,
      10_000,
    );
    expect(after.filter((s) => s.name === "nico_cluster_nodes" && s.labels.cluster === "few")).to.deep.equal([]);
    expect(metricValue(after, "nico_machine_claims_total", { result: "released" })).to.be.at.least(before.released + 3);
    expect(metricValue(after, "nico_reconcile_total", { controller: CONTROLLER })).to.be.greaterThan(before.reconciles);
    expect(metricValue(after, "nico_reconcile_duration_seconds_count", { controller: CONTROLLER })).to.be.greaterThan(
      before.durations,
    );
    // Registered (whether the races above counted conflicts as errors depends on timing).
    expect(env.nico.manager.metrics.registry.getSingleMetric("nico_reconcile_errors_total")).to.not.equal(undefined);

    const expected = [
      "PhasePending",
      "MachineClaimed",
      "JoinTokenCreated",
      "ConfigurationCreated",
      "PhaseProvisioning",
      "Initialized",
      "KubeconfigStored",
      "PhaseReady",
      "PhaseDeleting",
      "NodeRemoving",
      "MachineReleased",
      "Deleted",
    ];
    const evs = await until(
      "every lifecycle event of few",
      () => clusterEvents(env.kube, "few", uid),
      (e) => expected.every((r) => e.some((x) => x.reason === r)),
      15_000,
    ).catch(async (err: unknown) => {
      const seen = (await clusterEvents(env.kube, "few", uid)).map((e) => e.reason);
      throw new Error(`${String(err)}; missing ${expected.filter((r) => !seen.includes(r)).join(", ")}`);
    });
    const count = (reason: string): number =>
      evs.filter((e) => e.reason === reason).reduce((n, e) => n + (e.count ?? 1), 0);
    // Each transition once (a repeat within the dedup window shows as count > 1 on the same Event).
    const summary = evs.map((e) => `${e.reason}×${e.count ?? 1}`).join(", ");
    const once = ["JoinTokenCreated", "Initialized", "KubeconfigStored", "Deleted"];
    expect(Object.fromEntries(once.map((r) => [r, count(r)])), `events of few: ${summary}`).to.deep.equal(
      Object.fromEntries(once.map((r) => [r, 1])),
    );
    // Per-node changes are batched (one Event per batch, naming the machines): together they name all three.
    for (const reason of ["MachineClaimed", "ConfigurationCreated", "NodeRemoving", "MachineReleased"]) {
      const text = evs
        .filter((e) => e.reason === reason)
        .map((e) => e.message ?? "")
        .join(" ");
      for (const m of RACE) expect(text, `${reason} events name ${m}: ${summary}`).to.include(m);
    }
    expect(evs.filter((e) => e.type === "Warning").map((e) => `${e.reason}: ${e.message}`)).to.deep.equal([]);
  });

  it("reinstalling the first node after initialized: it joins the cluster, never --cluster-init", async () => {
    await env.create(machineFor(env.host("rs-cp"), { role: "rs-cp" }));
    await env.create(machineFor(env.host("rs-w"), { role: "rs-worker" }));
    await env.create(
      seedCluster("reinst", env.repoUrl, {
        vip: REINSTALL_VIP,
        fullInstall: true,
        controlPlane: { machineSelector: { matchLabels: { role: "rs-cp" } }, count: 1 },
        dataPlane: { machineSelector: { matchLabels: { role: "rs-worker" } }, count: 1 },
      }),
    );
    const ready = await until(
      "reinst Ready",
      () => env.cluster("reinst"),
      (c) => c.status?.phase === "Ready",
      300_000,
    );
    expect(ready.status?.initialized).to.equal(true);
    const host = env.host("rs-cp");
    const installsBefore = (await host.reinstallRecords()).length;
    expect(installsBefore, "the first install was a full install").to.equal(1);
    const k3sBefore = (await host.k3sRecords()).length;

    const at = new Date().toISOString();
    await env.kube.patch(
      nixosConfigurations,
      { namespace: NS, name: "reinst-rs-cp" },
      { metadata: { annotations: { [ANNOTATIONS.reinstallRequestedAt]: at } } },
      "merge",
    );
    const cfg = await until(
      "reinstall handled and Ready",
      () => env.configuration("reinst-rs-cp"),
      (c) =>
        c?.status?.lastHandledReinstallAt === at &&
        condition(c, "Ready")?.status === "True" &&
        c.status.conditions?.find((x) => x.type === "Ready")?.observedGeneration === c.metadata.generation,
      240_000,
    );
    expect(cfg?.status?.fullInstallCompleted).to.equal(true);
    const installs = await host.reinstallRecords();
    expect(installs.length, "one more full install").to.equal(installsBefore + 1);
    expect(installs.at(-1)?.attr).to.equal("rs-cp");

    // Every k3s start of the reinstalled node: clusterInit only ever on its very first activation.
    const all = starts(await host.k3sRecords());
    expect(all[0]?.clusterInit, "bootstrap on the very first activation").to.equal(true);
    for (const r of all.slice(1)) expect(r.clusterInit ?? false, r.time).to.equal(false);
    const reinstall = starts((await host.k3sRecords()).slice(k3sBefore));
    expect(reinstall.length, "k3s started by the reinstall").to.be.at.least(1);
    for (const r of reinstall) {
      expect(r.clusterInit ?? false, `reinstall ${r.time}`).to.equal(false);
      expect(r.serverAddr, `reinstall ${r.time}`).to.equal(`https://${REINSTALL_VIP}:6443`);
      expect(r.tokenFile).to.equal(JOIN_TOKEN_PATH);
    }
    // NIO writes the host files after the install, so the token is back on the machine.
    expect(await host.exists(JOIN_TOKEN_PATH)).to.equal(true);
    const after = await until(
      "reinst still Ready",
      () => env.cluster("reinst"),
      (c) => c.status?.phase === "Ready",
    );
    expect(after.status?.initialized).to.equal(true);

    // k3s starts at the first boot of a (re)installed system, so the join token must be on the machine by then. NIO
    // writes host files only after nixos-anywhere returns, and the install wiped /var/lib: the k3s of the
    // reinstalled node, and of every node whose only activation was its install (the worker), fails to start.
    const worker = starts(await env.host("rs-w").k3sRecords());
    const anywhere = (await readJsonLines<AnywhereRecord>(process.env.NIO_TESTBED_ANYWHERE_LOG ?? "")).filter(
      (r) => r.result === "success",
    );
    const extraFiles = anywhere.map((r) => `${r.attr ?? "?"}: --extra-files ${r.extraFiles ?? "(none)"}`).join("; ");
    const outcome = (r: K3sRecord): string => `${r.attr} ${r.result ?? ""}${r.error ? `: ${r.error}` : ""}`;
    const firstRunning = all.find((r) => r.result === "running");
    expect(
      {
        reinstall: reinstall.map(outcome),
        workerInstall: worker.slice(0, 1).map(outcome),
        firstRunningK3sOnFirstNode: firstRunning ? `clusterInit ${String(firstRunning.clusterInit)}` : "none",
      },
      `k3s at the first boot after nixos-anywhere (${extraFiles})`,
    ).to.deep.equal({
      reinstall: reinstall.map((r) => `${r.attr} running`),
      workerInstall: ["rs-w running"],
      firstRunningK3sOnFirstNode: "clusterInit true",
    });
  });

  it("hostile names and addresses are refused by the API or left out of cluster.nix; no host runs anything", async () => {
    const refused = async (obj: ClusterObject | ReturnType<typeof machineFor>, field: string): Promise<void> => {
      const err = await env.create(obj).then(
        () => undefined,
        (e: unknown) => e as { statusCode?: number; message?: string },
      );
      expect(err, `${obj.kind} ${obj.metadata.name} (${field}) must be refused`).to.not.equal(undefined);
      expect(err?.statusCode, err?.message).to.equal(422);
      expect(err?.message).to.include(field);
    };
    const base = (name: string, extra: Record<string, unknown>): ClusterObject =>
      cpOnly(name, env.repoUrl, "hx-cp", 1, extra);
    await refused(base("bad-vip", { vip: '1.2.3.4"; builtins.abort "x' }), "spec.vip");
    await refused(base("bad-vip2", { vip: "${builtins.readFile /etc/shadow}" }), "spec.vip");
    await refused(base("bad-iface", { network: { interface: 'eth0"; x' } }), "spec.network.interface");
    await refused(base("bad-gw", { network: { gateway: "10.0.0.1\n10.0.0.2" } }), "spec.network.gateway");
    await refused(base("bad-ns", { network: { nameservers: ['1.1.1.1"; x'] } }), "spec.network.nameservers");
    await refused(machineFor(env.host("hx-target"), {}, { ipAddress: "not-an-ip" }), "spec.ipAddress");
    await refused(machineFor(env.host("hx-target"), {}, { ipAddress: '127.0.0.1"; x' }), "spec.ipAddress");
    await refused(machineFor(env.host("hx-target"), {}, { hostname: "$(reboot)" }), "spec.hostname");
    for (const n of ["bad-vip", "bad-vip2", "bad-iface", "bad-gw", "bad-ns"]) {
      expect(await env.cluster(n).catch(() => undefined), n).to.equal(undefined);
    }

    // Accepted by the API, but not usable as nodes: a name with dots (not a flake attribute) and no IP address.
    const dotted = machineFor(env.host("hx-target"), { role: "hx-worker" });
    dotted.metadata.name = "hx.dots";
    await env.create(dotted);
    const noIp = machineFor(env.host("hx-target"), { role: "hx-worker" });
    noIp.metadata.name = "hx-noip";
    delete (noIp.spec as { ipAddress?: string }).ipAddress;
    noIp.spec.hostname = "hx-noip.invalid";
    await env.create(noIp);
    await env.create(machineFor(env.host("hx-good"), { role: "hx-cp" }));
    await env.create(
      cpOnly("hostile", env.repoUrl, "hx-cp", 1, {
        dataPlane: { machineSelector: { matchLabels: { role: "hx-worker" } }, count: 2 },
      }),
    );
    const degraded = await until(
      "hostile: control plane ready, workers unusable",
      () => env.cluster("hostile"),
      (c) => c.status?.controlPlaneReady === "1/1" && condition(c, "MachinesClaimed")?.status === "False",
    );
    const claimed = condition(degraded, "MachinesClaimed")?.message ?? "";
    expect(claimed).to.match(/need 2 workers matching role=hx-worker, 0 free/);
    expect(claimed).to.include("hx.dots: its name is not a DNS label");
    expect(claimed).to.include("hx-noip: no spec.ipAddress");
    expect(degraded.status?.nodes?.map((n) => n.machine)).to.deep.equal(["hx-good"]);
    const nix = (await env.configMap("hostile-topology"))?.data?.["cluster.nix"] ?? "";
    expect(nix).to.include('name = "hx-good";');
    expect(nix).to.not.include("hx.dots");
    expect(nix).to.not.include("hx-noip");
    expect((await env.configurations("hostile")).map((c) => c.metadata.name)).to.deep.equal(["hostile-hx-good"]);
    for (const m of ["hx.dots", "hx-noip"]) {
      expect((await env.machine(m)).metadata.labels?.[LABELS.cluster], m).to.equal(undefined);
    }
    const target = env.host("hx-target");
    expect(await target.rebuildRecords()).to.deep.equal([]);
    expect(await target.reinstallRecords()).to.deep.equal([]);
    expect(await target.k3sRecords()).to.deep.equal([]);
  });
  it("metrics keep two clusters of the same name in different namespaces apart", async () => {
    // One machine in each namespace; the second namespace gets its own key and credentials.
    await env.kubectl(["create", "namespace", OTHER_NS]);
    for (const name of [SSH_KEY_SECRET, "git-credentials"]) {
      const src = await env.secret(name);
      await env.kube.create(secrets, {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name, namespace: OTHER_NS },
        data: src?.data ?? {},
      });
    }
    const m = machineFor(env.host("two-cp"), {});
    m.metadata.namespace = OTHER_NS;
    await env.kube.create(machines, m);
    await env.create(machineFor(env.host("one-cp"), {}));
    const mine = seedCluster("same", env.repoUrl, { controlPlane: { machines: ["one-cp"] }, dataPlane: undefined });
    const theirs = seedCluster("same", env.repoUrl, { controlPlane: { machines: ["two-cp"] }, dataPlane: undefined });
    theirs.metadata.namespace = OTHER_NS;
    await env.create(mine);
    await env.kube.create(kubernetesClusters, theirs);
    const get = (ns: string) => (): Promise<ClusterObject> =>
      env.kube.get<ClusterObject>(kubernetesClusters, { namespace: ns, name: "same" });
    await until(`${NS}/same Ready`, get(NS), (c) => c.status?.phase === "Ready");
    await until(`${OTHER_NS}/same Ready`, get(OTHER_NS), (c) => c.status?.phase === "Ready");
    const now = await samples();
    expect(metricValue(now, "nico_clusters_total", { phase: "Ready" })).to.be.at.least(2);
    // One ready control-plane node in each cluster: two series (or one series counting both), not one overwriting
    // the other.
    const series = matching(now, "nico_cluster_nodes", { cluster: "same", role: "control-plane", state: "ready" });
    expect(
      series.map((x) => x.labels),
      "nico_cluster_nodes series of the two clusters called same",
    ).to.have.length(2);
    expect(metricValue(now, "nico_cluster_nodes", { cluster: "same", role: "control-plane", state: "ready" })).to.equal(
      2,
    );
  });
});

// Failures of the stack itself, with NIO and NICO as processes under the deploy/base RBAC identities:
// - NIO killed (SIGKILL) in the middle of an apply and restarted: the apply completes or is retried, is recorded
//   once, and a deletion interrupted the same way leaves no finalizer behind;
// - two NIO replicas with leader election: exactly one holds the Lease and only it applies; when it dies the other
//   takes over;
// - the API server restarted in the middle of a rollout: the rollout finishes.
import { expect } from "chai";
import { createHash } from "node:crypto";
import { stringify } from "yaml";
import type { Host, RebuildRecord } from "@nio/testbed";
import { startStack, type Manifest, type OperatorProcess, type Stack } from "../src/stack.js";
import {
  cluster,
  clusterReady,
  condition,
  configuration,
  configurationsOf,
  eventsFor,
  finished,
  forbiddenByOperator,
  gone,
  kstatusViolations,
  leaseHolder,
  machine,
  overlaps,
  rebuildRunning,
  sample,
  sampleSum,
  started,
  successes,
  until,
  type EventObject,
} from "./support/stack-assert.js";

const log = process.env.E2E_LOG ? (l: string): void => console.log(`      ${l}`) : undefined;
const logOpt = log ? { log } : {};

/** Applies manifests with the admin kubeconfig (as a user would). */
async function apply(stack: Stack, docs: Manifest[]): Promise<void> {
  await stack.kubectl(
    ["apply", "--server-side", "--field-manager=e2e", "-f", "-"],
    docs.map((d) => stringify(d)).join("---\n"),
  );
}

/** Total count of the object's Events with this reason (repeats are folded into one Event's count). */
function eventCount(evs: EventObject[], reason: string): number {
  return evs.filter((e) => e.reason === reason).reduce((n, e) => n + (e.count ?? 1), 0);
}

const hasFile = (r: RebuildRecord, path: string, content: string): boolean => {
  const sha = createHash("sha256").update(content).digest("hex");
  return (r.files ?? []).some((f) => f.path === path && f.sha256 === sha);
};

describe("e2e resilience: NIO killed in the middle of an apply", function () {
  this.timeout(600_000);
  const HOST = "solo-01";
  const CONFIG = "solo";
  /** Seconds nixos-rebuild sleeps before switching: long enough to kill NIO while it runs. */
  const SLOW = 6;
  let stack: Stack;
  let host: Host;

  before(async function () {
    this.timeout(300_000);
    // One replica without leader election: a restarted NIO acts at once (no Lease of the dead process to wait out).
    stack = await startStack({ hosts: [HOST], nioEnv: { ENABLE_LEADER_ELECTION: "false" }, ...logOpt });
    host = stack.tb.fleet.host(HOST);
    // The flake's evaluation is not the point here: nixos-rebuild switches without it, after SLOW seconds.
    await host.setInstantApply(true);
    await host.setSlowApply(SLOW);
    const seed = await stack.seedManifests({ controlPlane: [HOST], workers: [] });
    await apply(
      stack,
      seed.filter((d) => d.kind !== "KubernetesCluster"),
    );
  });
  after(async () => {
    await stack?.stop();
  });

  const nio = (): OperatorProcess => stack.nio[0] as OperatorProcess;

  it("a killed and restarted NIO finishes the apply, records it once, and never runs two applies at once", async () => {
    const marker = { path: "SOLO", content: `solo ${Date.now()}\n` };
    const commit = await stack.push("solo", { [`nix/${marker.path}`]: marker.content });
    await apply(stack, [
      {
        apiVersion: "nio.homystack.com/v1alpha1",
        kind: "NixosConfiguration",
        metadata: { name: CONFIG, namespace: "default" },
        spec: {
          gitRepo: stack.repoUrl,
          credentialsRef: { name: "git-credentials" },
          configurationSubdir: "nix",
          flake: `#${HOST}`,
          machineRef: { name: HOST },
          onRemoveFlake: "#minimal",
        },
      },
    ]);
    await until(stack, "nixos-rebuild running on the host", async () =>
      (await rebuildRunning(host)) ? true : undefined,
    );
    await nio().kill("SIGKILL");
    log?.("NIO killed while nixos-rebuild runs; restarting it");
    await nio().start();

    const done = await until(
      stack,
      "the configuration Ready on the commit",
      async () => {
        const c = await configuration(stack, CONFIG);
        const ok = condition(c, "Ready")?.status === "True" && c?.status?.appliedCommit === commit;
        return ok && c?.status?.lastAttempt?.result === "Succeeded" ? c : undefined;
      },
      180_000,
    );
    expect(kstatusViolations(done)).to.deep.equal([]);
    // The run the killed process started goes on detached on the machine; wait for it to end before counting.
    await until(
      stack,
      "no nixos-rebuild left running",
      async () => ((await rebuildRunning(host)) ? undefined : true),
      60_000,
    );

    const runs = (await host.rebuildRecords()).filter((r) => hasFile(r, marker.path, marker.content));
    log?.(`runs of the commit on the host: ${runs.map((r) => `${r.time} ${r.durationMs} ms ${r.result}`).join("; ")}`);
    // The run of the killed process is not lost (it is detached on the machine); a retry may run it again.
    expect(runs.filter((r) => r.result === "success").length, "the commit was switched to").to.be.within(1, 2);
    const m = await machine(stack, HOST);
    expect(m?.status?.appliedCommit).to.equal(commit);
    expect(m?.status?.appliedConfiguration).to.equal(CONFIG);
    expect(m?.status?.currentSystem).to.equal(await host.currentSystem());
    expect(eventCount(await eventsFor(stack, CONFIG), "Applied"), "Applied recorded once").to.equal(1);
    // KNOWN BUG (NIO, see the e2e report): the restarted NIO starts a second `nixos-rebuild switch` while the run
    // the killed process started is still going on the machine (nothing on the machine tells a new process that a
    // run is in flight), so one machine runs two applies at once. Fails until NIO waits for (or adopts) that run.
    expect(overlaps(runs), "two nixos-rebuild runs at once on one machine").to.deep.equal([]);
  });

  it("a deletion interrupted the same way still applies #minimal and leaves no finalizer", async () => {
    const before = (await host.rebuildRecords()).length;
    await stack.kubectl(["delete", "nixosconfiguration", CONFIG, "-n", "default", "--wait=false"]);
    await until(stack, "#minimal running on the host", async () => ((await rebuildRunning(host)) ? true : undefined));
    await nio().kill("SIGKILL");
    await nio().start();
    await gone(stack, `NixosConfiguration ${CONFIG}`, () => configuration(stack, CONFIG), 180_000);
    await until(
      stack,
      "no nixos-rebuild left running",
      async () => ((await rebuildRunning(host)) ? undefined : true),
      60_000,
    );

    const after = (await host.rebuildRecords()).slice(before);
    expect(
      after.some((r) => r.attr === "minimal" && r.result === "success"),
      "#minimal applied",
    ).to.equal(true);
    const m = await machine(stack, HOST);
    expect(m?.status?.hasConfiguration).to.equal(false);
    expect(m?.status?.appliedConfiguration).to.equal(undefined);
    expect(await forbiddenByOperator(stack)).to.deep.equal({});
    // KNOWN BUG (as above): the restarted NIO runs #minimal again while the killed process's run still goes on.
    expect(overlaps(after), "two nixos-rebuild runs at once on one machine").to.deep.equal([]);
  });
});

describe("e2e resilience: two NIO replicas, and the API server restarted mid-rollout", function () {
  this.timeout(900_000);
  const CP = ["cp-01", "cp-02", "cp-03"];
  const WORKERS = ["worker-01"];
  const NODES = [...CP, ...WORKERS];
  const NAME = "ha-cluster";
  let stack: Stack;
  let leader: OperatorProcess;
  let standby: OperatorProcess;

  before(async function () {
    this.timeout(300_000);
    stack = await startStack({ hosts: NODES, nioReplicas: 2, ...logOpt });
    // No evaluation (the lifecycle test covers the flake): switches are instant, and write k3s' kubeconfig as the
    // real system would, so NICO can fetch it.
    for (const n of NODES) await stack.tb.fleet.host(n).setInstantApply(true, { k3s: true });
  });
  after(async () => {
    await stack?.stop();
  });

  it("exactly one replica holds the Lease and only it applies", async () => {
    await stack.seed({ clusterName: NAME });
    await clusterReady(stack, NAME, 300_000);
    const holder = (await leaseHolder(stack, "nio-leader")) ?? "";
    const leading = stack.nio.filter((o) => holder.startsWith(`${o.name}_`));
    expect(leading, `Lease holder ${holder}`).to.have.length(1);
    leader = leading[0] as OperatorProcess;
    standby = stack.nio.find((o) => o !== leader) as OperatorProcess;

    const [lm, sm] = [await leader.metrics(), await standby.metrics()];
    expect(sample(lm, "nio_leader_election_status", { name: "nio-leader" })).to.equal(1);
    expect(sample(sm, "nio_leader_election_status", { name: "nio-leader" })).to.equal(0);
    // The standby is warm (ready) but did nothing: no SSH connection, no build, no apply.
    expect((await fetch(`${standby.healthUrl}/ready`)).status).to.equal(200);
    expect(sampleSum(sm, "nio_ssh_connections_total") ?? 0, "standby SSH connections").to.equal(0);
    expect(sampleSum(sm, "nio_nixos_builds_total") ?? 0, "standby builds").to.equal(0);
    expect(sampleSum(sm, "nio_configurations_applied_total") ?? 0, "standby applies").to.equal(0);

    // Every switch on every host was the leader's, and each was recorded exactly once.
    let hostRuns = 0;
    for (const n of NODES) {
      const runs = await successes(stack.tb.fleet.host(n));
      const evs = await eventsFor(stack, `${NAME}-${n}`);
      const applied = evs.filter((e) => e.reason === "Applied");
      expect([...new Set(applied.map((e) => e.reportingInstance))], `${n}: who recorded the applies`).to.deep.equal([
        leader.name,
      ]);
      expect(eventCount(evs, "Applied"), `${n}: one Applied per switch`).to.equal(runs.length);
      expect(overlaps(runs), n).to.deep.equal([]);
      hostRuns += runs.length;
    }
    expect(sample(lm, "nio_nixos_builds_total", { mode: "switch", result: "success" })).to.equal(hostRuns);
  });

  it("the API server restarted mid-rollout: the rollout still finishes in order", async () => {
    for (const n of NODES) await stack.tb.fleet.host(n).setSlowApply(2);
    const before = new Map<string, number>();
    for (const n of NODES) before.set(n, (await stack.tb.fleet.host(n).rebuildRecords()).length);
    const marker = { path: "VERSION", content: `ha ${Date.now()}\n` };
    const commit = await stack.push("bump", { [`nix/${marker.path}`]: marker.content });
    const cp1 = stack.tb.fleet.host("cp-01");
    await until(stack, "cp-01 switching to the new commit", async () =>
      (await rebuildRunning(cp1)) ? true : undefined,
    );

    const downAt = Date.now();
    await stack.tb.controlPlane.stopApiServer();
    try {
      // The switch runs on while the API server is away: NIO cannot record it until the server is back.
      await until(
        stack,
        "cp-01's switch finished",
        async () => ((await cp1.rebuildRecords()).length > (before.get("cp-01") ?? 0) ? true : undefined),
        60_000,
      );
    } finally {
      await stack.tb.controlPlane.startApiServer();
    }
    const upAt = Date.now();
    log?.(`API server was down ${((upAt - downAt) / 1000).toFixed(1)} s`);

    // KNOWN BUG (NIO, see the e2e report): when the status write after a successful switch fails because the API
    // server is away, NIO keeps "applied" in memory and then waits forever for its informer cache to show a status
    // it never wrote (requeue every second, no write): cp-01 stays InProgress and the rollout never continues.
    // Fails (after 3 minutes) until NIO records the success again once the API server is back.
    const ready = await until(
      stack,
      "every node on the new commit, cluster Ready",
      async () => {
        const c = await cluster(stack, NAME);
        const all = c?.status?.nodes?.every((n) => n.appliedCommit === commit && n.ready) ?? false;
        return all && c?.status?.commit === commit && c.status.phase === "Ready" ? c : undefined;
      },
      180_000,
    );
    expect(kstatusViolations(ready)).to.deep.equal([]);
    const first = new Map<string, RebuildRecord>();
    for (const n of NODES) {
      const runs = (await successes(stack.tb.fleet.host(n), before.get(n))).filter((r) =>
        hasFile(r, marker.path, marker.content),
      );
      expect(runs, `${n} switched to the new commit once`).to.have.length(1);
      first.set(n, runs[0] as RebuildRecord);
      expect((await configuration(stack, `${NAME}-${n}`))?.status?.appliedCommit, n).to.equal(commit);
    }
    const at = (n: string): RebuildRecord => first.get(n) as RebuildRecord;
    expect(started(at("cp-02"))).to.be.greaterThan(finished(at("cp-01")));
    expect(started(at("cp-03"))).to.be.greaterThan(finished(at("cp-02")));
    expect(started(at("worker-01"))).to.be.greaterThan(finished(at("cp-03")));
    // Both NIO replicas and NICO kept running through the outage, and were refused nothing outside the restart.
    for (const op of [...stack.nio, stack.nico]) expect(op.pid(), op.name).to.be.a("number");
    expect(await forbiddenByOperator(stack, { from: downAt, to: upAt + 10_000 })).to.deep.equal({});
  });

  it("when the leader dies the standby takes the Lease over and carries out the cluster's deletion", async () => {
    for (const n of NODES) await stack.tb.fleet.host(n).setSlowApply(0);
    // Whoever leads now (the API server restart may have moved the Lease).
    const current = (await leaseHolder(stack, "nio-leader")) ?? "";
    leader = stack.nio.find((o) => current.startsWith(`${o.name}_`)) ?? leader;
    standby = stack.nio.find((o) => o !== leader) as OperatorProcess;
    await leader.kill("SIGKILL");
    const holder = await until(
      stack,
      `${standby.name} holding the Lease`,
      async () => {
        const h = await leaseHolder(stack, "nio-leader");
        return h?.startsWith(`${standby.name}_`) ? h : undefined;
      },
      60_000,
    );
    log?.(`Lease now held by ${holder}`);
    const before = new Map<string, number>();
    for (const n of NODES) before.set(n, (await stack.tb.fleet.host(n).rebuildRecords()).length);
    await stack.kubectl(["delete", "kubernetescluster", NAME, "-n", "default", "--wait=false"]);
    await gone(stack, `KubernetesCluster ${NAME}`, () => cluster(stack, NAME), 300_000);
    for (const n of NODES) {
      const runs = await successes(stack.tb.fleet.host(n), before.get(n));
      expect(
        runs.map((r) => r.attr),
        n,
      ).to.include("minimal");
      const removed = (await eventsFor(stack, `${NAME}-${n}`)).filter((e) => e.reason === "Removed");
      expect(
        removed.map((e) => e.reportingInstance),
        n,
      ).to.deep.equal([standby.name]);
    }
    expect(await configurationsOf(stack, NAME)).to.deep.equal([]);
    const sm = await standby.metrics();
    expect(sample(sm, "nio_leader_election_status", { name: "nio-leader" })).to.equal(1);
    expect(sample(sm, "nio_nixos_builds_total", { mode: "remove", result: "success" })).to.equal(NODES.length);
  });
});

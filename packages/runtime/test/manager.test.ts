import { expect } from "chai";
import { waitFor } from "@nio/testbed";
import { loadRuntimeConfig } from "../src/config.js";
import { createKube } from "../src/kube/client.js";
import { loadKubeConfig } from "../src/kube/config.js";
import type { KubeObject } from "../src/kube/types.js";
import { createManager, type Manager } from "../src/manager.js";
import { createRuntimeMetrics } from "../src/metrics.js";
import { configMaps, kubeconfigVia, quietLogger, startProxy, startTestEnv, type TestEnv } from "./support.js";

const namespaces = { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("Manager (real kube-apiserver)", function () {
  this.timeout(90_000);
  let env: TestEnv;
  before(async () => {
    env = await startTestEnv();
  });
  after(async () => env?.stop());

  function replica(
    id: string,
    namespace: string,
    seen: string[],
    opts: { leaderElection?: boolean; reconcileMs?: number } = {},
  ): Manager {
    const config = loadRuntimeConfig({
      METRICS_PORT: "0",
      HEALTH_CHECK_PORT: "0",
      BIND_ADDRESS: "127.0.0.1",
      POD_NAME: id,
      ENABLE_LEADER_ELECTION: String(opts.leaderElection ?? true),
      LEADER_ELECTION_NAMESPACE: "default",
      LEADER_ELECTION_ID: `lock-${namespace}`,
      SHUTDOWN_GRACE_PERIOD: "5",
    });
    const mgr = createManager({
      name: "test",
      config,
      kube: createKube(loadKubeConfig(env.cp.kubeconfigPath)),
      logger: quietLogger,
      metrics: createRuntimeMetrics(`r_${id}`),
    });
    const inf = mgr.informer<KubeObject>(configMaps, { namespace });
    mgr.controller({
      name: "cm",
      for: inf,
      reconcile: async (key) => {
        seen.push(`${id}:${key.name}:start`);
        if (opts.reconcileMs) await sleep(opts.reconcileMs);
        seen.push(`${id}:${key.name}:end`);
      },
    });
    return mgr;
  }

  it("runs controllers on exactly one of two replicas and hands over on a clean stop", async () => {
    const namespace = "mgr-ha";
    await env.kube.create(namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
    const seen: string[] = [];
    const a = replica("a", namespace, seen);
    const b = replica("b", namespace, seen);
    try {
      await a.start();
      await waitFor("a leads", async () => (a.isLeader() ? true : undefined));
      await b.start();
      await env.kube.create(configMaps, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "one", namespace } });
      await waitFor("one reconciled", async () => (seen.includes("a:one:end") ? true : undefined));
      await sleep(500);
      expect(
        seen.filter((s) => s.startsWith("b:")),
        "the standby reconciled",
      ).to.deep.equal([]);
      expect(b.isLeader()).to.equal(false);
      expect(b.ready(), "a synced standby is ready").to.equal(true);

      await a.stop();
      await waitFor("b leads", async () => (b.isLeader() ? true : undefined), { timeoutMs: 10_000 });
      await env.kube.create(configMaps, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "two", namespace } });
      await waitFor("two reconciled by b", async () => (seen.includes("b:two:end") ? true : undefined));
      expect(seen.filter((s) => s.startsWith("a:two"))).to.deep.equal([]);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("lets in-flight reconciles finish on stop and serves /ready and /metrics over HTTP", async () => {
    const namespace = "mgr-stop";
    await env.kube.create(namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
    await env.kube.create(configMaps, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "slow", namespace } });
    const seen: string[] = [];
    const m = replica("solo", namespace, seen, { leaderElection: false, reconcileMs: 800 });
    const starting = m.start();
    await starting;
    const { health, metrics } = m.ports();
    const readyRes = await fetch(`http://127.0.0.1:${health}/ready`);
    expect(readyRes.status).to.equal(200);
    expect(await readyRes.json()).to.deep.equal({ status: "ready" });
    await waitFor("slow started", async () => (seen.includes("solo:slow:start") ? true : undefined));
    const stopped = m.stop();
    const notReady = await fetch(`http://127.0.0.1:${health}/ready`).catch(() => undefined);
    if (notReady) expect(notReady.status).to.equal(503);
    await stopped;
    expect(seen).to.deep.equal(["solo:slow:start", "solo:slow:end"]);
    void metrics;
  });

  it("exposes reconcile and API metrics with the component prefix", async () => {
    const namespace = "mgr-metrics";
    await env.kube.create(namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
    const seen: string[] = [];
    const m = replica("metrics", namespace, seen, { leaderElection: false });
    await m.start();
    try {
      await env.kube.create(configMaps, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "m", namespace } });
      await waitFor("m reconciled", async () => (seen.includes("metrics:m:end") ? true : undefined));
      const text = await (await fetch(`http://127.0.0.1:${m.ports().metrics}/metrics`)).text();
      expect(text).to.match(/r_metrics_reconcile_total\{controller="cm",result="success"\} 1/);
      expect(text).to.match(/r_metrics_api_requests_total\{verb="list",code="200"\} 1/);
      expect(text).to.match(/r_metrics_workqueue_adds_total\{name="cm"\} [1-9]/);
      expect(text).to.contain("r_metrics_process_resident_memory_bytes");
    } finally {
      await m.stop();
    }
  });

  it("answers /ready with 503 until the caches have synced, then 200", async () => {
    const proxy = await startProxy(Number(new URL(env.cp.server).port));
    proxy.cut();
    const config = loadRuntimeConfig({
      METRICS_PORT: "0",
      HEALTH_CHECK_PORT: "0",
      BIND_ADDRESS: "127.0.0.1",
      ENABLE_LEADER_ELECTION: "false",
    });
    const m = createManager({
      name: "sync",
      config,
      kube: createKube(loadKubeConfig(await kubeconfigVia(env.cp, env.dir, proxy.port))),
      logger: quietLogger,
      metrics: createRuntimeMetrics("r_sync"),
    });
    m.informer<KubeObject>(configMaps, { namespace: "default", backoffInitialMs: 50, backoffMaxMs: 200 });
    const started = m.start();
    try {
      const health = await waitFor("health server up", async () => m.ports().health);
      const before = await fetch(`http://127.0.0.1:${health}/ready`);
      expect(before.status).to.equal(503);
      expect(((await before.json()) as { reason?: string }).reason).to.contain("caches not synced");
      const live = await fetch(`http://127.0.0.1:${health}/live`);
      expect(await live.json()).to.deep.equal({ status: "alive" });
      proxy.restore();
      await started;
      const after = await fetch(`http://127.0.0.1:${health}/ready`);
      expect(after.status).to.equal(200);
    } finally {
      proxy.restore();
      await started;
      await m.stop();
      await proxy.close();
    }
  });
});

import { expect } from "chai";
import { getMaxListeners } from "node:events";
import { waitFor } from "@nio/testbed";
import { createController, generationChanged, mapToOwner, type Controller } from "../src/controller.js";
import { Informer } from "../src/informer.js";
import type { KubeObject, ObjectKey } from "../src/kube/types.js";
import { createRuntimeMetrics } from "../src/metrics.js";
import { configMaps, quietLogger, startTestEnv, type TestEnv } from "./support.js";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

const secrets = { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true };
const namespaces = { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("Controller (real kube-apiserver)", function () {
  this.timeout(60_000);
  let env: TestEnv;
  const stops: (() => Promise<void>)[] = [];

  before(async () => {
    env = await startTestEnv();
  });
  afterEach(async () => {
    for (const s of stops.splice(0).reverse()) await s();
  });
  after(async () => env?.stop());

  async function setup(
    namespace: string,
    reconcile: (key: ObjectKey, retries: number, signal: AbortSignal) => Promise<{ requeueAfterMs?: number } | void>,
    extra: { concurrency?: number; withSecrets?: boolean } = {},
  ): Promise<{ controller: Controller; metricsText: () => Promise<string> }> {
    await env.kube.create(namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
    const metrics = createRuntimeMetrics(`t_${namespace.replace(/-/g, "_")}`);
    const cms = new Informer<ConfigMap>(env.kube, configMaps, { namespace, logger: quietLogger });
    const secs = new Informer<KubeObject>(env.kube, secrets, { namespace, logger: quietLogger });
    const controller = createController({
      name: namespace,
      for: cms,
      watches: extra.withSecrets ? [{ informer: secs, map: mapToOwner("ConfigMap") }] : [],
      predicates: [],
      reconcile: (key, ctx) => reconcile(key, ctx.retries, ctx.signal),
      concurrency: extra.concurrency ?? 2,
      metrics,
      logger: quietLogger,
    });
    cms.start();
    secs.start();
    await Promise.all([cms.waitForSync(), secs.waitForSync()]);
    controller.start();
    stops.push(async () => {
      await controller.stop(1000);
      await cms.stop();
      await secs.stop();
    });
    return { controller, metricsText: () => metrics.registry.metrics() };
  }

  it("reconciles existing objects at start and every change after, by key", async () => {
    const namespace = "ctl-basic";
    await env.kube
      .create(namespaces, { apiVersion: "v1", kind: "Namespace", metadata: { name: "ctl-pre" } })
      .catch(() => undefined);
    const seen: string[] = [];
    const { metricsText } = await setup(namespace, async (key) => void seen.push(`${key.namespace}/${key.name}`));
    await env.kube.create(configMaps, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a", namespace } });
    await waitFor("a reconciled", async () => (seen.includes(`${namespace}/a`) ? true : undefined));
    await env.kube.delete(configMaps, { namespace, name: "a" });
    await waitFor("delete reconciled", async () =>
      seen.filter((k) => k === `${namespace}/a`).length >= 2 ? true : undefined,
    );
    const text = await metricsText();
    expect(text).to.match(/t_ctl_basic_reconcile_total\{controller="ctl-basic",result="success"\} [1-9]/);
    expect(text).to.contain("t_ctl_basic_reconcile_duration_seconds_bucket");
  });

  it("requeues after requeueAfterMs, and retries errors with growing backoff", async () => {
    const namespace = "ctl-requeue";
    const times: number[] = [];
    const retriesSeen: number[] = [];
    await setup(namespace, async (key, retries) => {
      if (key.name === "poll") {
        times.push(Date.now());
        return { requeueAfterMs: 150 };
      }
      retriesSeen.push(retries);
      if (retriesSeen.length < 5) throw Object.assign(new Error("boom"), { reason: "TestFailure" });
    });
    await env.kube.create(configMaps, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "poll", namespace } });
    await env.kube.create(configMaps, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "fail", namespace } });
    await waitFor("three polls", async () => (times.length >= 3 ? true : undefined));
    expect((times[2] as number) - (times[1] as number)).to.be.at.least(140);
    await waitFor("five attempts", async () => (retriesSeen.length >= 5 ? true : undefined));
    expect(retriesSeen).to.deep.equal([0, 1, 2, 3, 4]);
  });

  it("maps changes of watched objects to their owner's key", async () => {
    const namespace = "ctl-owns";
    const seen: string[] = [];
    await setup(namespace, async (key) => void seen.push(key.name), { withSecrets: true });
    const owner = await env.kube.create<ConfigMap>(configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "owner", namespace },
    });
    await waitFor("owner reconciled", async () => (seen.includes("owner") ? true : undefined));
    const before = seen.length;
    await env.kube.create(secrets, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: "child",
        namespace,
        ownerReferences: [
          { apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata.uid ?? "", controller: true },
        ],
      },
    });
    await waitFor("owner reconciled for child change", async () => (seen.length > before ? true : undefined));
    expect(seen.slice(before)).to.deep.equal(["owner"]);
  });

  it("never runs two reconciles of one key at once under concurrency", async () => {
    const namespace = "ctl-serial";
    const active = new Set<string>();
    let overlaps = 0;
    let runs = 0;
    await setup(
      namespace,
      async (key) => {
        if (active.has(key.name)) overlaps++;
        active.add(key.name);
        runs++;
        await sleep(20);
        active.delete(key.name);
      },
      { concurrency: 4 },
    );
    for (const n of ["x", "y"]) {
      await env.kube.create(configMaps, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: n, namespace } });
    }
    for (let i = 0; i < 20; i++) {
      await env.kube.patch(configMaps, { namespace, name: i % 2 ? "x" : "y" }, { data: { i: String(i) } }, "merge");
    }
    await sleep(300);
    expect(overlaps).to.equal(0);
    expect(runs).to.be.greaterThan(2);
  });

  it("lets every concurrent reconcile listen on the abort signal without a leak warning, within a bound", async () => {
    const namespace = "ctl-listeners";
    const concurrency = 12;
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      let active = 0;
      let peak = 0;
      let shared: AbortSignal | undefined;
      await setup(
        namespace,
        async (_key, _retries, signal) => {
          shared = signal;
          // As many listeners as an apply and its SSH commands keep at once, removed when done.
          const listeners = Array.from({ length: 4 }, () => (): void => undefined);
          for (const l of listeners) signal.addEventListener("abort", l, { once: true });
          active++;
          peak = Math.max(peak, active);
          await waitFor("all reconciles in flight", async () => (active >= concurrency ? true : undefined), {
            timeoutMs: 5000,
            intervalMs: 5,
          }).catch(() => undefined);
          await sleep(20);
          for (const l of listeners) signal.removeEventListener("abort", l);
          active--;
        },
        { concurrency },
      );
      await Promise.all(
        Array.from({ length: concurrency }, (_, i) =>
          env.kube.create(configMaps, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: `l${i}`, namespace } }),
        ),
      );
      await waitFor("reconciles done", async () => (peak === concurrency && active === 0 ? true : undefined), {
        timeoutMs: 10_000,
      });
      await sleep(50); // warnings are emitted on the next tick
      expect(warnings).to.not.include("MaxListenersExceededWarning");
      // Still bounded, so listeners that are never removed (a real leak) do warn.
      const bound = shared ? getMaxListeners(shared) : 0;
      expect(bound).to.be.at.least(4 * concurrency);
      expect(bound).to.be.below(Infinity);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("generationChanged skips status-only and metadata-only updates but not spec changes", () => {
    const obj = (generation: number, rv: string): KubeObject => ({
      metadata: { name: "n", generation, resourceVersion: rv },
    });
    expect(generationChanged({ type: "update", object: obj(1, "2"), old: obj(1, "1") })).to.be.a("string");
    expect(generationChanged({ type: "update", object: obj(2, "2"), old: obj(1, "1") })).to.equal(undefined);
    expect(generationChanged({ type: "update", object: obj(1, "1"), old: obj(1, "1"), resync: true })).to.equal(
      undefined,
    );
    expect(generationChanged({ type: "add", object: obj(1, "1") })).to.equal(undefined);
  });
});

import { expect } from "chai";
import { waitFor } from "@nio/testbed";
import { Informer, type InformerEvent } from "../src/informer.js";
import { createKube } from "../src/kube/client.js";
import { loadKubeConfig } from "../src/kube/config.js";
import type { KubeObject } from "../src/kube/types.js";
import { createRuntimeMetrics } from "../src/metrics.js";
import {
  compactEtcd,
  configMaps,
  kubeconfigVia,
  quietLogger,
  startProxy,
  startTestEnv,
  type TestEnv,
} from "./support.js";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

function cm(
  namespace: string,
  name: string,
  data: Record<string, string> = {},
  labels?: Record<string, string>,
): ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace, labels }, data };
}

const nsResource = { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false };

describe("Informer (real kube-apiserver)", function () {
  this.timeout(120_000);
  let env: TestEnv;

  before(async () => {
    env = await startTestEnv();
  });
  after(async () => env?.stop());

  async function ns(name: string): Promise<string> {
    await env.kube.create(nsResource, { apiVersion: "v1", kind: "Namespace", metadata: { name } });
    return name;
  }

  it("lists, then sees adds, updates and deletes, and keeps indexes current", async () => {
    const namespace = await ns("inf-basic");
    await env.kube.create(configMaps, cm(namespace, "pre", { a: "1" }, { team: "x" }));
    const inf = new Informer<ConfigMap>(env.kube, configMaps, { namespace, logger: quietLogger });
    inf.addIndex("team", (o) => (o.metadata.labels?.team ? [o.metadata.labels.team] : []));
    const events: string[] = [];
    inf.on((e: InformerEvent<ConfigMap>) => events.push(`${e.type}:${e.object.metadata.name}`));
    inf.start();
    await inf.waitForSync();
    try {
      expect(inf.get(`${namespace}/pre`)?.data).to.deep.equal({ a: "1" });
      expect(inf.get(`${namespace}/pre`)?.kind).to.equal("ConfigMap");
      await env.kube.create(configMaps, cm(namespace, "new", {}, { team: "y" }));
      await env.kube.patch(
        configMaps,
        { namespace, name: "pre" },
        { data: { a: "2" }, metadata: { labels: { team: "y" } } },
        "merge",
      );
      await env.kube.delete(configMaps, { namespace, name: "new" });
      await waitFor("events", async () => (events.includes("delete:new") ? true : undefined));
      expect(events).to.deep.equal(["add:pre", "add:new", "update:pre", "delete:new"]);
      expect(inf.get(`${namespace}/pre`)?.data).to.deep.equal({ a: "2" });
      expect(inf.byIndex("team", "x")).to.have.length(0);
      expect(inf.byIndex("team", "y").map((o) => o.metadata.name)).to.deep.equal(["pre"]);
    } finally {
      await inf.stop();
    }
  });

  it("recovers after the API server is stopped and restarted, resuming the watch without a relist", async () => {
    const namespace = await ns("inf-restart");
    const metrics = createRuntimeMetrics("test_restart");
    const kube = createKube(loadKubeConfig(env.cp.kubeconfigPath));
    const inf = new Informer<ConfigMap>(kube, configMaps, {
      namespace,
      logger: quietLogger,
      metrics,
      backoffInitialMs: 100,
      backoffMaxMs: 1000,
    });
    inf.start();
    await inf.waitForSync();
    try {
      await env.kube.create(configMaps, cm(namespace, "before"));
      await waitFor("before seen", async () => inf.get(`${namespace}/before`));
      await env.cp.stopApiServer();
      await env.cp.startApiServer();
      await env.kube.create(configMaps, cm(namespace, "after", { v: "1" }));
      await env.kube.patch(configMaps, { namespace, name: "after" }, { data: { v: "final" } }, "merge");
      await waitFor("final state after restart", async () =>
        inf.get(`${namespace}/after`)?.data?.v === "final" ? true : undefined,
      );
      expect(kube.requestCounts().list, "a plain restart must not relist").to.equal(1);
      expect(kube.requestCounts().watch).to.be.greaterThan(1);
    } finally {
      await inf.stop();
      kube.close();
    }
  });

  it("relists after a watch expired with 410 Gone and delivers deletes it missed (connection reset meanwhile)", async () => {
    const namespace = await ns("inf-gone");
    const proxy = await startProxy(Number(new URL(env.cp.server).port));
    const kube = createKube(loadKubeConfig(await kubeconfigVia(env.cp, env.dir, proxy.port)));
    const inf = new Informer<ConfigMap>(kube, configMaps, {
      namespace,
      logger: quietLogger,
      backoffInitialMs: 100,
      backoffMaxMs: 500,
    });
    const deleted: InformerEvent<ConfigMap>[] = [];
    inf.on((e) => void (e.type === "delete" && deleted.push(e)));
    for (const n of ["keep", "doomed"]) await env.kube.create(configMaps, cm(namespace, n, { v: "0" }));
    inf.start();
    await inf.waitForSync();
    try {
      expect(inf.keys()).to.have.length(2);
      proxy.cut(); // the open watch dies with ECONNRESET; reconnects are refused until restore
      await env.kube.delete(configMaps, { namespace, name: "doomed" });
      for (let i = 1; i <= 150; i++) {
        await env.kube.patch(configMaps, { namespace, name: "keep" }, { data: { v: String(i) } }, "merge");
      }
      await compactEtcd(env.cp.etcdEndpoint);
      proxy.restore();
      await waitFor("cache converged", async () =>
        inf.get(`${namespace}/keep`)?.data?.v === "150" && !inf.get(`${namespace}/doomed`) ? true : undefined,
      );
      expect(kube.requestCounts().list, "410 must trigger exactly one relist").to.equal(2);
      expect(deleted.map((e) => e.object.metadata.name)).to.deep.equal(["doomed"]);
      expect(deleted[0]?.object.data).to.deep.equal({ v: "0" }, "the delete carries the last known state");
    } finally {
      await inf.stop();
      kube.close();
      await proxy.close();
    }
  });

  it("re-delivers every object on the resync period", async () => {
    const namespace = await ns("inf-resync");
    await env.kube.create(configMaps, cm(namespace, "r"));
    const inf = new Informer<ConfigMap>(env.kube, configMaps, { namespace, logger: quietLogger, resyncMs: 100 });
    let resyncs = 0;
    inf.on((e) => void (e.resync && resyncs++));
    inf.start();
    await inf.waitForSync();
    try {
      await waitFor("two resyncs", async () => (resyncs >= 2 ? true : undefined));
    } finally {
      await inf.stop();
    }
  });

  it("filters by label selector", async () => {
    const namespace = await ns("inf-selector");
    await env.kube.create(configMaps, cm(namespace, "in", {}, { pick: "yes" }));
    await env.kube.create(configMaps, cm(namespace, "out", {}, { pick: "no" }));
    const inf = new Informer<ConfigMap>(env.kube, configMaps, {
      namespace,
      labelSelector: "pick=yes",
      logger: quietLogger,
    });
    inf.start();
    await inf.waitForSync();
    try {
      expect(inf.keys()).to.deep.equal([`${namespace}/in`]);
    } finally {
      await inf.stop();
    }
  });
});

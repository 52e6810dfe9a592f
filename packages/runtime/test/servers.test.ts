import { expect } from "chai";
import { createRuntimeMetrics } from "../src/metrics.js";
import {
  createLagMonitor,
  instrumentKube,
  probeBody,
  startHealthServer,
  startMetricsServer,
  type HealthServer,
  type ReadyResult,
  type ServerHandle,
} from "../src/servers.js";
import { quietLogger, startTestEnv, type TestEnv } from "./support.js";

async function get(url: string, method = "GET"): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(url, { method });
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
}

describe("health server", () => {
  let server: HealthServer | undefined;
  let readiness: ReadyResult | (() => never) = false;
  let lag = 0;

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  const start = async (extra: Partial<Parameters<typeof startHealthServer>[0]> = {}): Promise<HealthServer> => {
    server = await startHealthServer({
      port: 0,
      host: "127.0.0.1",
      logger: quietLogger,
      ready: () => (typeof readiness === "function" ? readiness() : readiness),
      eventLoopLag: () => lag,
      maxEventLoopLagMs: 1000,
      ...extra,
    });
    return server;
  };

  it("binds an ephemeral port and answers /health with the seed's body", async () => {
    const s = await start();
    expect(s.port).to.be.greaterThan(0);
    expect(s.url).to.equal(`http://127.0.0.1:${s.port}`);
    const r = await get(`${s.url}/health`);
    expect(r).to.deep.equal({ status: 200, body: '{"status": "healthy"}', type: "application/json; charset=utf-8" });
    expect(JSON.parse(r.body)).to.deep.equal({ status: "healthy" });
  });

  it("/ready: 503 with a reason until ready() says so, then 200", async () => {
    const s = await start();
    readiness = { ready: false, reason: "caches not synced" };
    expect(await get(`${s.url}/ready`)).to.include({
      status: 503,
      body: '{"status": "not ready", "reason": "caches not synced"}',
    });
    readiness = false;
    expect(JSON.parse((await get(`${s.url}/ready`)).body)).to.deep.equal({ status: "not ready", reason: "not ready" });
    readiness = true;
    expect(await get(`${s.url}/ready`)).to.include({ status: 200, body: '{"status": "ready"}' });
    readiness = { ready: true };
    expect((await get(`${s.url}/ready`)).status).to.equal(200);
  });

  it("/ready: a throwing or hanging check is not ready", async () => {
    const s = await start({ readyTimeoutMs: 100 });
    readiness = () => {
      throw new Error("informer crashed");
    };
    const r = await get(`${s.url}/ready`);
    expect(r.status).to.equal(503);
    expect(JSON.parse(r.body)).to.deep.equal({
      status: "not ready",
      reason: "readiness check failed: informer crashed",
    });
    await server?.close();
    server = await startHealthServer({
      port: 0,
      host: "127.0.0.1",
      ready: () => new Promise<boolean>(() => undefined),
      readyTimeoutMs: 100,
    });
    const hung = await get(`${server.url}/ready`);
    expect(hung.status).to.equal(503);
    expect(hung.body).to.match(/timed out after 100 ms/);
  });

  it("/live: 200 while the event loop keeps up, 503 when it lags", async () => {
    const s = await start();
    lag = 10;
    expect(await get(`${s.url}/live`)).to.include({ status: 200, body: '{"status": "alive"}' });
    lag = 5000;
    const r = await get(`${s.url}/live`);
    expect(r.status).to.equal(503);
    expect(JSON.parse(r.body)).to.deep.include({ status: "not alive" });
    expect(r.body.startsWith('{"status": "not alive"')).to.equal(true);
    lag = 0;
    expect((await get(`${s.url}/live`)).status).to.equal(200);
  });

  it("404 for other paths, 405 for other methods, HEAD works", async () => {
    const s = await start();
    expect(await get(`${s.url}/nope`)).to.include({ status: 404 });
    expect(await get(`${s.url}/metrics`)).to.include({ status: 404 });
    const post = await fetch(`${s.url}/health`, { method: "POST" });
    expect(post.status).to.equal(405);
    expect(post.headers.get("allow")).to.equal("GET, HEAD");
    expect((await get(`${s.url}/health`, "HEAD")).status).to.equal(200);
  });

  it("close() stops listening and can be called twice", async () => {
    const s = await start();
    await s.close();
    await s.close();
    server = undefined;
    let failed = false;
    try {
      await fetch(`${s.url}/health`);
    } catch {
      failed = true;
    }
    expect(failed).to.equal(true);
  });

  it("a busy port is an error", async () => {
    const s = await start();
    let err: unknown;
    try {
      await startHealthServer({ port: s.port, host: "127.0.0.1", ready: () => true });
    } catch (e) {
      err = e;
    }
    expect(err).to.have.property("code", "EADDRINUSE");
  });

  it("the real lag monitor sees a blocked event loop", async () => {
    const m = createLagMonitor(20);
    try {
      await new Promise((r) => setTimeout(r, 50));
      expect(m.lagMs()).to.be.lessThan(200);
      const until = Date.now() + 300;
      while (Date.now() < until) {
        // block the event loop
      }
      expect(m.lagMs()).to.be.greaterThan(200);
    } finally {
      m.stop();
    }
  });

  it("the built-in monitor is used by default", async () => {
    server = await startHealthServer({ port: 0, host: "127.0.0.1", ready: () => true, lagSampleIntervalMs: 10 });
    expect((await get(`${server.url}/live`)).status).to.equal(200);
    expect(server.eventLoopLagMs()).to.be.a("number");
  });

  it("probeBody formats like the seed", () => {
    expect(probeBody({ status: "healthy" })).to.equal('{"status": "healthy"}');
    expect(probeBody({ status: "not ready", reason: 'a "quoted" reason' })).to.equal(
      '{"status": "not ready", "reason": "a \\"quoted\\" reason"}',
    );
  });
});

describe("metrics server", function () {
  this.timeout(120_000);
  let server: ServerHandle | undefined;
  let env: TestEnv | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });
  after(async () => env?.stop());

  it("serves /metrics in the Prometheus text format with the nio_ metrics", async () => {
    const metrics = createRuntimeMetrics("nio");
    metrics.reconcileTotal.inc({ controller: "machine", result: "success" });
    server = await startMetricsServer({ port: 0, host: "127.0.0.1", registry: metrics.registry, logger: quietLogger });
    const r = await get(`${server.url}/metrics`);
    expect(r.status).to.equal(200);
    expect(r.type).to.equal(metrics.registry.contentType);
    expect(r.type).to.match(/^text\/plain; version=0\.0\.4/);
    expect(r.body).to.include("# TYPE nio_reconcile_total counter");
    expect(r.body).to.include('nio_reconcile_total{controller="machine",result="success"} 1');
    expect(r.body).to.include("nio_reconcile_duration_seconds");
    expect(r.body).to.include("nio_process_cpu_user_seconds_total");
    expect((await get(`${server.url}/other`)).status).to.equal(404);
    expect((await get(`${server.url}/metrics`, "POST")).status).to.equal(405);
  });

  it("instrumentKube counts real API requests by verb and code", async () => {
    env ??= await startTestEnv();
    const metrics = createRuntimeMetrics("nio");
    instrumentKube(env.kube, metrics);
    await env.kube.list({ group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false });
    await env.kube
      .get(
        { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true },
        { namespace: "default", name: "missing" },
      )
      .catch(() => undefined);
    server = await startMetricsServer({ port: 0, host: "127.0.0.1", registry: metrics.registry });
    const body = (await get(`${server.url}/metrics`)).body;
    expect(body).to.include('nio_api_requests_total{verb="list",code="200"} 1');
    expect(body).to.include('nio_api_requests_total{verb="get",code="404"} 1');
  });

  it("onRequest listeners see each request's verb, status code and path", async () => {
    env ??= await startTestEnv(); // one control plane for this describe (stopped in after)
    const seen: [string, number, string][] = [];
    env.kube.onRequest((verb, code, path) => seen.push([verb, code, path]));
    const configMaps = { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true };
    await env.kube.get(configMaps, { namespace: "default", name: "missing" }).catch(() => undefined);
    await env.kube.create(configMaps, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "seen", namespace: "default" },
    });
    expect(seen).to.deep.equal([
      ["get", 404, "/api/v1/namespaces/default/configmaps/missing"],
      ["create", 201, "/api/v1/namespaces/default/configmaps"],
    ]);
  });
});

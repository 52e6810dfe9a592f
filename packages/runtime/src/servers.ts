import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import Koa from "koa";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { Kube } from "./kube/client.js";
import type { RuntimeMetrics } from "./metrics.js";

/** A listening HTTP server. */
export interface ServerHandle {
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
  readonly host: string;
  /** `http://<host>:<port>`, with 127.0.0.1 for a wildcard host (handy in tests). */
  readonly url: string;
  close(): Promise<void>;
}

export interface ListenOptions {
  /** 0 picks a free port (tests). */
  port: number;
  /** Default 0.0.0.0. */
  host?: string;
  logger?: Logger;
}

/** Counts every Kubernetes API request in `<prefix>_api_requests_total{verb,code}` (code 0: no response). */
export function instrumentKube(kube: Kube, metrics: RuntimeMetrics): void {
  kube.onRequest((verb, code) => metrics.apiRequests.inc({ verb, code: String(code) }));
}

/** `GET /metrics`: the registry in the Prometheus text format; 404 for anything else. */
export async function startMetricsServer(opts: ListenOptions & { registry: Registry }): Promise<ServerHandle> {
  const app = newApp(opts.logger);
  app.use(async (ctx) => {
    if (ctx.path !== "/metrics") return notFound(ctx);
    if (ctx.method !== "GET" && ctx.method !== "HEAD") return methodNotAllowed(ctx);
    ctx.body = await opts.registry.metrics();
    ctx.type = opts.registry.contentType;
  });
  return listen(app, opts);
}

/** What a readiness check answers: a boolean, or a boolean with the reason it is not ready. */
export type ReadyResult = boolean | { ready: boolean; reason?: string };

export interface HealthServerOptions extends ListenOptions {
  /**
   * Readiness: caches synced, and with leader election either leading or a healthy standby. Thrown errors and
   * answers slower than `readyTimeoutMs` count as not ready.
   */
  ready: () => ReadyResult | Promise<ReadyResult>;
  readyTimeoutMs?: number;
  /** `/live` fails when the event loop lags more than this. Default 5000 ms. */
  maxEventLoopLagMs?: number;
  /** How often the lag timer samples. Default 500 ms. */
  lagSampleIntervalMs?: number;
  /** Replaces the built-in lag monitor (tests). */
  eventLoopLag?: () => number;
}

export interface HealthServer extends ServerHandle {
  /** Current event-loop lag estimate in ms. */
  eventLoopLagMs(): number;
}

/**
 * Probe endpoints, with the bodies the seed documents:
 * - `GET /health` → 200 `{"status": "healthy"}` (the process serves HTTP);
 * - `GET /ready` → 200 `{"status": "ready"}` when `ready()` says so, else 503 `{"status": "not ready", "reason": …}`;
 * - `GET /live` → 200 `{"status": "alive"}` while the event loop lag stays under the threshold, else 503
 *   `{"status": "not alive", "reason": …}`;
 * - anything else → 404 `{"status": "not found"}`.
 * Bodies are serialised like the seed shows them (`": "` and `", "` separators).
 */
export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const monitor = opts.eventLoopLag ? undefined : createLagMonitor(opts.lagSampleIntervalMs ?? 500);
  const lag = opts.eventLoopLag ?? ((): number => monitor?.lagMs() ?? 0);
  const maxLag = opts.maxEventLoopLagMs ?? 5000;
  const app = newApp(opts.logger);
  app.use(async (ctx) => {
    const route = ROUTES[ctx.path];
    if (!route) return notFound(ctx);
    if (ctx.method !== "GET" && ctx.method !== "HEAD") return methodNotAllowed(ctx);
    const { ok, body } = await route({ opts, lag, maxLag });
    respond(ctx, ok ? 200 : 503, body);
  });
  try {
    const handle = await listen(app, opts);
    return {
      ...handle,
      eventLoopLagMs: lag,
      close: async () => {
        monitor?.stop();
        await handle.close();
      },
    };
  } catch (err) {
    monitor?.stop();
    throw err;
  }
}

interface RouteInput {
  opts: HealthServerOptions;
  lag: () => number;
  maxLag: number;
}

type Body = Readonly<Record<string, string>>;
type RouteResult = { ok: boolean; body: Body };
type Route = (i: RouteInput) => Promise<RouteResult>;

const ROUTES: Record<string, Route | undefined> = {
  "/health": () => Promise.resolve({ ok: true, body: { status: "healthy" } }),
  "/ready": async ({ opts }): Promise<RouteResult> => {
    const r = await checkReady(opts.ready, opts.readyTimeoutMs ?? 2000);
    return r.ready
      ? { ok: true, body: { status: "ready" } }
      : { ok: false, body: { status: "not ready", reason: r.reason ?? "not ready" } };
  },
  "/live": ({ lag, maxLag }): Promise<RouteResult> => {
    const ms = lag();
    if (ms <= maxLag) return Promise.resolve({ ok: true, body: { status: "alive" } });
    const reason = `event loop lag ${Math.round(ms)} ms exceeds ${maxLag} ms`;
    return Promise.resolve({ ok: false, body: { status: "not alive", reason } });
  },
};

async function checkReady(
  ready: HealthServerOptions["ready"],
  timeoutMs: number,
): Promise<{ ready: boolean; reason?: string }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ReadyResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ready: false, reason: `readiness check timed out after ${timeoutMs} ms` }),
      timeoutMs,
    );
  });
  try {
    const r = await Promise.race([Promise.resolve().then(ready), timeout]);
    return typeof r === "boolean" ? { ready: r } : r;
  } catch (err) {
    return { ready: false, reason: `readiness check failed: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    clearTimeout(timer);
  }
}

/** JSON with the separators of the seed's examples: `{"status": "healthy"}`. Flat string maps only. */
export function probeBody(body: Body): string {
  return `{${Object.entries(body)
    .map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`)
    .join(", ")}}`;
}

function respond(ctx: Koa.Context, status: number, body: Body): void {
  ctx.status = status;
  ctx.type = "application/json";
  ctx.set("Cache-Control", "no-store");
  ctx.body = probeBody(body);
}

function notFound(ctx: Koa.Context): void {
  respond(ctx, 404, { status: "not found" });
}

function methodNotAllowed(ctx: Koa.Context): void {
  ctx.set("Allow", "GET, HEAD");
  respond(ctx, 405, { status: "method not allowed" });
}

function newApp(logger: Logger | undefined): Koa {
  const app = new Koa();
  app.silent = true;
  app.on("error", (err: unknown) => logger?.warn({ err }, "http server error"));
  return app;
}

async function listen(app: Koa, opts: ListenOptions): Promise<ServerHandle> {
  const host = opts.host ?? "0.0.0.0";
  const handler = app.callback();
  const server: Server = createServer((req, res) => void handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    port,
    host,
    url: `http://${urlHost}:${port}`,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

export interface LagMonitor {
  /** Lag of the last timer tick, or the time the current tick is overdue, whichever is larger (ms). */
  lagMs(): number;
  stop(): void;
}

/**
 * Measures event-loop lag with a timer: a tick expected every `intervalMs` that fires late shows how long the loop
 * was busy. The timer is unref'd (never keeps the process alive).
 */
export function createLagMonitor(intervalMs: number): LagMonitor {
  let last = performance.now();
  let lastLag = 0;
  const timer = setInterval(() => {
    const t = performance.now();
    lastLag = Math.max(0, t - last - intervalMs);
    last = t;
  }, intervalMs);
  timer.unref();
  return {
    lagMs: () => Math.max(lastLag, performance.now() - last - intervalMs, 0),
    stop: () => clearInterval(timer),
  };
}

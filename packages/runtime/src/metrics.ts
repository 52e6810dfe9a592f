import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * Metrics every controller process exposes, named `<prefix>_…` (prefix `nio` or `nico`), so that the seeds'
 * names (`nio_reconcile_duration_seconds`, `nio_reconcile_errors_total`) come out of the shared machinery.
 */
export interface RuntimeMetrics {
  readonly registry: Registry;
  readonly prefix: string;
  reconcileTotal: Counter<"controller" | "result">;
  reconcileErrors: Counter<"controller" | "reason">;
  reconcileDuration: Histogram<"controller">;
  workqueueDepth: Gauge<"name">;
  workqueueAdds: Counter<"name">;
  workqueueLatency: Histogram<"name">;
  workqueueRetries: Counter<"name">;
  leaderStatus: Gauge<"name">;
  apiRequests: Counter<"verb" | "code">;
  informerRelists: Counter<"resource">;
  informerWatchRestarts: Counter<"resource">;
}

const durationBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

export function createRuntimeMetrics(prefix: string, registry = new Registry()): RuntimeMetrics {
  collectDefaultMetrics({ register: registry, prefix: `${prefix}_` });
  const r = [registry];
  return {
    registry,
    prefix,
    reconcileTotal: new Counter({
      name: `${prefix}_reconcile_total`,
      help: "Reconciles run, by controller and result (success, requeue, error).",
      labelNames: ["controller", "result"],
      registers: r,
    }),
    reconcileErrors: new Counter({
      name: `${prefix}_reconcile_errors_total`,
      help: "Reconciles that ended in an error, by controller and error reason.",
      labelNames: ["controller", "reason"],
      registers: r,
    }),
    reconcileDuration: new Histogram({
      name: `${prefix}_reconcile_duration_seconds`,
      help: "Time spent in one reconcile, by controller.",
      labelNames: ["controller"],
      buckets: durationBuckets,
      registers: r,
    }),
    workqueueDepth: new Gauge({
      name: `${prefix}_workqueue_depth`,
      help: "Keys waiting in the work queue.",
      labelNames: ["name"],
      registers: r,
    }),
    workqueueAdds: new Counter({
      name: `${prefix}_workqueue_adds_total`,
      help: "Keys added to the work queue.",
      labelNames: ["name"],
      registers: r,
    }),
    workqueueLatency: new Histogram({
      name: `${prefix}_workqueue_queue_duration_seconds`,
      help: "Time a key waits in the work queue before a worker takes it.",
      labelNames: ["name"],
      buckets: durationBuckets,
      registers: r,
    }),
    workqueueRetries: new Counter({
      name: `${prefix}_workqueue_retries_total`,
      help: "Keys re-queued with backoff after an error.",
      labelNames: ["name"],
      registers: r,
    }),
    leaderStatus: new Gauge({
      name: `${prefix}_leader_election_status`,
      help: "1 while this replica holds the leader lease, else 0.",
      labelNames: ["name"],
      registers: r,
    }),
    apiRequests: new Counter({
      name: `${prefix}_api_requests_total`,
      help: "Requests made to the Kubernetes API server, by verb and HTTP status code.",
      labelNames: ["verb", "code"],
      registers: r,
    }),
    informerRelists: new Counter({
      name: `${prefix}_informer_relists_total`,
      help: "Full lists made by informers (start, 410 Gone, resync after failure).",
      labelNames: ["resource"],
      registers: r,
    }),
    informerWatchRestarts: new Counter({
      name: `${prefix}_informer_watch_restarts_total`,
      help: "Watches re-opened by informers after they ended or failed.",
      labelNames: ["resource"],
      registers: r,
    }),
  };
}

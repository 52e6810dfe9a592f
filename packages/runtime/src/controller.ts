import { setMaxListeners } from "node:events";
import type { Logger } from "pino";
import { errMessage, type Informer, type InformerEvent } from "./informer.js";
import { objectKey, parseKey, type KubeObject, type ObjectKey } from "./kube/types.js";
import type { RuntimeMetrics } from "./metrics.js";
import { WorkQueue, type RateLimiter } from "./workqueue.js";

export interface ReconcileContext {
  /** Aborted when the controller stops (shutdown past the grace period, or leadership lost). */
  signal: AbortSignal;
  logger: Logger;
  /** How many times this key has been retried after errors in a row. */
  retries: number;
}

export interface ReconcileResult {
  /** Reconcile this key again after the delay (level-triggered polling, e.g. a periodic ref check). */
  requeueAfterMs?: number;
}

export type Reconciler = (key: ObjectKey, ctx: ReconcileContext) => Promise<ReconcileResult | void>;

/** Returns a reason to skip the event, or undefined to let it through. Pure; never does I/O. */
export type Predicate<T> = (event: InformerEvent<T>) => string | undefined;

export interface Watch {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- watches mix resource types by design
  informer: Informer<any>;
  /** Maps an object of the watched kind to keys of the primary kind ("namespace/name"). */
  map: (obj: KubeObject) => string[];
}

export interface ControllerOptions<T extends KubeObject> {
  name: string;
  for: Informer<T>;
  watches?: Watch[];
  predicates?: Predicate<T>[];
  reconcile: Reconciler;
  concurrency?: number;
  rateLimiter?: RateLimiter;
  metrics?: RuntimeMetrics;
  logger: Logger;
}

export interface Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  /** Registers event handlers (once) and starts the workers with a fresh queue. */
  start(): void;
  /** Stops intake at once; waits up to `graceMs` for in-flight reconciles, then aborts them. */
  stop(graceMs?: number): Promise<void>;
  enqueue(key: string): void;
}

/** Enqueues the controlling owner of an object when it is of the given kind. */
export function mapToOwner(kind: string, apiVersionPrefix?: string): (obj: KubeObject) => string[] {
  return (obj) =>
    (obj.metadata.ownerReferences ?? [])
      .filter(
        (o) => o.controller && o.kind === kind && (!apiVersionPrefix || o.apiVersion.startsWith(apiVersionPrefix)),
      )
      .map((o) => (obj.metadata.namespace ? `${obj.metadata.namespace}/${o.name}` : o.name));
}

/** Lets an update through when the generation changed (spec edits), or on create/delete/resync. */
export const generationChanged: Predicate<KubeObject> = (e) =>
  e.type === "update" && !e.resync && e.old?.metadata.generation === e.object.metadata.generation
    ? "generation unchanged"
    : undefined;

/**
 * Lets an event through unless it is an update that changed only status (or other server-managed fields): a
 * controller's own status writes then do not re-trigger it ahead of the requeue delay it asked for.
 */
export const ignoreStatusOnlyUpdates: Predicate<KubeObject> = (e) => {
  if (e.type !== "update" || e.resync || !e.old) return undefined;
  const a = e.old.metadata;
  const b = e.object.metadata;
  const same =
    a.generation === b.generation &&
    a.deletionTimestamp === b.deletionTimestamp &&
    sameJson(a.labels, b.labels) &&
    sameJson(a.annotations, b.annotations) &&
    sameJson(a.finalizers, b.finalizers) &&
    sameJson(a.ownerReferences, b.ownerReferences);
  return same ? "only status changed" : undefined;
};

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** Combines predicates: the event passes when any passes (useful for generation OR annotation changes). */
export function anyOf<T>(...preds: Predicate<T>[]): Predicate<T> {
  return (e) => {
    const reasons: string[] = [];
    for (const p of preds) {
      const r = p(e);
      if (r === undefined) return undefined;
      reasons.push(r);
    }
    return reasons.join("; ");
  };
}

/** Lets an update through when the given annotation changed (e.g. a requestedAt annotation). */
export function annotationChanged(name: string): Predicate<KubeObject> {
  return (e) =>
    e.type === "update" && e.old?.metadata.annotations?.[name] === e.object.metadata.annotations?.[name]
      ? `annotation ${name} unchanged`
      : undefined;
}

/** How many listeners one reconcile may keep on the shared abort signal at once (an apply, its SSH commands). */
const ABORT_LISTENERS_PER_RECONCILE = 4;

/**
 * The abort signal every in-flight reconcile shares. Node warns about a possible leak past 10 listeners; the bound
 * here follows the concurrency instead, so a real leak (listeners never removed) still warns.
 */
function reconcileAbortController(concurrency: number): AbortController {
  const controller = new AbortController();
  setMaxListeners(10 + ABORT_LISTENERS_PER_RECONCILE * concurrency, controller.signal);
  return controller;
}

export function createController<T extends KubeObject>(opts: ControllerOptions<T>): Controller {
  const concurrency = opts.concurrency ?? 1;
  let queue = new WorkQueue({ name: opts.name, rateLimiter: opts.rateLimiter, metrics: opts.metrics });
  let abort = reconcileAbortController(concurrency);
  let workers: Promise<void>[] = [];
  let handlersRegistered = false;
  const log = opts.logger.child({ controller: opts.name });

  const registerHandlers = (): void => {
    if (handlersRegistered) return;
    handlersRegistered = true;
    opts.for.on((event) => {
      for (const p of opts.predicates ?? []) {
        const skip = p(event);
        if (skip !== undefined) return;
      }
      queue.add(objectKey(event.object));
    });
    for (const w of opts.watches ?? []) {
      w.informer.on((event: InformerEvent<KubeObject>) => {
        const keys = new Set([...w.map(event.object), ...(event.old ? w.map(event.old) : [])]);
        for (const k of keys) queue.add(k);
      });
    }
  };

  const reconcileOne = async (key: string): Promise<void> => {
    const started = process.hrtime.bigint();
    const ref = parseKey(key);
    const klog = log.child({ namespace: ref.namespace, name: ref.name });
    let result = "success";
    try {
      const res = await opts.reconcile(ref, { signal: abort.signal, logger: klog, retries: queue.retries(key) });
      queue.forget(key);
      if (res?.requeueAfterMs !== undefined) {
        result = "requeue";
        queue.addAfter(key, res.requeueAfterMs);
      }
    } catch (err) {
      result = "error";
      const reason = (err as { reason?: unknown }).reason;
      opts.metrics?.reconcileErrors.inc({
        controller: opts.name,
        reason: typeof reason === "string" ? reason : "Error",
      });
      klog.error({ err: errMessage(err), retries: queue.retries(key) }, "reconcile failed; retrying with backoff");
      queue.addRateLimited(key);
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      opts.metrics?.reconcileDuration.observe({ controller: opts.name }, seconds);
      opts.metrics?.reconcileTotal.inc({ controller: opts.name, result });
      queue.done(key);
    }
  };

  const worker = async (q: WorkQueue): Promise<void> => {
    for (;;) {
      const key = await q.get();
      if (key === undefined) return;
      await reconcileOne(key);
    }
  };

  return {
    name: opts.name,
    get queue() {
      return queue;
    },
    start() {
      registerHandlers();
      if (queue.isShuttingDown()) {
        queue = new WorkQueue({ name: opts.name, rateLimiter: opts.rateLimiter, metrics: opts.metrics });
        abort = reconcileAbortController(concurrency);
      }
      // Start level-triggered: everything already in the cache gets one reconcile.
      for (const k of opts.for.keys()) queue.add(k);
      const q = queue;
      workers = Array.from({ length: concurrency }, () => worker(q));
    },
    async stop(graceMs = 30_000) {
      queue.shutdown();
      const drained = Promise.all(workers).then(() => true);
      const inTime = await Promise.race([
        drained,
        new Promise<false>((r) => setTimeout(() => r(false), graceMs).unref()),
      ]);
      if (!inTime) {
        log.warn({ graceMs }, "in-flight reconciles did not finish within the grace period; aborting them");
        abort.abort();
        await drained;
      }
    },
    enqueue: (key) => queue.add(key),
  };
}

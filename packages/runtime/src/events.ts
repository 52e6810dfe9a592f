import type { Logger } from "pino";
import { formatTime } from "./conditions.js";
import type { EventType } from "./errors.js";
import type { Kube } from "./kube/client.js";
import { isNotFound } from "./kube/errors.js";
import type { KubeObject } from "./kube/types.js";

/** Emits Kubernetes Events about objects. Never throws and never blocks the caller. */
export interface EventRecorder {
  event(obj: KubeObject, type: EventType, reason: string, message: string): void;
  /** Resolves when every event accepted so far has been written (or has failed). For tests and shutdown. */
  flush(): Promise<void>;
  stats(): EventRecorderStats;
}

export interface EventRecorderStats {
  /** New Event objects created. */
  created: number;
  /** Repeats folded into an existing Event (count and lastTimestamp patched). */
  patched: number;
  /** Events dropped by the per-object rate limit. */
  dropped: number;
  /** Writes the API server refused or that never reached it (logged). */
  failed: number;
}

export interface EventRecorderOptions {
  kube: Kube;
  /** `source.component` and `reportingComponent`, e.g. `nio-controller`. */
  component: string;
  /** `reportingInstance` and `source.host`: usually the pod name. */
  instance?: string;
  logger?: Logger;
  now?: () => Date;
  /** A repeat of the same event within this time of the previous one is counted, not created. Default 10 min. */
  dedupWindowMs?: number;
  /** Token bucket per involved object: burst size. Default 25. */
  burst?: number;
  /** Token bucket per involved object: one token back every this many ms. Default 5 min. */
  refillIntervalMs?: number;
  /** Bound of the dedup and rate-limit caches (least recently used entries go first). Default 4096. */
  maxEntries?: number;
  /** Applied to every message before anything else (e.g. `(t) => redact(t, knownSecrets())`). */
  redact?: (text: string) => string;
}

export const MAX_MESSAGE_LENGTH = 1024;
const MAX_REASON_LENGTH = 128;

interface Seen {
  namespace: string;
  name: string;
  count: number;
  lastMs: number;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

/** A Map kept in least-recently-used order, bounded. */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): void {
    this.map.delete(key);
    this.map.set(key, v);
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next().value;
      if (oldest === undefined) break;
      this.map.delete(oldest);
    }
  }
  delete(key: string): void {
    this.map.delete(key);
  }
}

/**
 * Creates core/v1 Events like client-go's recorder:
 * - deduplicated: the same object + type + reason + message again within `dedupWindowMs` of its last occurrence
 *   increments `count` and moves `lastTimestamp` on the existing Event (a PATCH) instead of creating another;
 * - rate limited per involved object (token bucket, burst 25, then one per 5 minutes); dropped events are counted
 *   and logged at debug;
 * - messages truncated to 1024 characters (after `redact`);
 * - writes happen in the background, in order per distinct event; failures are logged and counted, never thrown.
 */
export function createEventRecorder(opts: EventRecorderOptions): EventRecorder {
  const now = opts.now ?? ((): Date => new Date());
  const windowMs = opts.dedupWindowMs ?? 10 * 60_000;
  const burst = opts.burst ?? 25;
  const refillMs = opts.refillIntervalMs ?? 5 * 60_000;
  const maxEntries = opts.maxEntries ?? 4096;
  const seen = new Lru<Seen>(maxEntries);
  const buckets = new Lru<Bucket>(maxEntries);
  const chains = new Map<string, Promise<void>>();
  const inflight = new Set<Promise<void>>();
  const stats: EventRecorderStats = { created: 0, patched: 0, dropped: 0, failed: 0 };
  let seq = 0;

  const takeToken = (objKey: string, atMs: number): boolean => {
    const b = buckets.get(objKey) ?? { tokens: burst, atMs };
    const tokens = Math.min(burst, b.tokens + (atMs - b.atMs) / refillMs);
    const ok = tokens >= 1;
    buckets.set(objKey, { tokens: ok ? tokens - 1 : tokens, atMs });
    return ok;
  };

  const uniqueName = (base: string, at: Date): string => {
    const nanos = BigInt(at.getTime()) * 1_000_000n + BigInt(seq++ % 1_000_000);
    return `${base.slice(0, 200)}.${nanos.toString(16)}`;
  };

  const write = async (key: string, ev: PendingEvent): Promise<void> => {
    const prev = seen.get(key);
    const atMs = ev.at.getTime();
    if (prev && atMs - prev.lastMs < windowMs) {
      const count = prev.count + 1;
      try {
        await opts.kube.request(
          "PATCH",
          `/api/v1/namespaces/${encodeURIComponent(prev.namespace)}/events/${encodeURIComponent(prev.name)}`,
          { count, lastTimestamp: formatTime(ev.at) },
          "application/merge-patch+json",
        );
        seen.set(key, { ...prev, count, lastMs: atMs });
        stats.patched++;
        return;
      } catch (err) {
        // Events expire (kube-apiserver --event-ttl, 1 h by default): start a new one.
        if (!isNotFound(err)) throw err;
        seen.delete(key);
      }
    }
    const name = uniqueName(ev.obj.metadata.name ?? "event", ev.at);
    const body = eventBody(ev, name, opts);
    await opts.kube.request("POST", `/api/v1/namespaces/${encodeURIComponent(body.metadata.namespace)}/events`, body);
    seen.set(key, { namespace: body.metadata.namespace, name, count: 1, lastMs: atMs });
    stats.created++;
  };

  const enqueue = (key: string, ev: PendingEvent): void => {
    const prev = chains.get(key) ?? Promise.resolve();
    const task: Promise<void> = prev
      .then(() => write(key, ev))
      .catch((err: unknown) => {
        stats.failed++;
        opts.logger?.warn({ err, ...logFields(ev) }, "could not record event");
      })
      .finally(() => {
        inflight.delete(task);
        if (chains.get(key) === task) chains.delete(key);
      });
    chains.set(key, task);
    inflight.add(task);
  };

  const event = (obj: KubeObject, type: EventType, reason: string, message: string): void => {
    try {
      const at = now();
      const text = truncate((opts.redact ?? ((t: string): string => t))(message), MAX_MESSAGE_LENGTH);
      const ev: PendingEvent = { obj, type, reason: truncate(reason, MAX_REASON_LENGTH), message: text, at };
      if (!obj.metadata.name) {
        opts.logger?.warn(logFields(ev), "event for an object without a name dropped");
        return;
      }
      if (!takeToken(involvedKey(obj), at.getTime())) {
        stats.dropped++;
        opts.logger?.debug(logFields(ev), "event dropped by rate limit");
        return;
      }
      enqueue(`${involvedKey(obj)}\u0000${type}\u0000${ev.reason}\u0000${text}`, ev);
    } catch (err) {
      stats.failed++;
      opts.logger?.warn({ err }, "could not record event");
    }
  };

  return {
    event,
    flush: async () => {
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
    stats: () => ({ ...stats }),
  };
}

interface PendingEvent {
  obj: KubeObject;
  type: EventType;
  reason: string;
  message: string;
  at: Date;
}

interface EventBody {
  apiVersion: "v1";
  kind: "Event";
  metadata: { name: string; namespace: string };
  [field: string]: unknown;
}

function eventBody(ev: PendingEvent, name: string, opts: EventRecorderOptions): EventBody {
  const m = ev.obj.metadata;
  const ts = formatTime(ev.at);
  return {
    apiVersion: "v1",
    kind: "Event",
    // Events about cluster-scoped objects go to "default", as client-go does.
    metadata: { name, namespace: m.namespace || "default" },
    involvedObject: {
      apiVersion: ev.obj.apiVersion,
      kind: ev.obj.kind,
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
    },
    type: ev.type,
    reason: ev.reason,
    message: ev.message,
    source: { component: opts.component, ...(opts.instance ? { host: opts.instance } : {}) },
    reportingComponent: opts.component,
    reportingInstance: opts.instance ?? "",
    firstTimestamp: ts,
    lastTimestamp: ts,
    count: 1,
  };
}

function involvedKey(obj: KubeObject): string {
  const m = obj.metadata;
  return m.uid ?? `${obj.apiVersion ?? ""}/${obj.kind ?? ""}/${m.namespace ?? ""}/${m.name ?? ""}`;
}

function logFields(ev: PendingEvent): Record<string, unknown> {
  const m = ev.obj.metadata;
  return { namespace: m.namespace, name: m.name, kind: ev.obj.kind, eventType: ev.type, reason: ev.reason };
}

/** Cuts `text` to at most `max` characters, marking the cut with an ellipsis. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, Math.max(0, max - 1))}…`;
}

export const REDACTED = "[REDACTED]";

/**
 * Replaces every occurrence of each secret in `text` (longest first; a multi-line secret such as a private key
 * also line by line, for lines of 8+ characters) and the password/token part of URLs (`https://user:pw@host`).
 * Empty secrets are ignored. For messages, logs and `lastAttempt.logTail`.
 */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  const pieces = new Set<string>();
  for (const s of secrets) {
    if (!s) continue;
    pieces.add(s);
    if (s.includes("\n")) {
      for (const line of s.split(/\r?\n/)) if (line.trim().length >= 8) pieces.add(line.trim());
    }
  }
  let out = text;
  for (const p of [...pieces].sort((a, b) => b.length - a.length)) out = out.split(p).join(REDACTED);
  return out.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)([^\s/@:]*):([^\s/@]+)@/gi, `$1$2:${REDACTED}@`);
}

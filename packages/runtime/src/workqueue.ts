import type { RuntimeMetrics } from "./metrics.js";

/** Per-key backoff for retries: the larger of an exponential per-item delay and an overall token bucket. */
export interface RateLimiter {
  /** Delay before `key` may be retried; counts a failure for the key. */
  when(key: string): number;
  forget(key: string): void;
  retries(key: string): number;
}

export interface RateLimiterOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Overall retry rate across all keys (tokens per second) and burst. */
  qps?: number;
  burst?: number;
  now?: () => number;
}

export function defaultRateLimiter(opts: RateLimiterOptions = {}): RateLimiter {
  const base = opts.baseDelayMs ?? 5;
  const max = opts.maxDelayMs ?? 1_000_000;
  const qps = opts.qps ?? 10;
  const burst = opts.burst ?? 100;
  const now = opts.now ?? Date.now;
  const failures = new Map<string, number>();
  let tokens = burst;
  let last = now();
  return {
    when(key) {
      const n = failures.get(key) ?? 0;
      failures.set(key, n + 1);
      const exp = Math.min(max, base * 2 ** Math.min(n, 40));
      // Token bucket: refill, then reserve one token; a negative balance is the wait until it exists.
      const t = now();
      tokens = Math.min(burst, tokens + ((t - last) / 1000) * qps);
      last = t;
      tokens -= 1;
      const bucket = tokens >= 0 ? 0 : (-tokens / qps) * 1000;
      return Math.max(exp, bucket);
    },
    forget: (key) => void failures.delete(key),
    retries: (key) => failures.get(key) ?? 0,
  };
}

export interface WorkQueueOptions {
  name: string;
  rateLimiter?: RateLimiter;
  metrics?: RuntimeMetrics;
}

/**
 * A keyed, de-duplicating work queue with client-go semantics: a key added while queued is stored once; a key
 * added while being processed is queued again only when the worker calls `done`, so no key is ever processed by
 * two workers at once.
 */
export class WorkQueue {
  readonly name: string;
  private readonly queue: string[] = [];
  private head = 0;
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly addedAt = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly drainWaiters: (() => void)[] = [];
  private shuttingDown = false;
  private readonly limiter: RateLimiter;
  private readonly metrics: RuntimeMetrics | undefined;

  constructor(opts: WorkQueueOptions) {
    this.name = opts.name;
    this.limiter = opts.rateLimiter ?? defaultRateLimiter();
    this.metrics = opts.metrics;
  }

  get length(): number {
    return this.queue.length - this.head;
  }

  get processingCount(): number {
    return this.processing.size;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.metrics?.workqueueAdds.inc({ name: this.name });
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /** Adds `key` after `delayMs`; of several pending delays for one key, the earliest wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  addRateLimited(key: string): void {
    this.metrics?.workqueueRetries.inc({ name: this.name });
    this.addAfter(key, this.limiter.when(key));
  }

  forget(key: string): void {
    this.limiter.forget(key);
  }

  retries(key: string): number {
    return this.limiter.retries(key);
  }

  /** Next key to process, or undefined once the queue is shut down and empty. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    if (this.length > 0) return Promise.resolve(this.take());
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) this.push(key);
    if (this.processing.size === 0) this.drainWaiters.splice(0).forEach((w) => w());
  }

  /** Stops intake at once: no new keys are handed out; keys in processing may finish. */
  shutdown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.waiters.splice(0).forEach((w) => w(undefined));
  }

  /** Resolves once no key is being processed (after `shutdown`, the in-flight work has finished). */
  drained(): Promise<void> {
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private push(key: string): void {
    const waiter = this.waiters.shift();
    this.addedAt.set(key, Date.now());
    if (waiter) {
      this.queue.push(key);
      waiter(this.take());
      return;
    }
    this.queue.push(key);
    this.metrics?.workqueueDepth.set({ name: this.name }, this.length);
  }

  private take(): string {
    const key = this.queue[this.head++] as string;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.dirty.delete(key);
    this.processing.add(key);
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (added !== undefined) this.metrics?.workqueueLatency.observe({ name: this.name }, (Date.now() - added) / 1000);
    this.metrics?.workqueueDepth.set({ name: this.name }, this.length);
    return key;
  }
}

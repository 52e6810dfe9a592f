import type { Logger } from "pino";
import type { Kube } from "./kube/client.js";
import { isGone } from "./kube/errors.js";
import { objectKey, type KubeObject, type ResourceType } from "./kube/types.js";
import type { RuntimeMetrics } from "./metrics.js";

export type IndexFunc<T> = (obj: T) => string[];

export interface InformerEvent<T> {
  type: "add" | "update" | "delete";
  object: T;
  /** The previous state for updates and the last known state for deletes. */
  old?: T;
  /** True for the periodic resync (the object did not change). */
  resync?: boolean;
}

export type InformerHandler<T> = (event: InformerEvent<T>) => void;

export interface InformerOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Every object is re-delivered as an `update` with `resync: true` at this period; 0 disables. Default 10 min. */
  resyncMs?: number;
  pageSize?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  metrics?: RuntimeMetrics;
  logger?: Logger;
  /**
   * Applied to every object before it is cached. The default drops metadata.managedFields, which controllers
   * never read and which is often the largest part of an object (controller-runtime does the same).
   */
  transform?: (obj: KubeObject) => void;
}

export function stripManagedFields(obj: KubeObject): void {
  delete (obj.metadata as { managedFields?: unknown }).managedFields;
}

/** Exponential backoff with full jitter: retries spread out instead of arriving together (no storms). */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {}
  next(): number {
    const cap = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return cap / 2 + Math.random() * (cap / 2);
  }
  reset(): void {
    this.attempt = 0;
  }
}

/**
 * A cache of one resource type kept current by list + watch. Watches resume from the last seen resourceVersion
 * (bookmarks keep it fresh); a 410 Gone relists, and the relist is diffed against the cache so that objects
 * deleted while the watch was down are delivered as deletes with their last known state.
 */
export class Informer<T extends KubeObject> {
  private readonly store = new Map<string, T>();
  private readonly indexers = new Map<string, IndexFunc<T>>();
  private readonly indices = new Map<string, Map<string, Set<string>>>();
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly syncWaiters: (() => void)[] = [];
  private synced = false;
  private running = false;
  private abort = new AbortController();
  private resyncTimer: NodeJS.Timeout | undefined;
  private resourceVersion = "";
  private readonly backoff: Backoff;
  private loop: Promise<void> | undefined;
  private readonly transform: (obj: KubeObject) => void;
  readonly resourceName: string;

  constructor(
    private readonly kube: Kube,
    readonly resource: ResourceType,
    private readonly opts: InformerOptions = {},
  ) {
    this.backoff = new Backoff(opts.backoffInitialMs ?? 200, opts.backoffMaxMs ?? 30_000);
    this.transform = opts.transform ?? stripManagedFields;
    this.resourceName = resource.group ? `${resource.plural}.${resource.group}` : resource.plural;
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  addIndex(name: string, fn: IndexFunc<T>): void {
    this.indexers.set(name, fn);
    const index = new Map<string, Set<string>>();
    this.indices.set(name, index);
    for (const [key, obj] of this.store) for (const v of fn(obj)) addTo(index, v, key);
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  keys(): string[] {
    return [...this.store.keys()];
  }

  byIndex(name: string, value: string): T[] {
    const index = this.indices.get(name);
    if (!index) throw new Error(`informer ${this.resourceName} has no index ${name}`);
    return [...(index.get(value) ?? [])].map((k) => this.store.get(k)).filter((o): o is T => o !== undefined);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.syncWaiters.push(resolve);
      signal?.addEventListener("abort", () => reject(new Error(`waiting for ${this.resourceName} cache aborted`)), {
        once: true,
      });
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    this.loop = this.run();
    const resyncMs = this.opts.resyncMs ?? 600_000;
    if (resyncMs > 0) {
      this.resyncTimer = setInterval(() => this.resync(), resyncMs);
      this.resyncTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await this.loop;
  }

  private async run(): Promise<void> {
    let needList = true;
    while (this.running) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        await this.watchOnce();
        this.opts.metrics?.informerWatchRestarts.inc({ resource: this.resourceName });
      } catch (err) {
        if (!this.running) break;
        if (isGone(err)) {
          this.opts.logger?.debug({ resource: this.resourceName }, "watch expired (410 Gone); relisting");
          needList = true;
        } else {
          this.opts.logger?.warn({ resource: this.resourceName, err: errMessage(err) }, "list/watch failed; retrying");
        }
        this.opts.metrics?.informerWatchRestarts.inc({ resource: this.resourceName });
        await this.sleep(needList && isGone(err) ? Math.random() * 200 : this.backoff.next());
      }
    }
  }

  private async relist(): Promise<void> {
    this.opts.metrics?.informerRelists.inc({ resource: this.resourceName });
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv = "";
    do {
      const page = await this.kube.list<T>(this.resource, {
        namespace: this.opts.namespace,
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
        limit: this.opts.pageSize ?? 500,
        continue: cont,
      });
      for (const item of page.items) {
        // List items carry no apiVersion/kind; watch events do. Make them uniform for consumers.
        item.apiVersion ??= this.resource.group
          ? `${this.resource.group}/${this.resource.version}`
          : this.resource.version;
        item.kind ??= this.resource.kind;
        this.transform(item);
        fresh.set(objectKey(item), item);
      }
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion ?? rv;
    } while (cont);
    this.replace(fresh);
    this.resourceVersion = rv;
    this.backoff.reset();
    if (!this.synced) {
      this.synced = true;
      this.syncWaiters.splice(0).forEach((w) => w());
    }
  }

  private replace(fresh: Map<string, T>): void {
    for (const [key, old] of this.store) {
      if (!fresh.has(key)) {
        this.remove(key, old);
        this.emit({ type: "delete", object: old, old });
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.store.get(key);
      if (old?.metadata.resourceVersion === obj.metadata.resourceVersion) continue;
      this.put(key, obj, old);
      this.emit(old ? { type: "update", object: obj, old } : { type: "add", object: obj });
    }
  }

  private async watchOnce(): Promise<void> {
    const events = this.kube.watch<T>(
      this.resource,
      {
        namespace: this.opts.namespace,
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        // Spread watch renewals over 5–10 minutes so replicas and informers don't reconnect in step.
        timeoutSeconds: Math.floor(300 + Math.random() * 300),
      },
      this.abort.signal,
    );
    for await (const ev of events) {
      this.backoff.reset();
      const rv = ev.object.metadata.resourceVersion;
      if (ev.type === "BOOKMARK") {
        if (rv) this.resourceVersion = rv;
        continue;
      }
      this.transform(ev.object);
      const key = objectKey(ev.object);
      const old = this.store.get(key);
      if (ev.type === "DELETED") {
        this.remove(key, old ?? ev.object);
        this.emit({ type: "delete", object: ev.object, old });
      } else {
        this.put(key, ev.object, old);
        this.emit(old ? { type: "update", object: ev.object, old } : { type: "add", object: ev.object });
      }
      if (rv) this.resourceVersion = rv;
    }
  }

  private resync(): void {
    if (!this.synced) return;
    for (const obj of this.store.values()) this.emit({ type: "update", object: obj, old: obj, resync: true });
  }

  private put(key: string, obj: T, old: T | undefined): void {
    if (old) this.unindex(key, old);
    this.store.set(key, obj);
    for (const [name, fn] of this.indexers) {
      const index = this.indices.get(name) as Map<string, Set<string>>;
      for (const v of fn(obj)) addTo(index, v, key);
    }
  }

  private remove(key: string, old: T): void {
    this.unindex(key, this.store.get(key) ?? old);
    this.store.delete(key);
  }

  private unindex(key: string, obj: T): void {
    for (const [name, fn] of this.indexers) {
      const index = this.indices.get(name) as Map<string, Set<string>>;
      for (const v of fn(obj)) {
        const set = index.get(v);
        set?.delete(key);
        if (set?.size === 0) index.delete(v);
      }
    }
  }

  private emit(event: InformerEvent<T>): void {
    for (const h of this.handlers) {
      try {
        h(event);
      } catch (err) {
        this.opts.logger?.error({ resource: this.resourceName, err: errMessage(err) }, "informer handler threw");
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.abort.signal.addEventListener(
        "abort",
        () => {
          clearTimeout(t);
          resolve();
        },
        { once: true },
      );
    });
  }
}

function addTo(index: Map<string, Set<string>>, value: string, key: string): void {
  let set = index.get(value);
  if (!set) index.set(value, (set = new Set()));
  set.add(key);
}

export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

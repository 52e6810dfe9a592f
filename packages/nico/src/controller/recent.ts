import type { KubeObject } from "@nio/runtime";

/**
 * Read-your-writes: objects this controller wrote in the last few seconds, by "namespace/name". Right after a write
 * the watch may not have brought the object back yet, and deciding from the cache alone would redo or undo our own
 * step (write a configuration again, report it created again, act on a cluster status from before our last write).
 * A recent write counts until the cache shows that version or a newer one, or until `ttlMs` has passed (the object may
 * have been deleted by someone else meanwhile).
 */
export class RecentWrites<T extends KubeObject> {
  private readonly writes = new Map<string, { object: T; at: number }>();

  constructor(
    private readonly ttlMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  record(key: string, object: T): void {
    this.writes.set(key, { object, at: this.now() });
  }

  forget(key: string): void {
    this.writes.delete(key);
  }

  /** The newer of the cached object and our recent write of it. */
  newest(key: string, cached: T | undefined): T | undefined {
    const w = this.writes.get(key);
    if (!w) return cached;
    const stale = this.now() - w.at > this.ttlMs;
    const caughtUp =
      cached !== undefined && cached.metadata.uid === w.object.metadata.uid && rv(cached) >= rv(w.object);
    if (stale || caughtUp || (cached && cached.metadata.uid !== w.object.metadata.uid)) {
      this.writes.delete(key);
      return cached;
    }
    return w.object;
  }
}

function rv(o: KubeObject): number {
  return Number.parseInt(o.metadata.resourceVersion ?? "", 10) || 0;
}

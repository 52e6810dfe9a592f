import { createHash } from "node:crypto";
import type { GitAuth, GitSource, ResolvedRef } from "./git/index.js";
import { normaliseGitUrl } from "./git/index.js";
import type { NioMetrics } from "./metrics.js";

interface Entry {
  at: number;
  value: Promise<ResolvedRef>;
}

/**
 * Ref resolutions shared by every configuration: N configurations on one repository and ref make one ref listing
 * per interval. A webhook for the repository (or a requested reconcile) invalidates its entries.
 */
export class RefCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly git: GitSource,
    private readonly ttlMs: number,
    private readonly metrics?: NioMetrics,
    private readonly now: () => number = Date.now,
  ) {}

  resolve(url: string, ref: string | undefined, auth?: GitAuth, opts: { fresh?: boolean } = {}): Promise<ResolvedRef> {
    const key = this.key(url, ref, auth);
    const hit = this.entries.get(key);
    if (hit && !opts.fresh && this.now() - hit.at < this.ttlMs) return hit.value;
    const value = this.git.resolveRef(url, ref, auth).then(
      (r) => {
        this.metrics?.gitRefChecks.inc({ result: "success" });
        return r;
      },
      (err: unknown) => {
        this.metrics?.gitRefChecks.inc({ result: "error" });
        if (this.entries.get(key)?.value === value) this.entries.delete(key);
        throw err;
      },
    );
    this.entries.set(key, { at: this.now(), value });
    return value;
  }

  /** Forgets every resolution of this repository (webhook push). */
  invalidate(url: string): void {
    const prefix = `${normaliseGitUrl(url)}\n`;
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) this.entries.delete(key);
  }

  private key(url: string, ref: string | undefined, auth?: GitAuth): string {
    const who = auth
      ? createHash("sha256")
          .update(`${auth.username ?? ""}:${auth.token}`)
          .digest("hex")
      : "";
    return `${normaliseGitUrl(url)}\n${ref ?? "HEAD"}\n${who}`;
  }
}

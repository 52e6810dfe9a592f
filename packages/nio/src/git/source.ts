/**
 * GitSource: resolve a ref with a ref listing, and check a commit out into a content-addressed, bounded cache shared
 * by every configuration that uses it.
 *
 * Cache layout under `cacheDir` (one GitSource per cacheDir):
 * - `repos/<sha256(url)>.git`: bare object store per repository, so later commits fetch incrementally;
 * - `trees/<sha256(url)>/<commit>/`: exported trees (read-only files, no `.git`), created by an atomic rename;
 * - `tmp/`: exports in progress and trees being deleted (emptied on start).
 *
 * Sharing: a tree is fetched and exported at most once: concurrent checkouts of one (url, commit) join the same
 * in-flight promise, later ones are cache hits without any request (but see Access for private repositories).
 *
 * Access: a cached tree of a repository that needed credentials is handed out only to callers whose credentials
 * the server accepted (checked with one ref listing, remembered for `accessTtlMs`), so a configuration without (or
 * with wrong) credentials cannot read a private repository through the cache by naming a commit id. Public
 * repositories (the server never asked for credentials) need no check.
 *
 * Eviction vs use: {@link GitSource.checkout} returns a {@link TreeLease}; a tree with an unreleased lease is never
 * evicted. Trees are evicted least-recently-used first when there are more than `maxEntries` (or more than
 * `maxBytes` in all); if every tree over the bound is leased, the cache stays over the bound until a lease is
 * released (release runs the eviction). A repository's object store is wiped when its last tree is evicted or when
 * it grows beyond `maxRepoBytes`.
 */
import { mkdir, mkdtemp, readdir, rename, rm, stat, lstat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { HttpClient } from "isomorphic-git";
import { GitError, toGitError } from "./errors.js";
import { exportTree } from "./export.js";
import { fetchCommit, type FetchStep } from "./fetch.js";
import {
  authCallbacks,
  credentialFingerprint,
  describeAvailable,
  httpClient,
  listRefs,
  resolveInListing,
  secretsOf,
  validateRefName,
  type GitAuth,
  type ResolvedRef,
} from "./remote.js";
import { isCommitId, normaliseCommit, normaliseGitUrl, repoKey } from "./url.js";

/** A checked-out tree. `dir` stays valid (and is not evicted) until `release()`; do not modify it. */
export interface TreeLease {
  readonly dir: string;
  readonly commit: string;
  /** How the tree was obtained: `cache` (already exported), `joined` (another caller's checkout in flight), or the
   * fetch step of {@link FetchStep} that brought the commit (`present` = objects were there, no request). */
  readonly source: "cache" | "joined" | FetchStep;
  /** Ends the lease (idempotent). Resolves when the eviction it may trigger is done; never rejects. */
  release(): Promise<void>;
}

export interface GitSourceStats {
  /** Ref listings made by resolveRef (commit ids resolve without one). */
  resolves: number;
  /** Upload-pack (fetch) requests. */
  fetches: number;
  /** Checkouts served from an exported tree. */
  cacheHits: number;
  /** Checkouts that joined a checkout of the same commit already in flight. */
  joins: number;
  /** Trees exported from the object store. */
  exports: number;
  evictions: number;
  /** Ref listings made to check a caller's access to an already cached private repository. */
  accessChecks: number;
  /** Trees in the cache now and their size in bytes. */
  entries: number;
  bytes: number;
}

export interface GitSource {
  /**
   * Resolves `ref` with one ref listing (never a clone or a pack fetch). `undefined` or `HEAD` = the remote HEAD
   * (its symref is followed); a branch or tag name (git's order: `refs/<x>`, `refs/tags/<x>`, `refs/heads/<x>`); a
   * full `refs/...` name; annotated tags are peeled to their commit; a full 40-hex commit id is returned as is
   * without any request. Throws {@link GitError}: `RefNotFound` (message lists available refs), `AuthFailed`,
   * `Unreachable`, `InvalidSpec`, `GitError`.
   */
  resolveRef(url: string, ref: string | undefined, auth?: GitAuth): Promise<ResolvedRef>;
  /**
   * The tree of `commit` as a directory in the shared cache; see the module comment for sharing and eviction.
   * `hint.ref` (from {@link resolveRef}) is used only for servers that refuse to send a commit by id.
   */
  checkout(url: string, commit: string, auth?: GitAuth, hint?: { ref?: string }): Promise<TreeLease>;
  stats(): GitSourceStats;
}

export interface GitSourceLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface GitSourceOptions {
  cacheDir: string;
  /** Most trees kept (default 20). */
  maxEntries?: number;
  /** Most bytes of trees kept (default unbounded). */
  maxBytes?: number;
  /** A repository object store larger than this is wiped before its next fetch (default 256 MiB). */
  maxRepoBytes?: number;
  /** Called once per upload-pack request (for `nio_git_clones_total`). */
  onFetch?: () => void;
  /** Inactivity timeout of each HTTP request (default 60 s). */
  timeoutMs?: number;
  /** Ask the server for a commit by id (default true); false fetches through the hinted ref only. */
  fetchByCommitId?: boolean;
  logger?: GitSourceLogger;
  /** How long accepted credentials of a private repository are trusted for cache hits (default 5 min). */
  accessTtlMs?: number;
  /** Injected HTTP client (default: isomorphic-git's node client with the timeout). */
  http?: HttpClient;
}

interface Entry {
  key: string;
  repo: string;
  commit: string;
  dir: string;
  bytes: number;
  refs: number;
  lastUsed: number;
}

interface RepoAccess {
  /** The server never asked for credentials. */
  public: boolean;
  /** Credential fingerprint → until when it counts as accepted (epoch ms). */
  verified: Map<string, number>;
}

interface Loaded {
  entry: Entry;
  source: TreeLease["source"];
}

interface Loading {
  promise: Promise<Loaded>;
  /** Callers waiting for this load: the entry starts with one reference per waiter. */
  state: { waiters: number };
}

const DEFAULT_MAX_ENTRIES = 20;
const DEFAULT_MAX_REPO_BYTES = 256 * 1024 * 1024;
const DEFAULT_ACCESS_TTL_MS = 5 * 60_000;

export function createGitSource(opts: GitSourceOptions): GitSource {
  return new CachingGitSource(opts);
}

class CachingGitSource implements GitSource {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Loading>();
  /** Trees being deleted, by key: a new checkout of the same commit waits for it. */
  private readonly removing = new Map<string, Promise<void>>();
  private readonly repoLocks = new Map<string, Promise<unknown>>();
  private evictChain: Promise<void> = Promise.resolve();
  private ready: Promise<void> | undefined;
  private tick = 0;
  private readonly access = new Map<string, RepoAccess>();
  private readonly counters = {
    resolves: 0,
    fetches: 0,
    cacheHits: 0,
    joins: 0,
    exports: 0,
    evictions: 0,
    accessChecks: 0,
  };
  private readonly http: HttpClient;
  private readonly maxEntries: number;
  private readonly maxBytes: number;

  constructor(private readonly opts: GitSourceOptions) {
    this.http = opts.http ?? httpClient(opts.timeoutMs ?? 60_000);
    this.maxEntries = Math.max(1, opts.maxEntries ?? DEFAULT_MAX_ENTRIES);
    this.maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
  }

  stats(): GitSourceStats {
    let bytes = 0;
    for (const e of this.entries.values()) bytes += e.bytes;
    return { ...this.counters, entries: this.entries.size, bytes };
  }

  async resolveRef(url: string, ref: string | undefined, auth?: GitAuth): Promise<ResolvedRef> {
    const nurl = normaliseGitUrl(url);
    if (ref !== undefined && isCommitId(ref.toLowerCase())) {
      const commit = ref.toLowerCase();
      return { commit, ref: commit };
    }
    if (ref !== undefined) validateRefName(ref);
    const what =
      ref === undefined ? `resolving the default branch (HEAD) of ${nurl}` : `resolving ref "${ref}" of ${nurl}`;
    this.counters.resolves++;
    let refs;
    let asked = false;
    try {
      refs = await listRefs(
        this.http,
        nurl,
        authCallbacks(auth, () => (asked = true)),
      );
    } catch (err) {
      throw toGitError(err, { what, withAuth: auth !== undefined && auth.token !== "", secrets: secretsOf(auth) });
    }
    this.recordAccess(repoKey(nurl), credentialFingerprint(auth), asked);
    const hit = resolveInListing(refs, ref);
    if (hit) return hit;
    const hint =
      ref !== undefined && /^[0-9a-fA-F]{4,39}$/.test(ref)
        ? " (abbreviated commit ids are not supported: give all 40 hex digits)"
        : "";
    throw new GitError("RefNotFound", `${what}: not found${hint}; ${describeAvailable(refs)}`);
  }

  async checkout(url: string, commit: string, auth?: GitAuth, hint?: { ref?: string }): Promise<TreeLease> {
    const nurl = normaliseGitUrl(url);
    const c = normaliseCommit(commit);
    await this.init();
    const repo = repoKey(nurl);
    const key = `${repo}/${c}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.counters.cacheHits++;
      hit.refs++;
      await this.checkAccessOrUnref(hit, nurl, auth);
      return this.lease(hit, "cache");
    }
    let job = this.loading.get(key);
    if (job) {
      this.counters.joins++;
    } else {
      const state = { waiters: 0 };
      job = { promise: this.load({ key, repo, url: nurl, commit: c, auth, hintRef: hint?.ref }, state), state };
      this.loading.set(key, job);
    }
    const isFirst = job.state.waiters === 0;
    job.state.waiters++;
    const { entry, source } = await job.promise;
    await this.checkAccessOrUnref(entry, nurl, auth);
    await this.evictChain;
    return this.lease(entry, isFirst ? source : "joined");
  }

  /** Ensures the caller may read the entry's repository; on failure drops the reference the caller holds. */
  private async checkAccessOrUnref(entry: Entry, url: string, auth: GitAuth | undefined): Promise<void> {
    try {
      await this.ensureAccess(entry.repo, url, auth);
    } catch (err) {
      entry.refs--;
      this.scheduleEvict();
      throw err;
    }
  }

  private async ensureAccess(repo: string, url: string, auth: GitAuth | undefined): Promise<void> {
    const known = this.access.get(repo);
    const fp = credentialFingerprint(auth);
    if (known?.public || (known?.verified.get(fp) ?? 0) > Date.now()) return;
    this.counters.accessChecks++;
    let asked = false;
    try {
      await listRefs(
        this.http,
        url,
        authCallbacks(auth, () => (asked = true)),
      );
    } catch (err) {
      throw toGitError(err, {
        what: `checking access to ${url}`,
        withAuth: auth !== undefined && auth.token !== "",
        secrets: secretsOf(auth),
      });
    }
    this.recordAccess(repo, fp, asked);
  }

  private recordAccess(repo: string, fingerprint: string, asked: boolean): void {
    const a = this.access.get(repo) ?? { public: false, verified: new Map<string, number>() };
    if (asked) a.verified.set(fingerprint, Date.now() + (this.opts.accessTtlMs ?? DEFAULT_ACCESS_TTL_MS));
    else a.public = true;
    this.access.set(repo, a);
  }

  /** Fetches and exports one tree; on success the entry is registered with one reference per waiter. */
  private async load(
    req: { key: string; repo: string; url: string; commit: string; auth?: GitAuth; hintRef?: string },
    state: { waiters: number },
  ): Promise<Loaded> {
    try {
      await this.removing.get(req.key);
      const { bytes, source } = await this.withRepoLock(req.repo, () => this.fetchAndExport(req));
      const entry: Entry = {
        key: req.key,
        repo: req.repo,
        commit: req.commit,
        dir: this.treeDir(req.repo, req.commit),
        bytes,
        refs: state.waiters,
        lastUsed: ++this.tick,
      };
      this.entries.set(req.key, entry);
      this.scheduleEvict();
      return { entry, source };
    } finally {
      this.loading.delete(req.key);
    }
  }

  private async fetchAndExport(req: {
    repo: string;
    url: string;
    commit: string;
    auth?: GitAuth;
    hintRef?: string;
  }): Promise<{ bytes: number; source: TreeLease["source"] }> {
    const dir = this.treeDir(req.repo, req.commit);
    const gitdir = join(this.opts.cacheDir, "repos", `${req.repo}.git`);
    const withAuth = req.auth !== undefined && req.auth.token !== "";
    let asked = false;
    const outcome = await fetchCommit(
      {
        gitdir,
        url: req.url,
        http: this.http,
        callbacks: authCallbacks(req.auth, () => (asked = true)),
        secrets: secretsOf(req.auth),
        withAuth,
        onFetch: () => {
          this.counters.fetches++;
          this.opts.onFetch?.();
        },
        fetchByCommitId: this.opts.fetchByCommitId ?? true,
        maxRepoBytes: this.opts.maxRepoBytes ?? DEFAULT_MAX_REPO_BYTES,
      },
      req.commit,
      req.hintRef,
    );
    // The fetch proved the caller's access (or that none is needed); with no request the first access check does.
    if (outcome.fetches > 0) this.recordAccess(req.repo, credentialFingerprint(req.auth), asked);
    this.opts.logger?.debug(
      { url: req.url, commit: req.commit, step: outcome.step, fetches: outcome.fetches },
      "git commit fetched",
    );
    const tmp = await mkdtemp(join(this.opts.cacheDir, "tmp", "export-"));
    try {
      const bytes = await exportTree(gitdir, req.commit, join(tmp, "tree"));
      this.counters.exports++;
      await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
      await rename(join(tmp, "tree"), dir);
      return { bytes, source: outcome.step };
    } catch (err) {
      throw toGitError(err, {
        what: `exporting commit ${req.commit} of ${req.url}`,
        withAuth,
        secrets: secretsOf(req.auth),
      });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  private lease(entry: Entry, source: TreeLease["source"]): TreeLease {
    entry.lastUsed = ++this.tick;
    let released = false;
    return {
      dir: entry.dir,
      commit: entry.commit,
      source,
      release: async (): Promise<void> => {
        if (released) return;
        released = true;
        entry.refs--;
        entry.lastUsed = ++this.tick;
        this.scheduleEvict();
        await this.evictChain;
      },
    };
  }

  private treeDir(repo: string, commit: string): string {
    return join(this.opts.cacheDir, "trees", repo, commit);
  }

  private overBound(): boolean {
    if (this.entries.size > this.maxEntries) return true;
    if (!Number.isFinite(this.maxBytes)) return false;
    let bytes = 0;
    for (const e of this.entries.values()) bytes += e.bytes;
    return bytes > this.maxBytes;
  }

  private scheduleEvict(): void {
    this.evictChain = this.evictChain
      .then(() => this.evict())
      .catch((err: unknown) => {
        this.opts.logger?.warn({ err }, "git cache eviction failed");
      });
  }

  /** Removes least-recently-used unleased trees until the cache is within its bounds (or only leased trees remain). */
  private async evict(): Promise<void> {
    while (this.overBound()) {
      let victim: Entry | undefined;
      for (const e of this.entries.values()) {
        if (e.refs === 0 && (!victim || e.lastUsed < victim.lastUsed)) victim = e;
      }
      if (!victim) return;
      this.entries.delete(victim.key);
      this.counters.evictions++;
      const removal = this.removeEntry(victim);
      this.removing.set(victim.key, removal);
      try {
        await removal;
      } finally {
        this.removing.delete(victim.key);
      }
    }
  }

  private async removeEntry(victim: Entry): Promise<void> {
    const trash = await mkdtemp(join(this.opts.cacheDir, "tmp", "evict-"));
    await rename(victim.dir, join(trash, "tree"));
    await rm(trash, { recursive: true, force: true });
    const repoInUse = (): boolean =>
      [...this.entries.values()].some((e) => e.repo === victim.repo) ||
      [...this.loading.keys()].some((k) => k.startsWith(`${victim.repo}/`));
    if (repoInUse()) return;
    await this.withRepoLock(victim.repo, async () => {
      if (repoInUse()) return;
      await rm(join(this.opts.cacheDir, "repos", `${victim.repo}.git`), { recursive: true, force: true });
      await rm(join(this.opts.cacheDir, "trees", victim.repo), { recursive: true, force: true });
    });
  }

  /** Runs `fn` after every earlier call for the same repository has settled. */
  private async withRepoLock<T>(repo: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.repoLocks.get(repo) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.repoLocks.set(repo, settled);
    try {
      return await run;
    } finally {
      if (this.repoLocks.get(repo) === settled) this.repoLocks.delete(repo);
    }
  }

  private init(): Promise<void> {
    this.ready ??= this.scanCache().catch((err: unknown) => {
      this.ready = undefined;
      throw new GitError("GitError", `git cache ${this.opts.cacheDir} is not usable`, { cause: err });
    });
    return this.ready;
  }

  /** Creates the layout, empties `tmp/` and adopts trees a previous process left (oldest first in the LRU order). */
  private async scanCache(): Promise<void> {
    const root = this.opts.cacheDir;
    await mkdir(root, { recursive: true, mode: 0o700 });
    await rm(join(root, "tmp"), { recursive: true, force: true });
    for (const d of ["tmp", "trees", "repos"]) await mkdir(join(root, d), { recursive: true, mode: 0o700 });
    const found: { entry: Entry; mtime: number }[] = [];
    for (const repo of await readdir(join(root, "trees"))) {
      if (!/^[0-9a-f]{64}$/.test(repo)) continue;
      for (const commit of await readdir(join(root, "trees", repo))) {
        if (!isCommitId(commit)) continue;
        const dir = this.treeDir(repo, commit);
        const st = await stat(dir);
        const entry: Entry = {
          key: `${repo}/${commit}`,
          repo,
          commit,
          dir,
          bytes: await treeBytes(dir),
          refs: 0,
          lastUsed: 0,
        };
        found.push({ entry, mtime: st.mtimeMs });
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) {
      f.entry.lastUsed = ++this.tick;
      this.entries.set(f.entry.key, f.entry);
    }
    if (this.overBound()) {
      this.scheduleEvict();
      await this.evictChain;
    }
  }
}

/** Bytes of regular files and symlink targets under `dir` (what {@link exportTree} counts). */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) {
    const p = join(dir, name);
    const st = await lstat(p);
    if (st.isDirectory()) total += await treeBytes(p);
    else total += st.size;
  }
  return total;
}

/**
 * Fetching one commit into a per-repository bare git directory.
 *
 * How a commit is fetched (first that yields the commit wins; each step is one upload-pack request):
 * 1. nothing, when the object store already has the commit (e.g. its exported tree was evicted);
 * 2. incremental: `want <commit>`, `have <last fetched commit>`, `deepen-since <its commit time>`, only when this
 *    repository was fetched before: the server sends only objects the last fetched tree lacks. If the commit is older
 *    than the last one this yields nothing and we go on;
 * 3. by id: `want <commit>`, `deepen 1` — exactly that commit and its tree. Fetching a ref sends the same `want`
 *    line (the ref's commit id), so this is the ref fetch when the ref still points there; when it moved on, git
 *    servers over smart HTTP (stateless RPC) still accept any commit reachable from a ref, and so do GitHub and GitLab;
 * 4. through the hinted ref, for servers that refuse commit ids they do not advertise (e.g. Azure Repos): fetch the
 *    ref at depth 1, then 64, then its whole history, until the commit is there.
 * Network and auth failures stop at once; any other failure moves on to the next step.
 */
import * as fs from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import * as git from "isomorphic-git";
import type { HttpClient } from "isomorphic-git";
import { GitError, toGitError } from "./errors.js";
import type { AuthCallbacks } from "./remote.js";

/** Local branch in the cache gitdir that points at the last fetched commit (the `have` of the next fetch). */
const LAST_REF = "refs/heads/nio-last-fetched";
const LAST_REF_SHORT = "nio-last-fetched";
const FULL_DEPTH = 2147483647;

export type FetchStep = "present" | "incremental" | "commit" | `ref@${number}`;

export interface FetchOutcome {
  /** The step that produced the commit. */
  step: FetchStep;
  /** Upload-pack requests made. */
  fetches: number;
}

export interface FetchCtx {
  gitdir: string;
  /** Normalised repository URL (no credentials). */
  url: string;
  http: HttpClient;
  callbacks: AuthCallbacks;
  secrets: readonly string[];
  withAuth: boolean;
  /** Called once per upload-pack request. */
  onFetch: () => void;
  /** Try step 3 (default true); false goes from 2 straight to 4. */
  fetchByCommitId: boolean;
  /** Wipe the object store before fetching when its packs exceed this many bytes or {@link MAX_PACKS} files. */
  maxRepoBytes: number;
}

const MAX_PACKS = 64;

interface Attempt {
  step: FetchStep;
  remoteRef: string;
  depth?: number;
  since?: Date;
}

/** Fetches `commit` into `ctx.gitdir` (created when missing). The caller serialises calls per gitdir. */
export async function fetchCommit(ctx: FetchCtx, commit: string, hintRef: string | undefined): Promise<FetchOutcome> {
  if (await repoOverLimit(ctx.gitdir, ctx.maxRepoBytes)) await rm(ctx.gitdir, { recursive: true, force: true });
  await ensureGitdir(ctx.gitdir, ctx.url);
  if (await hasCommit(ctx.gitdir, commit)) return { step: "present", fetches: 0 };
  const attempts = await planAttempts(ctx, commit, hintRef);
  let fetches = 0;
  let lastError: unknown;
  for (const a of attempts) {
    fetches++;
    ctx.onFetch();
    try {
      await git.fetch({
        fs,
        http: ctx.http,
        gitdir: ctx.gitdir,
        url: ctx.url,
        ...ctx.callbacks,
        ref: LAST_REF_SHORT,
        remoteRef: a.remoteRef,
        singleBranch: true,
        tags: false,
        ...(a.depth !== undefined ? { depth: a.depth } : {}),
        ...(a.since !== undefined ? { since: a.since } : {}),
      });
    } catch (err) {
      const e = toGitError(err, { what: fetchWhat(ctx, commit), withAuth: ctx.withAuth, secrets: ctx.secrets });
      if (e.reason === "AuthFailed" || e.reason === "Unreachable") throw e;
      lastError = e;
      continue;
    }
    if (await hasCommit(ctx.gitdir, commit)) {
      await git.writeRef({ fs, gitdir: ctx.gitdir, ref: LAST_REF, value: commit, force: true });
      return { step: a.step, fetches };
    }
  }
  const tried = attempts.map((a) => a.step).join(", ");
  throw new GitError(
    "RefNotFound",
    `commit ${commit} not found in ${ctx.url}${hintRef ? ` (ref ${hintRef})` : ""}: is it pushed? (tried: ${tried})`,
    lastError !== undefined ? { cause: lastError } : undefined,
  );
}

function fetchWhat(ctx: FetchCtx, commit: string): string {
  return `fetching commit ${commit} from ${ctx.url}`;
}

async function planAttempts(ctx: FetchCtx, commit: string, hintRef: string | undefined): Promise<Attempt[]> {
  const attempts: Attempt[] = [];
  const last = await lastFetched(ctx.gitdir);
  if (last !== undefined) attempts.push({ step: "incremental", remoteRef: commit, since: last });
  if (ctx.fetchByCommitId) attempts.push({ step: "commit", remoteRef: commit, depth: 1 });
  if (hintRef !== undefined && hintRef !== commit) {
    for (const depth of [1, 64, FULL_DEPTH]) attempts.push({ step: `ref@${depth}`, remoteRef: hintRef, depth });
  }
  return attempts;
}

/** The commit time of the last fetched commit, if this gitdir has one. */
async function lastFetched(gitdir: string): Promise<Date | undefined> {
  try {
    const oid = await git.resolveRef({ fs, gitdir, ref: LAST_REF });
    const { commit } = await git.readCommit({ fs, gitdir, oid });
    return new Date(commit.committer.timestamp * 1000);
  } catch {
    return undefined;
  }
}

export async function hasCommit(gitdir: string, commit: string): Promise<boolean> {
  try {
    await git.readCommit({ fs, gitdir, oid: commit });
    return true;
  } catch {
    return false;
  }
}

/** Creates the bare gitdir atomically (init in a temp dir, then rename) with `origin` set to the URL. */
async function ensureGitdir(gitdir: string, url: string): Promise<void> {
  if (await exists(join(gitdir, "config"))) return;
  await rm(gitdir, { recursive: true, force: true });
  await mkdir(dirname(gitdir), { recursive: true, mode: 0o700 });
  const tmp = await mkdtemp(`${gitdir}.tmp-`);
  try {
    await git.init({ fs, gitdir: tmp, bare: true, defaultBranch: "main" });
    await git.addRemote({ fs, gitdir: tmp, remote: "origin", url, force: true });
    await rename(tmp, gitdir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

async function repoOverLimit(gitdir: string, maxBytes: number): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(join(gitdir, "objects", "pack"));
  } catch {
    return false;
  }
  const packs = names.filter((n) => n.endsWith(".pack"));
  if (packs.length > MAX_PACKS) return true;
  let bytes = 0;
  for (const p of packs) bytes += (await stat(join(gitdir, "objects", "pack", p))).size;
  return bytes > maxBytes;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

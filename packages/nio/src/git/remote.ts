/**
 * The network side of the git source: an HTTP client with an inactivity timeout, token auth through isomorphic-git's
 * `onAuth` (never in the URL), the ref listing, and resolving a ref against it.
 */
import { createHash } from "node:crypto";
import * as git from "isomorphic-git";
import type { GitHttpRequest, GitHttpResponse, HttpClient, ServerRef } from "isomorphic-git";
import nodeHttp from "isomorphic-git/http/node";
import { GitError } from "./errors.js";
import { hasControlChars } from "./url.js";

/** Credentials for HTTP Basic auth. The token is the password; `username` defaults to {@link DEFAULT_GIT_USERNAME}. */
export interface GitAuth {
  username?: string;
  token: string;
}

/** Accepted by GitHub (app and personal tokens), Gitea and Forgejo; GitLab accepts any user name with a PAT. */
export const DEFAULT_GIT_USERNAME = "x-access-token";

export interface ResolvedRef {
  /** 40 lower-case hex digits. */
  commit: string;
  /** The full ref that was resolved (`refs/heads/main`, `refs/tags/v1`, `HEAD` when the server names no branch for
   * it), or the commit id itself when a commit id was given. */
  ref: string;
}

/** An HTTP client whose requests fail with `Request timed out` after `timeoutMs` without socket activity. */
export function httpClient(timeoutMs: number): HttpClient {
  return {
    request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const base = (req.fetchOptions ?? {}) as Record<string, unknown>;
      return nodeHttp.request({ ...req, fetchOptions: { ...base, timeout: timeoutMs } });
    },
  };
}

export interface AuthCallbacks {
  onAuth?: git.AuthCallback;
  onAuthFailure?: git.AuthFailureCallback;
}

/**
 * isomorphic-git auth callbacks: the credentials are handed over only when the server asks (401), as HTTP Basic; a
 * second 401 cancels (UserCanceledError, mapped to `AuthFailed`) instead of retrying in a loop.
 */
export function authCallbacks(auth: GitAuth | undefined, onAsked?: () => void): AuthCallbacks {
  if (!auth || auth.token === "") return {};
  const username = auth.username !== undefined && auth.username !== "" ? auth.username : DEFAULT_GIT_USERNAME;
  const token = auth.token;
  return {
    onAuth: () => {
      onAsked?.();
      return { username, password: token };
    },
    onAuthFailure: () => ({ cancel: true }),
  };
}

/** Identifies credentials in memory (sha256 of user and token); `anonymous` without a token. */
export function credentialFingerprint(auth: GitAuth | undefined): string {
  if (!auth || auth.token === "") return "anonymous";
  const username = auth.username !== undefined && auth.username !== "" ? auth.username : DEFAULT_GIT_USERNAME;
  return createHash("sha256").update(`${username}\0${auth.token}`, "utf8").digest("hex");
}

/** Strings that must never appear in a message: the token and its Basic-auth encodings. */
export function secretsOf(auth: GitAuth | undefined): string[] {
  if (!auth || auth.token === "") return [];
  const username = auth.username !== undefined && auth.username !== "" ? auth.username : DEFAULT_GIT_USERNAME;
  return [auth.token, Buffer.from(`${username}:${auth.token}`, "utf8").toString("base64")];
}

/** One ref listing (`GET info/refs?service=git-upload-pack`, protocol v1): no pack negotiation, no POST. */
export async function listRefs(http: HttpClient, url: string, callbacks: AuthCallbacks): Promise<ServerRef[]> {
  const refs = await git.listServerRefs({
    http,
    url,
    ...callbacks,
    protocolVersion: 1,
    symrefs: true,
    peelTags: true,
  });
  return refs.filter((r) => !/^0{40}$/.test(r.oid) && !r.ref.endsWith("^{}"));
}

const MAX_REF_LENGTH = 255;

/** A subset of `git check-ref-format`: enough to refuse anything that is not a plausible ref name. */
export function validateRefName(ref: string): void {
  const bad =
    ref.length === 0 ||
    ref.length > MAX_REF_LENGTH ||
    hasControlChars(ref) ||
    /[ ~^:?*[\\]/.test(ref) ||
    ref.includes("..") ||
    ref.includes("@{") ||
    ref.includes("//") ||
    ref.startsWith("/") ||
    ref.startsWith("-") ||
    ref.endsWith("/") ||
    ref.endsWith(".") ||
    ref.endsWith(".lock");
  if (bad) throw new GitError("InvalidSpec", `spec.ref ${JSON.stringify(ref.slice(0, 100))} is not a valid git ref`);
}

/** The full ref names a short name can mean, in git's order (`git rev-parse`: tags before branches). */
export function candidateRefs(ref: string): string[] {
  if (ref === "HEAD") return ["HEAD"];
  if (ref.startsWith("refs/")) return [ref];
  return [`refs/${ref}`, `refs/tags/${ref}`, `refs/heads/${ref}`];
}

function commitOf(r: ServerRef): string {
  return (r.peeled ?? r.oid).toLowerCase();
}

/** Resolves `ref` (undefined = the remote HEAD) against a listing; undefined when nothing matches. */
export function resolveInListing(refs: readonly ServerRef[], ref: string | undefined): ResolvedRef | undefined {
  const byName = new Map(refs.map((r) => [r.ref, r]));
  if (ref === undefined || ref === "HEAD") {
    const head = byName.get("HEAD");
    if (!head) return undefined;
    if (head.target) return { commit: commitOf(head), ref: head.target };
    // No symref capability: name the branch HEAD points at when there is exactly one obvious choice.
    const branch = refs.find((r) => r.ref.startsWith("refs/heads/") && r.oid === head.oid);
    return { commit: commitOf(head), ref: branch?.ref ?? "HEAD" };
  }
  for (const name of candidateRefs(ref)) {
    const hit = byName.get(name);
    if (hit) return { commit: commitOf(hit), ref: name };
  }
  return undefined;
}

/** A short, readable list of what the repository has, for a `RefNotFound` message. */
export function describeAvailable(refs: readonly ServerRef[], max = 8): string {
  const names = refs
    .map((r) => r.ref)
    .filter((n) => n.startsWith("refs/heads/") || n.startsWith("refs/tags/"))
    .sort((a, b) => Number(b.startsWith("refs/heads/")) - Number(a.startsWith("refs/heads/")) || a.localeCompare(b))
    .map((n) => n.replace(/^refs\/(heads|tags)\//, (_m, kind: string) => (kind === "tags" ? "tag " : "")));
  if (names.length === 0) return "the repository has no branches or tags";
  const shown = names.slice(0, max).join(", ");
  return names.length > max ? `available: ${shown}, … (${names.length} in all)` : `available: ${shown}`;
}

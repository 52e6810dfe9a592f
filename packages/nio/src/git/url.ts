import { createHash } from "node:crypto";
import { GitError } from "./errors.js";

const MAX_URL_LENGTH = 2048;

/**
 * Validates a repository URL and returns its normalised form (lower-case scheme and host, no default port, no
 * trailing slashes), which keys the cache. Only http(s) URLs without embedded credentials, query or fragment are
 * accepted: credentials come from `spec.credentialsRef`, never from the URL. Throws {@link GitError} `InvalidSpec`;
 * the message never repeats the credentials part of a refused URL.
 */
export function normaliseGitUrl(url: string): string {
  if (typeof url !== "string" || url.length === 0 || url.length > MAX_URL_LENGTH) {
    throw new GitError("InvalidSpec", `spec.gitRepo must be an http(s) URL of at most ${MAX_URL_LENGTH} characters`);
  }
  if (/\s/.test(url) || hasControlChars(url)) {
    throw new GitError("InvalidSpec", "spec.gitRepo must not contain whitespace or control characters");
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new GitError("InvalidSpec", "spec.gitRepo is not a valid URL");
  }
  if (u.username !== "" || u.password !== "") {
    throw new GitError(
      "InvalidSpec",
      `spec.gitRepo must not contain credentials (${u.protocol}//***@${u.host}${u.pathname}): put the token in the Secret named by spec.credentialsRef`,
    );
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw new GitError("InvalidSpec", `spec.gitRepo must be an http:// or https:// URL, not ${u.protocol}`);
  }
  if (u.search !== "" || u.hash !== "") {
    throw new GitError("InvalidSpec", "spec.gitRepo must not have a query string or fragment");
  }
  const path = u.pathname.replace(/\/+$/, "");
  if (path === "") throw new GitError("InvalidSpec", "spec.gitRepo must name a repository path");
  // URL already lower-cases scheme and host and drops the scheme's default port.
  return `${u.protocol}//${u.host}${path}`;
}

/** The cache key of a repository: sha256 of the normalised URL (hex). */
export function repoKey(normalisedUrl: string): string {
  return createHash("sha256").update(normalisedUrl, "utf8").digest("hex");
}

const COMMIT_RE = /^[0-9a-f]{40}$/;

export function isCommitId(ref: string): boolean {
  return COMMIT_RE.test(ref);
}

/** Validates a full commit id (40 lower-case hex digits; upper case is accepted and lowered). */
export function normaliseCommit(commit: string): string {
  const c = typeof commit === "string" ? commit.toLowerCase() : "";
  if (!COMMIT_RE.test(c)) {
    throw new GitError("InvalidSpec", `${JSON.stringify(commit)} is not a full 40-character commit id`);
  }
  return c;
}

/** True when `s` contains a C0 control character (including NUL) or DEL. */
export function hasControlChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

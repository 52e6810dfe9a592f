import { TransientError } from "@nio/runtime";

/**
 * Why a git operation failed. `InvalidSpec` only for input the API validation should already have refused (an URL
 * with embedded credentials, a non-HTTP scheme, a malformed ref or commit id).
 */
export type GitErrorReason = "GitError" | "RefNotFound" | "AuthFailed" | "Unreachable" | "InvalidSpec";

/**
 * A typed git failure. It is a {@link TransientError} (retried with backoff: a ref can appear, a server come back, a
 * Secret be fixed), so a controller may let it propagate as is; `reason` says what went wrong. Messages name the ref
 * and the repository URL and never contain credentials; `cause` is a redacted copy of the underlying error.
 */
export class GitError extends TransientError {
  override readonly name: string = "GitError";
  declare readonly reason: GitErrorReason;

  constructor(reason: GitErrorReason, message: string, options?: { cause?: unknown }) {
    super(reason, message, options);
  }
}

export function isGitError(err: unknown): err is GitError {
  return err instanceof GitError;
}

/** Replaces every occurrence of the secrets (and their Basic-auth encodings) in `text` with `***`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    if (s.length === 0) continue;
    out = out.split(s).join("***");
  }
  return out;
}

/** Error codes of a network failure before any HTTP response. */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "EPIPE",
  "ECONNABORTED",
]);

interface ErrorShape {
  code?: unknown;
  message?: unknown;
  data?: { statusCode?: unknown };
}

function shapeOf(err: unknown): ErrorShape {
  if (typeof err !== "object" || err === null) return {};
  return err;
}

/** The HTTP status of an isomorphic-git `HttpError`, if it is one. */
function httpStatus(err: unknown): number | undefined {
  const e = shapeOf(err);
  if (e.code !== "HttpError") return undefined;
  const status = e.data?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/** A copy of `err` that keeps its name, code and (redacted) message but none of its data or headers. */
export function redactedCause(err: unknown, secrets: readonly string[]): Error {
  const e = shapeOf(err);
  const message = typeof e.message === "string" ? e.message : String(err);
  const copy = new Error(redact(message, secrets));
  if (err instanceof Error) copy.name = err.name;
  if (typeof e.code === "string") Object.assign(copy, { code: e.code });
  const status = httpStatus(err);
  if (status !== undefined) Object.assign(copy, { statusCode: status });
  copy.stack = redact(copy.stack ?? "", secrets);
  return copy;
}

export interface ErrorContext {
  /** What was being done, e.g. `resolving ref "main" of https://host/repo.git`. Must not contain credentials. */
  what: string;
  /** Whether credentials were sent. */
  withAuth: boolean;
  secrets: readonly string[];
}

/** Maps an isomorphic-git / network error to a {@link GitError} with a reason and an actionable message. */
export function toGitError(err: unknown, ctx: ErrorContext): GitError {
  if (err instanceof GitError) return err;
  const cause = redactedCause(err, ctx.secrets);
  const e = shapeOf(err);
  const code = typeof e.code === "string" ? e.code : "";
  const status = httpStatus(err);
  if (code === "UserCanceledError" || status === 401 || status === 403) {
    const why = ctx.withAuth
      ? "the server rejected the credentials (check the token in spec.credentialsRef)"
      : "the server requires credentials (set spec.credentialsRef to a Secret with a `token`)";
    return new GitError("AuthFailed", `${ctx.what}: authentication failed: ${why}`, { cause });
  }
  if (UNREACHABLE_CODES.has(code) || cause.message === "Request timed out") {
    return new GitError("Unreachable", `${ctx.what}: git server unreachable (${code || cause.message})`, { cause });
  }
  if (status !== undefined && status >= 500) {
    return new GitError("Unreachable", `${ctx.what}: git server error (HTTP ${status})`, { cause });
  }
  if (status === 404) {
    return new GitError("GitError", `${ctx.what}: repository not found (HTTP 404)`, { cause });
  }
  if (status !== undefined) {
    return new GitError("GitError", `${ctx.what}: unexpected HTTP ${status} from the git server`, { cause });
  }
  if (code === "SmartHttpError") {
    return new GitError("GitError", `${ctx.what}: the URL is not a git smart-HTTP endpoint`, { cause });
  }
  return new GitError("GitError", `${ctx.what}: ${cause.message}`, { cause });
}

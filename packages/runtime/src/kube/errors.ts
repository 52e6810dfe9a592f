/** An error answered by the Kubernetes API server (a metav1.Status), or a transport failure reaching it. */
export class KubeApiError extends Error {
  override readonly name = "KubeApiError";
  constructor(
    message: string,
    /** HTTP status code; 0 for transport errors (connection refused, reset, timeout). */
    readonly statusCode: number,
    /** metav1.Status reason, e.g. NotFound, Conflict, AlreadyExists, Expired, Invalid. */
    readonly reason: string,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.statusCode === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof KubeApiError && err.statusCode === 409 && err.reason !== "AlreadyExists";
}

export function isAlreadyExists(err: unknown): boolean {
  return err instanceof KubeApiError && err.statusCode === 409 && err.reason === "AlreadyExists";
}

/** 410 Gone: the requested resourceVersion is too old (watch expired); the caller must relist. */
export function isGone(err: unknown): boolean {
  return err instanceof KubeApiError && (err.statusCode === 410 || err.reason === "Expired" || err.reason === "Gone");
}

export function isInvalid(err: unknown): boolean {
  return err instanceof KubeApiError && err.statusCode === 422;
}

export function isForbidden(err: unknown): boolean {
  return err instanceof KubeApiError && err.statusCode === 403;
}

/** Transport errors and server-side overload: worth retrying with backoff. */
export function isTransient(err: unknown): boolean {
  return (
    err instanceof KubeApiError &&
    (err.statusCode === 0 || err.statusCode === 429 || err.statusCode >= 500 || err.reason === "Timeout")
  );
}

import { KubeApiError } from "./kube/errors.js";

/**
 * Typed reconcile errors. Each kind decides retry, conditions, event type and log level in one place
 * ({@link classifyError}); a step throws one of them with a `reason` a user can act on (CamelCase, like a condition
 * reason) and keeps the underlying error as `cause`.
 *
 * - {@link StalledError}: retrying cannot help (invalid spec, missing required input). No requeue; `Stalled=True`.
 *   The object is looked at again when it changes (new generation) or a reconcile is requested.
 * - {@link WaitingError}: a precondition is not met yet (another object not ready). Requeue after a delay; not a
 *   failure, so no Warning event and no error metric.
 * - {@link TransientError}: something failed that may work next time (network, API server, remote host). Retried
 *   with the work queue's exponential backoff.
 */
export type ErrorKind = "stalled" | "waiting" | "transient";

/** The pino level a classified error is logged at. */
export type ErrorLogLevel = "debug" | "info" | "warn" | "error";

export type EventType = "Normal" | "Warning";

/** A condition reason: CamelCase, as metav1.Condition validation requires. */
const REASON_PATTERN = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;

export abstract class ReconcileError extends Error {
  abstract readonly kind: ErrorKind;
  /** CamelCase reason, used as condition reason, event reason and metric label. */
  readonly reason: string;

  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    if (!REASON_PATTERN.test(reason))
      throw new TypeError(`invalid error reason ${JSON.stringify(reason)}: use CamelCase`);
    this.reason = reason;
  }
}

/** Retrying cannot help until the object (or something it references) changes: `Stalled=True`, no requeue. */
export class StalledError extends ReconcileError {
  override readonly name: string = "StalledError";
  readonly kind = "stalled" as const;
}

/** Not a failure: a precondition is not met yet. Requeued after `requeueAfterMs`. */
export class WaitingError extends ReconcileError {
  override readonly name: string = "WaitingError";
  readonly kind = "waiting" as const;
  readonly requeueAfterMs: number;

  constructor(reason: string, message: string, requeueAfterMs: number, options?: { cause?: unknown }) {
    super(reason, message, options);
    if (!(requeueAfterMs >= 0) || !Number.isFinite(requeueAfterMs)) {
      throw new TypeError(`requeueAfterMs must be a finite number >= 0, got ${requeueAfterMs}`);
    }
    this.requeueAfterMs = requeueAfterMs;
  }
}

/** May work on the next attempt: retried with exponential backoff (or after `requeueAfterMs` when given). */
export class TransientError extends ReconcileError {
  override readonly name: string = "TransientError";
  readonly kind = "transient" as const;
  /** Optional fixed delay instead of the queue's backoff (e.g. a short one for an optimistic-lock conflict). */
  readonly requeueAfterMs?: number;

  constructor(reason: string, message: string, options?: { cause?: unknown; requeueAfterMs?: number }) {
    super(reason, message, options);
    if (options?.requeueAfterMs !== undefined) this.requeueAfterMs = options.requeueAfterMs;
  }
}

export interface ErrorClassification {
  kind: ErrorKind;
  reason: string;
  message: string;
  /** Fixed requeue delay; absent means "use the work queue's backoff" (transient) or "don't requeue" (stalled). */
  requeueAfterMs?: number;
  logLevel: ErrorLogLevel;
  eventType: EventType;
  /**
   * False for routine outcomes that should not reach users as an Event or a failure condition (e.g. an
   * optimistic-lock Conflict that the next attempt resolves, or a cancelled reconcile during shutdown).
   */
  notify: boolean;
}

/** Delay for retrying after a resourceVersion conflict: the informer usually has the newer object by then. */
export const CONFLICT_REQUEUE_MS = 250;

const MAX_CAUSE_DEPTH = 8;

/**
 * Maps any thrown value to what the controller should do with it. Pure; the single place that decides retry,
 * log level and event type. Typed errors anywhere in the `cause` chain win over the outer error's type, but the
 * message is always the outer one (it usually carries the most context).
 */
export function classifyError(err: unknown): ErrorClassification {
  const message = messageOf(err);
  const typed = findInChain(err);
  if (typed instanceof ReconcileError) return { ...classifyReconcileError(typed), message };
  if (typed instanceof KubeApiError) return { ...classifyKubeError(typed), message };
  if (isAbort(err)) {
    return { kind: "transient", reason: "Canceled", message, logLevel: "debug", eventType: "Normal", notify: false };
  }
  return {
    kind: "transient",
    reason: "UnexpectedError",
    message,
    logLevel: "error",
    eventType: "Warning",
    notify: true,
  };
}

type Classified = Omit<ErrorClassification, "message">;

function classifyReconcileError(err: ReconcileError): Classified {
  if (err instanceof StalledError) {
    return { kind: "stalled", reason: err.reason, logLevel: "error", eventType: "Warning", notify: true };
  }
  if (err instanceof WaitingError) {
    return {
      kind: "waiting",
      reason: err.reason,
      requeueAfterMs: err.requeueAfterMs,
      logLevel: "info",
      eventType: "Normal",
      notify: true,
    };
  }
  const requeueAfterMs = err instanceof TransientError ? err.requeueAfterMs : undefined;
  return {
    kind: "transient",
    reason: err.reason,
    ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}),
    logLevel: "warn",
    eventType: "Warning",
    notify: true,
  };
}

const transientByStatus: Record<number, string> = {
  0: "ApiServerUnreachable",
  403: "Forbidden",
  404: "NotFound",
  410: "Expired",
  429: "TooManyRequests",
};

function classifyKubeError(err: KubeApiError): Classified {
  const code = err.statusCode;
  if (code === 409 && err.reason !== "AlreadyExists") {
    return {
      kind: "transient",
      reason: "Conflict",
      requeueAfterMs: CONFLICT_REQUEUE_MS,
      logLevel: "debug",
      eventType: "Normal",
      notify: false,
    };
  }
  if (code === 422)
    return { kind: "stalled", reason: "Invalid", logLevel: "error", eventType: "Warning", notify: true };
  const reason = transientByStatus[code] ?? kubeReason(err);
  // Forbidden means missing RBAC: a person must act, but retrying picks the fix up without a restart.
  const logLevel: ErrorLogLevel = code === 0 || code === 429 || code >= 500 || code === 404 ? "warn" : "error";
  return { kind: "transient", reason, logLevel, eventType: "Warning", notify: true };
}

function kubeReason(err: KubeApiError): string {
  if (REASON_PATTERN.test(err.reason) && !/^HTTP\d+$/.test(err.reason)) return err.reason;
  return err.statusCode >= 500 ? "ApiServerError" : "ApiRequestFailed";
}

function findInChain(err: unknown): unknown {
  let cur: unknown = err;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && cur instanceof Error; depth++) {
    if (cur instanceof ReconcileError || cur instanceof KubeApiError) return cur;
    cur = cur.cause;
  }
  return undefined;
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === "AbortError";
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

/**
 * metav1.Condition helpers with kstatus semantics (`Ready`, `Reconciling`, `Stalled`).
 *
 * All functions are pure: they return a new list and never modify the one passed in, so a status can be diffed
 * against its snapshot afterwards. Setting a condition to what it already is returns an equal list, so an idle
 * reconcile produces an empty status diff and no write.
 */

export type ConditionStatus = "True" | "False" | "Unknown";

export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  /** RFC 3339, seconds precision (as metav1.Time serialises). Changes only when `status` changes. */
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/** What a caller decides; the helpers add `lastTransitionTime` and `observedGeneration`. */
export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

export interface ConditionContext {
  /** `metadata.generation` of the object the status describes; stamped as `observedGeneration`. */
  generation?: number;
  /** Current time (a `Clock` reading); used only when a condition's status changes. */
  now: Date | string;
}

export const READY = "Ready";
export const RECONCILING = "Reconciling";
export const STALLED = "Stalled";

/** RFC 3339 at seconds precision, the wire format of metav1.Time. */
export function formatTime(t: Date | string): string {
  const d = typeof t === "string" ? new Date(t) : t;
  if (Number.isNaN(d.getTime())) throw new RangeError(`invalid time ${String(t)}`);
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function getCondition(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}

export function isTrue(list: readonly Condition[] | undefined, type: string): boolean {
  return getCondition(list, type)?.status === "True";
}

export function isFalse(list: readonly Condition[] | undefined, type: string): boolean {
  return getCondition(list, type)?.status === "False";
}

/**
 * Sets one condition (metav1 semantics, as `meta.SetStatusCondition`): `lastTransitionTime` moves only when the
 * status changes; reason, message and `observedGeneration` are updated in place. New conditions are appended;
 * the order of the others is kept.
 */
export function setCondition(
  list: readonly Condition[] | undefined,
  input: ConditionInput,
  ctx: ConditionContext,
): Condition[] {
  const current = list ?? [];
  const existing = getCondition(current, input.type);
  const observedGeneration = ctx.generation ?? existing?.observedGeneration;
  const next: Condition = {
    type: input.type,
    status: input.status,
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
    lastTransitionTime:
      existing && existing.status === input.status ? existing.lastTransitionTime : formatTime(ctx.now),
    reason: input.reason,
    message: input.message,
  };
  if (!existing) return [...current, next];
  return current.map((c) => (c.type === input.type ? next : c));
}

export function removeCondition(list: readonly Condition[] | undefined, type: string): Condition[] {
  return (list ?? []).filter((c) => c.type !== type);
}

/**
 * Work is in progress (e.g. a new generation is being applied): `Reconciling=True`, `Ready=Unknown` with the same
 * reason and message, and `Stalled` removed (we are making progress again).
 */
export function markReconciling(
  list: readonly Condition[] | undefined,
  reason: string,
  message: string,
  ctx: ConditionContext,
): Condition[] {
  let next = setCondition(list, { type: RECONCILING, status: "True", reason, message }, ctx);
  next = setCondition(next, { type: READY, status: "Unknown", reason, message }, ctx);
  return removeCondition(next, STALLED);
}

/** Retrying cannot help: `Stalled=True`, `Ready=False` with the same reason and message, `Reconciling` removed. */
export function markStalled(
  list: readonly Condition[] | undefined,
  reason: string,
  message: string,
  ctx: ConditionContext,
): Condition[] {
  let next = setCondition(list, { type: STALLED, status: "True", reason, message }, ctx);
  next = setCondition(next, { type: READY, status: "False", reason, message }, ctx);
  return removeCondition(next, RECONCILING);
}

/** Done: `Ready=True`, `Reconciling` and `Stalled` removed. */
/** `Suspended=True` with `message` while `suspended`, else no Suspended condition (the same for every kind). */
export function markSuspended(
  list: readonly Condition[] | undefined,
  suspended: boolean,
  message: string,
  ctx: ConditionContext,
): Condition[] {
  if (!suspended) return removeCondition(list, "Suspended");
  return setCondition(list, { type: "Suspended", status: "True", reason: "Suspended", message }, ctx);
}

export function markReady(
  list: readonly Condition[] | undefined,
  reason: string,
  message: string,
  ctx: ConditionContext,
): Condition[] {
  const next = setCondition(list, { type: READY, status: "True", reason, message }, ctx);
  return removeCondition(removeCondition(next, RECONCILING), STALLED);
}

/**
 * A failure that will be retried (transient error) or a wait: `Ready=False` (or Unknown) with the reason.
 * `Reconciling` is left as it is: kstatus reports the object as still in progress while retries continue.
 */
export function markNotReady(
  list: readonly Condition[] | undefined,
  reason: string,
  message: string,
  ctx: ConditionContext,
  status: "False" | "Unknown" = "False",
): Condition[] {
  const next = setCondition(list, { type: READY, status, reason, message }, ctx);
  return removeCondition(next, STALLED);
}

export interface SummarizeOptions {
  /** Owned conditions with normal-true polarity (e.g. `Reachable`): Ready needs them True. */
  positive?: readonly string[];
  /** Reason and message of `Ready=True` when nothing is wrong. */
  success?: { reason: string; message: string };
}

/**
 * Derives the `Ready` condition from the others, once, in a fixed order (as Flux's `summarize`):
 * 1. `Stalled=True` → `Ready=False` with its reason;
 * 2. the first owned negative-polarity condition that is True (e.g. `FetchFailed`, `ApplyFailed`) → `Ready=False`;
 * 3. the first owned positive-polarity condition that is not True → `Ready=False`/`Unknown`;
 * 4. `Reconciling=True` → `Ready=Unknown` with its reason;
 * 5. otherwise `Ready=True` with `opts.success` (default reason `Succeeded`).
 * Returns the input for {@link setCondition}.
 */
export function summarizeReady(
  list: readonly Condition[] | undefined,
  ownedNegativeTypes: readonly string[],
  opts: SummarizeOptions = {},
): ConditionInput {
  const from = (c: Condition, status: ConditionStatus): ConditionInput => ({
    type: READY,
    status,
    reason: c.reason,
    message: c.message,
  });
  const stalled = getCondition(list, STALLED);
  if (stalled?.status === "True") return from(stalled, "False");
  for (const type of ownedNegativeTypes) {
    const c = getCondition(list, type);
    if (c?.status === "True") return from(c, "False");
  }
  for (const type of opts.positive ?? []) {
    const c = getCondition(list, type);
    if (!c) return { type: READY, status: "Unknown", reason: "Progressing", message: `${type} not yet determined` };
    if (c.status !== "True") return from(c, c.status);
  }
  const reconciling = getCondition(list, RECONCILING);
  if (reconciling?.status === "True") return from(reconciling, "Unknown");
  const success = opts.success ?? { reason: "Succeeded", message: "Reconciliation succeeded" };
  return { type: READY, status: "True", ...success };
}

/** The parts of an object that {@link checkKstatusInvariants} looks at. */
export interface ConditionedObject {
  metadata: { generation?: number; name?: string };
  status?: { observedGeneration?: number; conditions?: readonly Condition[] } | null;
}

const REASON_PATTERN = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
const TYPE_PATTERN =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const STATUSES: ReadonlySet<string> = new Set(["True", "False", "Unknown"]);
const MAX_MESSAGE = 32768;

/**
 * Status invariants every integration test checks after every step (kstatus + metav1.Condition rules). Returns
 * the violations; empty means fine.
 */
export function checkKstatusInvariants(obj: ConditionedObject): string[] {
  const problems: string[] = [];
  const generation = obj.metadata.generation;
  const status = obj.status ?? undefined;
  const conditions = status?.conditions ?? [];
  if (generation !== undefined && status?.observedGeneration !== undefined && status.observedGeneration > generation) {
    problems.push(`status.observedGeneration ${status.observedGeneration} > metadata.generation ${generation}`);
  }
  const seen = new Set<string>();
  for (const c of conditions) {
    if (seen.has(c.type)) problems.push(`condition ${c.type} appears more than once`);
    seen.add(c.type);
    problems.push(...checkCondition(c, generation));
  }
  problems.push(...checkKstatusCombinations(conditions));
  return problems;
}

function checkCondition(c: Condition, generation: number | undefined): string[] {
  const problems: string[] = [];
  const label = `condition ${c.type || "<no type>"}`;
  if (!TYPE_PATTERN.test(c.type ?? "")) problems.push(`${label}: invalid type`);
  if (!STATUSES.has(c.status)) problems.push(`${label}: status ${String(c.status)} is not True, False or Unknown`);
  if (!c.reason) problems.push(`${label}: no reason`);
  else if (!REASON_PATTERN.test(c.reason))
    problems.push(`${label}: reason ${JSON.stringify(c.reason)} is not CamelCase`);
  if (typeof c.message !== "string") problems.push(`${label}: no message`);
  else if (c.message.length > MAX_MESSAGE) problems.push(`${label}: message longer than ${MAX_MESSAGE}`);
  if (!c.lastTransitionTime || Number.isNaN(Date.parse(c.lastTransitionTime))) {
    problems.push(`${label}: no valid lastTransitionTime`);
  }
  if (generation !== undefined && c.observedGeneration !== undefined && c.observedGeneration > generation) {
    problems.push(`${label}: observedGeneration ${c.observedGeneration} > metadata.generation ${generation}`);
  }
  return problems;
}

function checkKstatusCombinations(conditions: readonly Condition[]): string[] {
  const problems: string[] = [];
  const ready = isTrue(conditions, READY);
  const stalled = isTrue(conditions, STALLED);
  const reconciling = isTrue(conditions, RECONCILING);
  if (ready && stalled) problems.push("Ready=True together with Stalled=True");
  if (ready && reconciling) problems.push("Ready=True together with Reconciling=True");
  if (stalled && reconciling) problems.push("Stalled=True together with Reconciling=True");
  // kstatus "abnormal-true" conditions: they exist only while True, so a reader never has to tell False from absent.
  for (const type of [STALLED, RECONCILING]) {
    const c = getCondition(conditions, type);
    if (c && c.status !== "True") problems.push(`${type}=${c.status} should be removed instead`);
  }
  return problems;
}

import { ConditionType, Reason, type NixosConfigurationStatus } from "@nio/api";
import {
  markNotReady,
  markSuspended,
  markReady,
  markReconciling,
  markStalled,
  removeCondition,
  type Condition,
  type ConditionContext,
} from "@nio/runtime";

/** Pure status setters of the NixosConfiguration controller: conditions change here and nowhere else. */

type S = NixosConfigurationStatus;
const conds = (s: S): Condition[] => s.conditions ?? [];

export function setSuspended(s: S, ctx: ConditionContext, suspended: boolean): void {
  s.conditions = markSuspended(s.conditions, suspended, "spec.suspend is true: nothing is applied", ctx);
}

export function setApplying(s: S, ctx: ConditionContext, commit: string, machine: string, now: string): void {
  s.lastAttempt = {
    commit,
    started: now,
    result: "InProgress",
    message: `applying ${commit.slice(0, 12)} to ${machine}`,
  };
  s.conditions = markReconciling(
    conds(s),
    Reason.Progressing,
    `applying commit ${commit.slice(0, 12)} to Machine ${machine}`,
    ctx,
  );
}

export function setApplied(
  s: S,
  ctx: ConditionContext,
  a: { commit: string; digest: string; now: string; machine: string; logTail: string; installed: boolean },
): void {
  s.appliedCommit = a.commit;
  s.appliedDigest = a.digest;
  s.lastAppliedTime = a.now;
  s.targetMachine = a.machine;
  if (a.installed) s.fullInstallCompleted = true;
  s.lastAttempt = {
    ...s.lastAttempt,
    commit: a.commit,
    finished: a.now,
    result: "Succeeded",
    message: `applied ${a.commit.slice(0, 12)} to ${a.machine}`,
    logTail: a.logTail,
  };
  s.conditions = markReady(
    conds(s),
    Reason.Succeeded,
    `commit ${a.commit.slice(0, 12)} is applied to Machine ${a.machine}`,
    ctx,
  );
}

export function setUpToDate(s: S, ctx: ConditionContext, machine: string): void {
  s.conditions = markReady(
    conds(s),
    Reason.Succeeded,
    `commit ${(s.appliedCommit ?? "").slice(0, 12)} is applied to Machine ${machine}`,
    ctx,
  );
}

/** A failed attempt: keeps the last good appliedCommit. */
export function setFailed(
  s: S,
  ctx: ConditionContext,
  f: { commit?: string; reason: string; message: string; logTail?: string; now: string; result?: "Failed" | "Unknown" },
): void {
  s.lastAttempt = {
    ...s.lastAttempt,
    ...(f.commit ? { commit: f.commit } : {}),
    finished: f.now,
    result: f.result ?? "Failed",
    message: f.message,
    ...(f.logTail !== undefined ? { logTail: f.logTail } : {}),
  };
  // A recorded failure is not work in progress (kstatus): the retry, if any, shows in the Ready message.
  s.conditions = removeCondition(markNotReady(conds(s), f.reason, f.message, ctx), ConditionType.Reconciling);
}

/** Waiting on something outside this object (Machine, Secret, host key): not a failure of ours. */
export function setWaiting(s: S, ctx: ConditionContext, reason: string, message: string): void {
  s.conditions = markNotReady(conds(s), reason, message, ctx, "False");
}

export function setStalled(s: S, ctx: ConditionContext, reason: string, message: string): void {
  s.conditions = markStalled(conds(s), reason, message, ctx);
}

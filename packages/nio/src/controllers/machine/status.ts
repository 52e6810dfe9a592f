import { ConditionType, Reason, type MachineStatus } from "@nio/api";
import { markNotReady, markReady, setCondition, type Condition, type ConditionContext } from "@nio/runtime";

/** Pure status setters of the Machine controller: conditions are set here and nowhere else. */

export function setReachable(
  s: MachineStatus,
  ctx: ConditionContext & { now: string },
  reachable: boolean,
  reason: string,
  msg: string,
): void {
  s.discoverable = reachable;
  s.lastDiscoveryTime = ctx.now;
  s.conditions = setCondition(
    conds(s),
    { type: ConditionType.Reachable, status: reachable ? "True" : "False", reason, message: msg },
    ctx,
  );
}

export function setHostKeyVerified(
  s: MachineStatus,
  ctx: ConditionContext,
  ok: boolean,
  reason: string,
  msg: string,
): void {
  s.conditions = setCondition(
    conds(s),
    { type: ConditionType.HostKeyVerified, status: ok ? "True" : "False", reason, message: msg },
    ctx,
  );
}

/** Ready = reachable with a verified host key. */
export function summarizeMachine(s: MachineStatus, ctx: ConditionContext): void {
  const list = conds(s);
  const reachable = list.find((c) => c.type === ConditionType.Reachable);
  const hostKey = list.find((c) => c.type === ConditionType.HostKeyVerified);
  if (hostKey?.status === "False") {
    s.conditions = markNotReady(list, hostKey.reason, hostKey.message, ctx);
  } else if (reachable?.status !== "True") {
    s.conditions = markNotReady(
      list,
      reachable?.reason ?? Reason.Progressing,
      reachable?.message ?? "not contacted yet",
      ctx,
    );
  } else {
    s.conditions = markReady(list, Reason.Succeeded, "reachable over SSH with a verified host key", ctx);
  }
}

function conds(s: MachineStatus): Condition[] {
  return s.conditions ?? [];
}

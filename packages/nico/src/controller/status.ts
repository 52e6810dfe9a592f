import { ConditionType, Reason, type ClusterPhase, type KubernetesClusterStatus } from "@nio/api";
import {
  markNotReady,
  markSuspended,
  markReady,
  markReconciling,
  markStalled,
  removeCondition,
  setCondition,
  type Condition,
  type ConditionContext,
} from "@nio/runtime";

/** Pure status setters of the KubernetesCluster controller: conditions change here and nowhere else. */

type S = KubernetesClusterStatus;
const conds = (s: S): Condition[] => s.conditions ?? [];

export function setSuspended(s: S, ctx: ConditionContext, suspended: boolean): void {
  s.conditions = markSuspended(
    s.conditions,
    suspended,
    "spec.suspend is true: no machine is claimed and no configuration changes",
    ctx,
  );
}

export function setStalled(s: S, ctx: ConditionContext, reason: string, message: string): void {
  s.phase = "Failed";
  s.conditions = markStalled(conds(s), reason, message, ctx);
}

export function setClaims(s: S, ctx: ConditionContext, claimed: number, shortages: string[]): void {
  s.conditions = setCondition(
    conds(s),
    shortages.length
      ? {
          type: ConditionType.MachinesClaimed,
          status: "False",
          reason: Reason.WaitingForMachines,
          message: shortages.join("; "),
        }
      : {
          type: ConditionType.MachinesClaimed,
          status: "True",
          reason: Reason.Succeeded,
          message: `${claimed} machine${claimed === 1 ? "" : "s"} claimed`,
        },
    ctx,
  );
}

/** Waiting for machines before anything is provisioned: Pending, not a failure. */
export function setPending(s: S, ctx: ConditionContext, message: string): void {
  s.phase = "Pending";
  s.conditions = markReconciling(conds(s), Reason.WaitingForMachines, message, ctx);
  s.conditions = setCondition(
    s.conditions,
    { type: ConditionType.ControlPlaneReady, status: "False", reason: Reason.WaitingForMachines, message },
    ctx,
  );
}

export interface Progress {
  cpReady: number;
  cpTotal: number;
  workersReady: number;
  workersTotal: number;
  /** The rollout's next step, e.g. "control-plane node cp-02". */
  waitingFor?: string;
  /** A node whose configuration failed (reason + message from its Ready condition). */
  failure?: { node: string; reason: string; message: string };
  workerShortage?: string;
  kubeconfigProblem?: string;
  cleaningUp?: string[];
}

export function setProgress(s: S, ctx: ConditionContext, p: Progress): ClusterPhase {
  s.controlPlaneReady = `${p.cpReady}/${p.cpTotal}`;
  s.dataPlaneReady = `${p.workersReady}/${p.workersTotal}`;
  const cpDone = p.cpReady === p.cpTotal;
  s.conditions = setCondition(
    conds(s),
    cpDone
      ? {
          type: ConditionType.ControlPlaneReady,
          status: "True",
          reason: Reason.Succeeded,
          message: `${s.controlPlaneReady} ready`,
        }
      : {
          type: ConditionType.ControlPlaneReady,
          status: "False",
          reason: Reason.NodesNotReady,
          message: `${s.controlPlaneReady} ready${p.waitingFor ? `; waiting for ${p.waitingFor}` : ""}`,
        },
    ctx,
  );
  const dpDone = p.workersReady === p.workersTotal;
  s.conditions = setCondition(
    s.conditions,
    dpDone
      ? {
          type: ConditionType.DataPlaneReady,
          status: "True",
          reason: Reason.Succeeded,
          message: `${s.dataPlaneReady} ready`,
        }
      : {
          type: ConditionType.DataPlaneReady,
          status: "False",
          reason: cpDone ? Reason.NodesNotReady : Reason.WaitingForControlPlane,
          message: `${s.dataPlaneReady} ready${cpDone ? "" : "; workers wait for the control plane"}`,
        },
    ctx,
  );
  return summarize(s, ctx, p, cpDone && dpDone);
}

function summarize(s: S, ctx: ConditionContext, p: Progress, allReady: boolean): ClusterPhase {
  if (p.failure) {
    const message = `node ${p.failure.node}: ${p.failure.message}`;
    s.phase = s.initialized ? "Degraded" : "Provisioning";
    s.conditions = removeCondition(markNotReady(conds(s), p.failure.reason, message, ctx), ConditionType.Reconciling);
    return s.phase;
  }
  if (allReady && !p.workerShortage && !p.kubeconfigProblem && !p.cleaningUp?.length) {
    s.phase = "Ready";
    s.conditions = markReady(conds(s), Reason.Succeeded, `all ${p.cpTotal + p.workersTotal} nodes ready`, ctx);
    return s.phase;
  }
  const [reason, message] = pendingWork(s, p, allReady);
  s.phase = allReady && p.workerShortage && !p.cleaningUp?.length ? "Degraded" : "Provisioning";
  s.conditions = markReconciling(conds(s), reason, message, ctx);
  return s.phase;
}

/** Reason and message of the step the cluster is waiting on. */
function pendingWork(s: S, p: Progress, allReady: boolean): [string, string] {
  if (!allReady) {
    const waiting = p.waitingFor ? `; waiting for ${p.waitingFor}` : "";
    return [
      Reason.Progressing,
      `${s.controlPlaneReady} control-plane and ${s.dataPlaneReady} worker nodes ready${waiting}`,
    ];
  }
  if (p.cleaningUp?.length) return [Reason.CleaningUp, `removing nodes ${p.cleaningUp.join(", ")} (applying #minimal)`];
  if (p.workerShortage) return [Reason.WaitingForMachines, p.workerShortage];
  return [Reason.KubeconfigUnavailable, p.kubeconfigProblem ?? "reading the admin kubeconfig"];
}

export function setDeleting(s: S, ctx: ConditionContext, message: string): void {
  s.phase = "Deleting";
  s.conditions = markReconciling(conds(s), Reason.Deleting, message, ctx);
}

import { ANNOTATIONS, FINALIZERS, Reason } from "@nio/api";
import {
  WaitingError,
  classifyError,
  removeFinalizer,
  type ReconcileContext,
  type ReconcileResult,
} from "@nio/runtime";
import { executeApply } from "../../apply/executor.js";
import { retryDelayMs } from "../../config.js";
import { expectedHostKey, machineTarget, usesSudo } from "../../machine-access.js";
import { nixosConfigurations, type MachineObject } from "../../resources.js";
import { gitAuth, patchMachineStatus, resolveCommit, type ConfigControllerDeps, type Scope } from "./controller.js";
import { computeDesired, redactSecrets } from "./desired.js";
import { setFailed, setWaiting } from "./status.js";

/**
 * Deletion: apply `onRemoveFlake` (same pipeline, without host files) when the machine runs this configuration,
 * clear the Machine's status fields that name it, then release the finalizer. An unreachable machine keeps the
 * finalizer with a clear condition; `nio.homystack.com/skip-cleanup: "true"` releases without cleanup; a missing
 * Machine never blocks deletion.
 */
export async function reconcileDelete(
  deps: ConfigControllerDeps,
  s: Scope,
  ctx: ReconcileContext,
): Promise<ReconcileResult> {
  if (!s.cfg.metadata.finalizers?.includes(FINALIZERS.nio)) return {};
  const ns = s.cfg.metadata.namespace ?? "";
  const machine = deps.machines.get(`${ns}/${s.cfg.spec.machineRef.name}`);
  const skip = s.cfg.metadata.annotations?.[ANNOTATIONS.skipCleanup] === "true";
  const runsThis = machine?.status?.appliedConfiguration === s.cfg.metadata.name;
  if (machine && runsThis && s.cfg.spec.onRemoveFlake && !skip) {
    const done = await applyRemoval(deps, s, machine, ctx);
    if (!done.ok) return { requeueAfterMs: done.retryMs };
  } else if (machine && runsThis) {
    await clearMachine(deps, s, machine, undefined);
  }
  deps.failures.delete(s.key);
  deps.applied.delete(s.key);
  await removeFinalizer(deps.kube, nixosConfigurations, s.cfg, FINALIZERS.nio);
  deps.recorder.event(s.cfg, "Normal", Reason.Deleting, "released");
  return {};
}

async function applyRemoval(
  deps: ConfigControllerDeps,
  s: Scope,
  machine: MachineObject,
  ctx: ReconcileContext,
): Promise<{ ok: true } | { ok: false; retryMs: number }> {
  const flake = s.cfg.spec.onRemoveFlake ?? "";
  const machineName = machine.metadata.name ?? "";
  const releaseMachine = await deps.machineLocks.acquire(`${machine.metadata.namespace}/${machineName}`);
  let secretValues: string[] = [];
  try {
    const commit = await resolveCommit(deps, s, false).catch((err: unknown) => {
      if (s.status.appliedCommit) return s.status.appliedCommit;
      throw err;
    });
    const desired = computeDesired(s.cfg.spec, flake, commit, {
      namespace: s.cfg.metadata.namespace ?? "",
      machine,
      secrets: deps.secrets,
      facts: deps.facts,
    });
    secretValues = desired.secretValues;
    const outcome = await executeApply(deps, {
      mode: "switch",
      metricMode: "remove",
      target: await machineTarget(machine, deps.secrets, deps.config),
      expectedHostKey: expectedHostKey(machine),
      sudo: usesSudo(machine),
      git: { url: s.cfg.spec.gitRepo, auth: gitAuth(deps, s.cfg), ref: s.cfg.spec.ref },
      desired,
      writeHostFiles: false,
      signal: ctx.signal,
      logger: ctx.logger,
    });
    await clearMachine(deps, s, machine, outcome.currentSystem);
    deps.recorder.event(s.cfg, "Normal", "Removed", `applied ${flake} to Machine ${machineName} before deletion`);
    return { ok: true };
  } catch (err) {
    if (err instanceof WaitingError) {
      setWaiting(s.status, s.cond, err.reason, err.message);
      return { ok: false, retryMs: err.requeueAfterMs ?? 10_000 };
    }
    const c = classifyError(err);
    const message =
      `cannot apply onRemoveFlake ${flake} to Machine ${machineName}: ${redactSecrets(c.message, secretValues)}; ` +
      `the configuration is kept until it succeeds (to release it without cleanup: kubectl annotate nixosconfiguration ${s.cfg.metadata.name} ${ANNOTATIONS.skipCleanup}=true)`;
    setFailed(s.status, s.cond, { reason: Reason.CleanupFailed, message, now: s.now });
    deps.recorder.event(s.cfg, "Warning", Reason.CleanupFailed, message);
    const attempt = (deps.failures.get(s.key)?.count ?? 0) + 1;
    deps.failures.set(s.key, { digest: "delete", count: attempt, budget: 0 });
    return { ok: false, retryMs: retryDelayMs(deps.config, Math.min(attempt - 1, 10)) };
  } finally {
    releaseMachine();
  }
}

/** Clears the Machine's record of this configuration (only if it still names it). */
async function clearMachine(
  deps: ConfigControllerDeps,
  s: Scope,
  machine: MachineObject,
  currentSystem: string | undefined,
): Promise<void> {
  if (machine.status?.appliedConfiguration !== s.cfg.metadata.name) return;
  await patchMachineStatus(deps, machine, {
    hasConfiguration: false,
    appliedConfiguration: null,
    appliedCommit: null,
    lastAppliedTime: null,
    ...(currentSystem ? { currentSystem } : {}),
  });
}

import { ConditionType, Reason, type NodeRole } from "@nio/api";
import type { ConfigObject } from "./resources.js";
import { DESIRED_HASH_ANNOTATION } from "./emit.js";

/** One node as the rollout sees it. Nodes come in rollout order: control plane by index, then workers. */
export interface RolloutNode {
  name: string;
  role: NodeRole;
  /** Digest of the spec NICO wants the node to have now (without suspend). */
  desiredHash: string;
  /** The commit the node must have applied. */
  commit: string;
  /** The node's configuration as it is now, if it exists. */
  current?: ConfigObject;
}

export interface RolloutDecision {
  /** Per node name: whether its configuration is emitted suspended (not allowed to apply yet). */
  suspend: Map<string, boolean>;
  /** Per node name: applied the desired spec and Ready at that generation. */
  upToDate: Map<string, boolean>;
  /** Why the rollout holds, for conditions (undefined when nothing waits). */
  waitingFor?: string;
}

/** Ready=True observed at the configuration's current generation (not a stale verdict about an older spec). */
export function readyAtGeneration(c: ConfigObject | undefined): boolean {
  const ready = c?.status?.conditions?.find((x) => x.type === ConditionType.Ready);
  return ready?.status === "True" && ready.observedGeneration === c?.metadata.generation;
}

/** Reasons of a NixosConfiguration's Ready=False that are progress, not failure. */
const NOT_FAILURES = new Set<string>([Reason.Suspended, Reason.Progressing]);

/** The node's configuration failed its current spec (Ready=False at its generation): reason and message. */
export function nodeFailure(c: ConfigObject | undefined): { reason: string; message: string } | undefined {
  const ready = c?.status?.conditions?.find((x) => x.type === ConditionType.Ready);
  if (!c || ready?.status !== "False" || ready.observedGeneration !== c.metadata.generation) return undefined;
  if (NOT_FAILURES.has(ready.reason) || c.spec.suspend) return undefined;
  return { reason: ready.reason, message: ready.message };
}

export function isUpToDate(n: RolloutNode): boolean {
  const c = n.current;
  if (!c) return false;
  return (
    c.metadata.annotations?.[DESIRED_HASH_ANNOTATION] === n.desiredHash &&
    c.spec.suspend !== true &&
    c.status?.appliedCommit === n.commit &&
    readyAtGeneration(c)
  );
}

/**
 * Decides which nodes may apply now (level-triggered: only from the nodes' current state):
 * - before the cluster is initialized only the first control-plane node applies;
 * - control-plane nodes then go one at a time, in index order;
 * - workers wait for the whole control plane; workers that never applied go all at once, workers that run an older
 *   spec update at most `maxUnavailable` at a time;
 * - a node that is up to date stays unsuspended (so a rotated Secret still reaches it).
 */
export function planRollout(nodes: RolloutNode[], initialized: boolean, maxUnavailable: number): RolloutDecision {
  const suspend = new Map<string, boolean>();
  const upToDate = new Map(nodes.map((n) => [n.name, isUpToDate(n)]));
  const cp = nodes.filter((n) => n.role === "control-plane");
  const workers = nodes.filter((n) => n.role === "worker");
  let waitingFor: string | undefined;

  let cpBlocked = false;
  cp.forEach((n, i) => {
    const allowed = !cpBlocked && (i === 0 || initialized);
    suspend.set(n.name, !allowed && !upToDate.get(n.name));
    if (!upToDate.get(n.name)) {
      if (!cpBlocked) waitingFor = `control-plane node ${n.name}`;
      cpBlocked = true;
    }
  });
  if (!initialized && !waitingFor && cp.length > 1) waitingFor = "the cluster to be initialized";

  const cpDone = !cpBlocked && initialized;
  // Released with the desired spec and still applying: counts against maxUnavailable until it is up to date.
  const inFlight = (n: RolloutNode): boolean =>
    n.current?.spec.suspend === false && n.current.metadata.annotations?.[DESIRED_HASH_ANNOTATION] === n.desiredHash;
  const neverApplied = (n: RolloutNode): boolean => !n.current?.status?.appliedCommit;
  let updating = workers.filter((n) => !upToDate.get(n.name) && !neverApplied(n) && inFlight(n)).length;
  for (const n of workers) {
    if (!cpDone) {
      suspend.set(n.name, !upToDate.get(n.name));
      continue;
    }
    if (upToDate.get(n.name)) {
      suspend.set(n.name, false);
      continue;
    }
    if (neverApplied(n) || inFlight(n)) {
      suspend.set(n.name, false);
      continue;
    }
    const allowed = updating < maxUnavailable;
    if (allowed) updating++;
    suspend.set(n.name, !allowed);
  }
  if (!waitingFor) {
    const pending = workers.find((n) => !upToDate.get(n.name));
    if (pending) waitingFor = `worker ${pending.name}`;
  }
  return { suspend, upToDate, waitingFor };
}

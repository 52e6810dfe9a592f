import { LABELS, type NodeRole } from "@nio/api";
import { TransientError, isConflict, isNotFound, type Kube } from "@nio/runtime";
import { machines, type MachineObject } from "../resources.js";
import { claimedBy, claimedRole } from "./select.js";

/** Another writer changed the Machine between our read and our claim: re-plan from the fresh state. */
export class ClaimConflictError extends TransientError {
  override readonly name: string = "ClaimConflictError";
  constructor(machine: string) {
    super("MachineConflict", `Machine ${machine} changed while claiming it (another cluster may have claimed it)`);
  }
}

export type ClaimResult = "claimed" | "unchanged";

/**
 * Labels `m` as a node of `cluster` with `role`. The patch carries the resourceVersion we planned with, so the API
 * server refuses it (409) when anyone changed the Machine since: two clusters racing for one machine never both win.
 */
export async function claimMachine(
  kube: Kube,
  m: MachineObject,
  cluster: string,
  role: NodeRole,
): Promise<ClaimResult> {
  let current = m;
  for (let attempt = 0; ; attempt++) {
    const owner = claimedBy(current);
    if (owner === cluster && claimedRole(current) === role) return attempt === 0 ? "unchanged" : "claimed";
    if (owner !== undefined && owner !== cluster) throw new ClaimConflictError(m.metadata.name ?? "");
    try {
      await patchLabels(kube, current, { [LABELS.cluster]: cluster, [LABELS.role]: role });
      return "claimed";
    } catch (err) {
      // Someone else wrote the Machine (often NIO's status): re-read it and decide again from the fresh copy.
      if (!(err instanceof ClaimConflictError) || attempt >= MAX_CLAIM_ATTEMPTS) throw err;
      current = await kube.get<MachineObject>(machines, {
        namespace: m.metadata.namespace,
        name: m.metadata.name ?? "",
      });
    }
  }
}

const MAX_CLAIM_ATTEMPTS = 5;

/** Removes the claim labels if they still name `cluster` (precondition as for claims). */
export async function releaseMachine(kube: Kube, m: MachineObject, cluster: string): Promise<boolean> {
  if (claimedBy(m) !== cluster) return false;
  try {
    await patchLabels(kube, m, { [LABELS.cluster]: null, [LABELS.role]: null });
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
  return true;
}

async function patchLabels(kube: Kube, m: MachineObject, labels: Record<string, string | null>): Promise<void> {
  const key = { namespace: m.metadata.namespace, name: m.metadata.name ?? "" };
  const patch = { metadata: { resourceVersion: m.metadata.resourceVersion, labels } };
  try {
    await kube.patch(machines, key, patch, "merge", { fieldManager: "nico" });
  } catch (err) {
    if (isConflict(err)) throw new ClaimConflictError(key.name);
    throw err;
  }
}

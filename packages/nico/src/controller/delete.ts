import { ANNOTATIONS, FINALIZERS, LABELS } from "@nio/api";
import { isNotFound, removeFinalizer, type ReconcileResult, type ResourceType } from "@nio/runtime";
import {
  configMaps,
  kubernetesClusters,
  names,
  nixosConfigurations,
  secrets,
  type ConfigObject,
} from "../resources.js";
import { releaseMachine } from "../selection/claims.js";
import { releaseJoinToken } from "../token.js";
import { batchEvent, plural } from "../events.js";
import { BY_CLUSTER_LABEL, type ClusterControllerDeps, type Scope } from "./controller.js";
import { removeNodes } from "./normal.js";
import { setDeleting } from "./status.js";

/**
 * Deletion (seed: "applies #minimal to all nodes … machines become available for reuse"): the workers' configurations
 * go first, then the control-plane ones from the highest index down, the first node last; each deletion waits until
 * NIO has applied #minimal and removed its finalizer. Then the claims are released, the join token's finalizer is
 * removed (it stayed in place so NIO could still read it during cleanup), and finally the cluster's finalizer.
 */
export async function reconcileDelete(deps: ClusterControllerDeps, s: Scope): Promise<ReconcileResult> {
  if (!s.cluster.metadata.finalizers?.includes(FINALIZERS.nico)) return {};
  const owned = deps.configs.byIndex(BY_CLUSTER_LABEL, s.key);
  if (owned.length) {
    const batch = nextBatch(s, owned);
    if (s.cluster.metadata.annotations?.[ANNOTATIONS.skipCleanup] === "true") await markSkipCleanup(deps, batch);
    await removeNodes(deps, s, batch);
    const removing = batch.map((c) => c.spec.machineRef.name).join(", ");
    setDeleting(s.status, s.cond, `removing ${removing} (NIO applies #minimal), ${owned.length} node(s) left`);
    return {};
  }
  setDeleting(s.status, s.cond, "releasing machines");
  const name = s.cluster.metadata.name ?? "";
  const ns = s.cluster.metadata.namespace ?? "";
  const released: string[] = [];
  for (const m of deps.machines.byIndex(BY_CLUSTER_LABEL, s.key)) {
    if (await releaseMachine(deps.kube, m, name)) {
      deps.metrics.machineClaims.inc({ result: "released" });
      released.push(m.metadata.name ?? "");
    }
  }
  batchEvent(deps.recorder, s.cluster, "MachineReleased", (n) => `released ${plural(n, "Machine")}`, released);
  // Explicit deletes instead of relying on garbage collection (which also works, but not without a GC running).
  await releaseJoinToken(deps.kube, deps.secrets, s.cluster);
  await deleteIfPresent(deps, secrets, names.joinToken(name), ns);
  await deleteIfPresent(deps, secrets, names.kubeconfig(name), ns);
  await deleteIfPresent(deps, configMaps, names.topology(name), ns);
  deps.metrics.forgetCluster(ns, name);
  await removeFinalizer(deps.kube, kubernetesClusters, s.cluster, FINALIZERS.nico);
  deps.recorder.event(s.cluster, "Normal", "Deleted", "every node is back on #minimal and every machine is released");
  return {};
}

/** All workers at once; then control-plane nodes one at a time, highest index first, the first node last. */
function nextBatch(s: Scope, owned: ConfigObject[]): ConfigObject[] {
  const workers = owned.filter((c) => c.metadata.labels?.[LABELS.role] !== "control-plane");
  if (workers.length) return workers;
  const index = new Map((s.status.nodes ?? []).map((n) => [n.machine, n.index ?? 0]));
  const cp = [...owned].sort(
    (a, b) =>
      (index.get(b.spec.machineRef.name) ?? 0) - (index.get(a.spec.machineRef.name) ?? 0) ||
      b.spec.machineRef.name.localeCompare(a.spec.machineRef.name),
  );
  return cp.slice(0, 1);
}

async function markSkipCleanup(deps: ClusterControllerDeps, batch: ConfigObject[]): Promise<void> {
  for (const c of batch) {
    if (c.metadata.annotations?.[ANNOTATIONS.skipCleanup] === "true") continue;
    await deps.kube.patch(
      nixosConfigurations,
      { namespace: c.metadata.namespace, name: c.metadata.name ?? "" },
      { metadata: { annotations: { [ANNOTATIONS.skipCleanup]: "true" } } },
      "merge",
      { fieldManager: "nico" },
    );
  }
}

async function deleteIfPresent(
  deps: ClusterControllerDeps,
  res: ResourceType,
  name: string,
  namespace: string,
): Promise<void> {
  try {
    await deps.kube.delete(res, { namespace, name });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

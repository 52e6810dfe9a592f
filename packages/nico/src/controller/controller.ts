import {
  ANNOTATIONS,
  FINALIZERS,
  LABELS,
  Reason,
  formatValidationErrors,
  validateKubernetesCluster,
  type KubernetesClusterStatus,
} from "@nio/api";
import type { git as gitApi, ssh as sshApi } from "@nio/nio";
import {
  StalledError,
  classifyError,
  ensureFinalizer,
  formatTime,
  ignoreStatusOnlyUpdates,
  isNotFound,
  patchStatus,
  snapshot,
  type ConditionContext,
  type Controller,
  type EventRecorder,
  type Informer,
  type Kube,
  type Manager,
  type ObjectKey,
  type ReconcileContext,
  type ReconcileResult,
} from "@nio/runtime";
import type { NicoConfig } from "../config.js";
import type { NicoMetrics } from "../metrics.js";
import {
  kubernetesClusters,
  nsName,
  type ClusterObject,
  type ConfigObject,
  type MachineObject,
  type SecretObject,
} from "../resources.js";
import { reconcileDelete } from "./delete.js";
import type { RecentWrites } from "./recent.js";
import { reconcileNormal } from "./normal.js";
import { setStalled, setSuspended } from "./status.js";

export interface ClusterControllerDeps {
  kube: Kube;
  clusters: Informer<ClusterObject>;
  machines: Informer<MachineObject>;
  configs: Informer<ConfigObject>;
  secrets: Informer<SecretObject>;
  git: Pick<gitApi.GitSource, "resolveRef">;
  ssh: sshApi.SshConnector;
  config: NicoConfig;
  metrics: NicoMetrics;
  recorder: EventRecorder;
  /** Per cluster: the commit its ref resolved to, when, and for which source (re-resolved after the interval). */
  commits: Map<string, { commit: string; at: number; source: string }>;
  /** Per cluster: when the kubeconfig was last read from the first control-plane node. */
  kubeconfigReadAt: Map<string, { at: number; ok: boolean; problem?: string }>;
  /** Per cluster: digest of the topology ConfigMap last written (no write when unchanged). */
  topologyWritten: Map<string, string>;
  /**
   * Per cluster: the object our last status write returned. Right after a write the cache may not have it yet, and
   * deciding from the older status (e.g. `initialized` still false) would undo our own step.
   */
  clustersWritten: RecentWrites<ClusterObject>;
  /** NixosConfigurations NICO wrote moments ago (read-your-writes for emission). */
  configsWritten: RecentWrites<ConfigObject>;
  now?: () => Date;
}

export const BY_CLUSTER_LABEL = "by-cluster-label";
export const BY_NAMESPACE = "by-namespace";

export function registerClusterController(mgr: Manager, deps: ClusterControllerDeps): Controller {
  const clusterLabel = (o: { metadata: { namespace?: string; labels?: Record<string, string> } }): string[] => {
    const c = o.metadata.labels?.[LABELS.cluster];
    return c ? [`${o.metadata.namespace ?? ""}/${c}`] : [];
  };
  deps.configs.addIndex(BY_CLUSTER_LABEL, clusterLabel);
  deps.machines.addIndex(BY_CLUSTER_LABEL, clusterLabel);
  deps.clusters.addIndex(BY_NAMESPACE, (c) => [c.metadata.namespace ?? ""]);
  const clustersIn = (o: { metadata: { namespace?: string } }): string[] =>
    deps.clusters.byIndex(BY_NAMESPACE, o.metadata.namespace ?? "").map(nsName);
  return mgr.controller({
    name: "kubernetescluster",
    for: deps.clusters,
    watches: [
      // NIO's progress on a node (status) and deletions move the rollout and the cleanup.
      { informer: deps.configs, map: (c) => clusterLabel(c) },
      // Any Machine of the namespace may change a selection (labels, new machines, claims released by others).
      { informer: deps.machines, map: (m) => clustersIn(m) },
      // Machine SSH keys (authorizedKeys), the join token and git credentials.
      { informer: deps.secrets, map: (s) => clustersIn(s) },
    ],
    predicates: [ignoreStatusOnlyUpdates],
    concurrency: 4,
    reconcile: (key, ctx) => reconcileCluster(deps, key, ctx),
  });
}

export interface Scope {
  cluster: ClusterObject;
  before: ClusterObject;
  status: KubernetesClusterStatus;
  cond: ConditionContext;
  now: Date;
  key: string;
}

export async function reconcileCluster(
  deps: ClusterControllerDeps,
  key: ObjectKey,
  ctx: ReconcileContext,
): Promise<ReconcileResult> {
  const k = `${key.namespace}/${key.name}`;
  const cached = deps.clusters.get(k);
  let cluster = cached && deps.clustersWritten.newest(k, cached);
  if (!cluster) {
    forget(deps, k, key.namespace ?? "", key.name);
    return {};
  }
  cluster = await withFinalizer(deps, cluster);
  if (!cluster) return {};
  const now = (deps.now ?? (() => new Date()))();
  const s: Scope = {
    cluster,
    before: snapshot(cluster),
    status: structuredClone(cluster.status ?? {}),
    now,
    cond: { generation: cluster.metadata.generation, now: formatTime(now) },
    key: k,
  };
  const requested = cluster.metadata.annotations?.[ANNOTATIONS.reconcileRequestedAt];
  try {
    if (cluster.metadata.deletionTimestamp) return await reconcileDelete(deps, s);
    const errors = validateKubernetesCluster(cluster);
    if (errors.length) throw new StalledError(Reason.InvalidSpec, formatValidationErrors(errors));
    setSuspended(s.status, s.cond, cluster.spec.suspend === true);
    if (cluster.spec.suspend) return {};
    if (requested && requested !== s.status.lastHandledReconcileAt) deps.commits.delete(k);
    const result = await reconcileNormal(deps, s, ctx);
    if (requested) s.status.lastHandledReconcileAt = requested;
    s.status.observedGeneration = cluster.metadata.generation;
    return result;
  } catch (err) {
    return handleError(deps, s, err);
  } finally {
    await writeStatus(deps, s);
    updateClusterGauge(deps);
  }
}

/**
 * Adds NICO's finalizer first. Goes on with the object the server returned (no waiting for the watch to bring it
 * back); undefined when the finalizer could not be added (the object is being deleted concurrently).
 */
async function withFinalizer(deps: ClusterControllerDeps, c: ClusterObject): Promise<ClusterObject | undefined> {
  if (c.metadata.deletionTimestamp || c.metadata.finalizers?.includes(FINALIZERS.nico)) return c;
  let patched: ClusterObject | undefined;
  await ensureFinalizer(deps.kube, kubernetesClusters, c, FINALIZERS.nico, {
    onPatched: (o) => (patched = o as ClusterObject),
  });
  return patched;
}

function forget(deps: ClusterControllerDeps, k: string, namespace: string, name: string): void {
  deps.commits.delete(k);
  deps.kubeconfigReadAt.delete(k);
  deps.topologyWritten.delete(k);
  deps.clustersWritten.forget(k);
  deps.metrics.forgetCluster(namespace, name);
  updateClusterGauge(deps);
}

function updateClusterGauge(deps: ClusterControllerDeps): void {
  deps.metrics.clustersTotal.reset();
  for (const cached of deps.clusters.list()) {
    const c = deps.clustersWritten.newest(nsName(cached), cached) ?? cached;
    deps.metrics.clustersTotal.inc({ phase: c.status?.phase ?? "Pending" });
  }
}

async function writeStatus(deps: ClusterControllerDeps, s: Scope): Promise<void> {
  const before = s.before.status?.phase;
  try {
    const res = await patchStatus(deps.kube, kubernetesClusters, s.before, s.status);
    if (res.object) {
      s.before = res.object;
      deps.clustersWritten.record(s.key, res.object);
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return;
  }
  if (s.status.phase && s.status.phase !== before) {
    const type = s.status.phase === "Failed" || s.status.phase === "Degraded" ? "Warning" : "Normal";
    deps.recorder.event(s.cluster, type, `Phase${s.status.phase}`, phaseMessage(s.status));
  }
}

function phaseMessage(st: KubernetesClusterStatus): string {
  const ready = st.conditions?.find((c) => c.type === "Ready");
  const reconciling = st.conditions?.find((c) => c.type === "Reconciling");
  return `phase ${st.phase}: ${(reconciling ?? ready)?.message ?? ""}`.trim();
}

function handleError(deps: ClusterControllerDeps, s: Scope, err: unknown): ReconcileResult {
  const c = classifyError(err);
  if (c.kind === "stalled") {
    setStalled(s.status, s.cond, c.reason, c.message);
    deps.recorder.event(s.cluster, "Warning", c.reason, c.message);
    return {};
  }
  if (c.notify) deps.recorder.event(s.cluster, c.eventType, c.reason, c.message);
  if (c.kind === "waiting") return { requeueAfterMs: c.requeueAfterMs ?? 15_000 };
  throw err;
}

import { NODE_ROLES, Reason, type NodeRole } from "@nio/api";
import {
  StalledError,
  applyObject,
  classifyError,
  isNotFound,
  setControllerReference,
  type ReconcileContext,
  type ReconcileResult,
} from "@nio/runtime";
import { desiredConfiguration, nodeSpec, specHash, type NodeIntent } from "../emit.js";
import { K3S_KUBECONFIG_PATH, fetchKubeconfig, rewriteServer, storeKubeconfig } from "../kubeconfig.js";
import { TopologyValidationError, renderClusterNix, type ClusterTopology } from "../render/index.js";
import {
  configMaps,
  kubernetesClusters,
  names,
  nixosConfigurations,
  type ConfigMapObject,
  type ConfigObject,
  type MachineObject,
} from "../resources.js";
import { nodeFailure, planRollout, type RolloutDecision, type RolloutNode } from "../rollout.js";
import { ClaimConflictError, claimMachine, releaseMachine, type ClaimResult } from "../selection/claims.js";
import { batchEvent, plural } from "../events.js";
import { planSelection, type SelectionPlan } from "../selection/select.js";
import { ensureJoinToken } from "../token.js";
import { buildTopology, clusterEndpoint, privateKeyFromCache } from "../topology.js";
import { BY_CLUSTER_LABEL, type ClusterControllerDeps, type Scope } from "./controller.js";
import { resolveClusterCommit } from "./source.js";
import { setClaims, setPending, setProgress, type Progress } from "./status.js";

/** The steps of a live cluster, each moving the world one step (Cluster API style: claims, token, render, emit). */
export async function reconcileNormal(
  deps: ClusterControllerDeps,
  s: Scope,
  ctx: ReconcileContext,
): Promise<ReconcileResult> {
  const t0 = Date.now();
  const lap = (step: string): void => ctx.logger.debug({ step, ms: Date.now() - t0 }, "reconcile step");
  const commit = await resolveClusterCommit(deps, s);
  lap("commit");
  const ns = s.cluster.metadata.namespace ?? "";
  const inNamespace = deps.machines.list().filter((m) => m.metadata.namespace === ns);
  const plan = planSelection(s.cluster, inNamespace);
  const owned = deps.configs.byIndex(BY_CLUSTER_LABEL, s.key);

  if (plan.controlPlaneShort && !s.status.initialized && owned.length === 0) {
    await releaseUnplanned(deps, s, plan, owned);
    setClaims(s.status, s.cond, 0, plan.shortages);
    setPending(
      s.status,
      s.cond,
      `${plan.shortages.join("; ")}; nothing is provisioned until the control plane is complete`,
    );
    return { requeueAfterMs: deps.config.clusterReconcileIntervalSeconds * 1000 };
  }
  const nodes = intents(plan);
  const claims = claimer(deps, s);
  const claim = claims.claim;
  // The whole control plane is claimed before anything is created: a cluster that loses a race for its control-plane
  // machines leaves nothing behind (no token, no topology, no configuration).
  try {
    for (const n of nodes) if (n.role === "control-plane") await claim(n);
  } finally {
    claims.report();
  }
  lap("claims");
  const token = await ensureJoinToken(deps.kube, deps.secrets, s.cluster);
  if (token.created) deps.recorder.event(s.cluster, "Normal", "JoinTokenCreated", `created Secret ${token.name}`);

  const emit = (): Promise<Emitted> => renderAndEmit(deps, s, { nodes, commit, claim }).finally(() => claims.report());
  const { emitted, kubeconfigProblem } = await initializeAndFetchKubeconfig(deps, s, ctx, {
    first: nodes[0]?.machine,
    emitted: await emit(),
    emit,
  });
  setClaims(s.status, s.cond, nodes.length, plan.shortages);
  lap("emit");
  const cleaningUp = await removeSurplus(deps, s, plan, owned);
  const progress = summarizeNodes(deps, s, nodes, emitted.rollout);
  const phase = setProgress(s.status, s.cond, {
    ...progress,
    workerShortage: plan.shortages.find((m) => !m.includes("control-plane")),
    kubeconfigProblem,
    cleaningUp,
  });
  s.status.endpoint = clusterEndpoint(emitted.topology);
  const next = kubeconfigProblem ? 15_000 : deps.config.clusterReconcileIntervalSeconds * 1000;
  return {
    requeueAfterMs: phase === "Ready" ? Math.min(next, deps.config.kubeconfigRefreshIntervalSeconds * 1000) : next,
  };
}

const KUBECONFIG_RETRY_MS = 10_000;

/**
 * One SSH read per refresh interval, and after a failed read at most one per KUBECONFIG_RETRY_MS however often NIO's
 * progress triggers reconciles. Returns what to report instead of reading, or undefined when a read is due.
 */
function kubeconfigReadDue(deps: ClusterControllerDeps, s: Scope, stored: boolean): { problem?: string } | undefined {
  const last = deps.kubeconfigReadAt.get(s.key);
  if (!last) return undefined;
  const since = s.now.getTime() - last.at;
  if (!last.ok && since < KUBECONFIG_RETRY_MS) return { problem: last.problem };
  if (last.ok && since < KUBECONFIG_RETRY_MS) return {}; // just stored; the cache may not show the Secret yet
  if (stored && last.ok && since < deps.config.kubeconfigRefreshIntervalSeconds * 1000) return {};
  return undefined;
}

interface Emitted {
  topology: ClusterTopology;
  rollout: RolloutDecision;
}

/**
 * Sets `initialized` once the first node applied its bootstrap configuration and k3s wrote its admin kubeconfig
 * (which shows the server runs), then renders and rolls out again in the same pass; afterwards keeps the kubeconfig
 * Secret fresh. Returns what is in force and why the kubeconfig is not available, if it is not.
 */
async function initializeAndFetchKubeconfig(
  deps: ClusterControllerDeps,
  s: Scope,
  ctx: ReconcileContext,
  e: { first: MachineObject | undefined; emitted: Emitted; emit: () => Promise<Emitted> },
): Promise<{ emitted: Emitted; kubeconfigProblem?: string }> {
  const { first, emitted } = e;
  if (s.status.initialized) {
    return { emitted, kubeconfigProblem: await reconcileKubeconfig(deps, s, emitted.topology, first, ctx) };
  }
  if (!first || !emitted.rollout.upToDate.get(first.metadata.name ?? "")) {
    return { emitted, kubeconfigProblem: "the cluster is not initialized yet" };
  }
  const problem = await reconcileKubeconfig(deps, s, emitted.topology, first, ctx);
  if (problem) return { emitted, kubeconfigProblem: problem };
  s.status.initialized = true;
  deps.recorder.event(
    s.cluster,
    "Normal",
    "Initialized",
    `control-plane node ${first.metadata.name} bootstrapped the cluster; the other nodes join it`,
  );
  return { emitted: await e.emit() };
}

/** Renders cluster.nix for the current state, publishes it, and emits every node's configuration. */
async function renderAndEmit(
  deps: ClusterControllerDeps,
  s: Scope,
  e: { nodes: NodeIntent[]; commit: string; claim: (n: NodeIntent) => Promise<void> },
): Promise<Emitted> {
  const plan = {
    controlPlane: e.nodes.filter((n) => n.role === "control-plane").map((n) => n.machine),
    workers: e.nodes.filter((n) => n.role === "worker").map((n) => n.machine),
  };
  const topology = buildTopology(s.cluster, plan, s.status.initialized === true, privateKeyFromCache(deps.secrets));
  const clusterNix = render(topology);
  await writeTopologyConfigMap(deps, s, clusterNix);
  // Each worker's configuration is written right after its Machine is claimed (never before): claims and
  // configurations go out as one pipeline instead of two rounds.
  const rollout = await emitConfigurations(deps, s, { ...e, clusterNix });
  return { topology, rollout };
}

function intents(plan: SelectionPlan<MachineObject>): NodeIntent[] {
  return [
    ...plan.controlPlane.map((machine, index) => ({ machine, role: "control-plane" as const, index })),
    ...plan.workers.map((machine, index) => ({ machine, role: "worker" as const, index })),
  ];
}

function render(t: ClusterTopology): string {
  try {
    return renderClusterNix(t);
  } catch (err) {
    if (err instanceof TopologyValidationError) {
      throw new StalledError(Reason.InvalidSpec, `cluster.nix would be invalid: ${err.message}`);
    }
    throw err;
  }
}

/**
 * Claims in plan order: control-plane machines one at a time (two clusters racing for the same machines meet on the
 * first one and exactly one goes on), workers in parallel (any of them may be partial).
 */
function claimer(deps: ClusterControllerDeps, s: Scope): Claimer {
  let controlPlane = Promise.resolve();
  const done = new Set<string>();
  const claimed: Record<NodeRole, string[]> = { "control-plane": [], worker: [] };
  const claim = async (n: NodeIntent): Promise<void> => {
    const name = n.machine.metadata.name ?? "";
    if (done.has(name)) return;
    let result: ClaimResult;
    if (n.role === "worker") result = await claimOne(deps, s, n);
    else {
      const next = controlPlane.then(() => claimOne(deps, s, n));
      controlPlane = next.then(() => undefined);
      result = await next;
    }
    done.add(name);
    if (result === "claimed") claimed[n.role].push(name);
  };
  const report = (): void => {
    for (const role of NODE_ROLES) {
      batchEvent(
        deps.recorder,
        s.cluster,
        "MachineClaimed",
        (n) => `claimed ${plural(n, "Machine")} as ${role}`,
        claimed[role],
      );
      claimed[role] = [];
    }
  };
  return { claim, report };
}

interface Claimer {
  claim: (n: NodeIntent) => Promise<void>;
  /** One Event per role for the machines claimed since the last report. */
  report: () => void;
}

async function claimOne(deps: ClusterControllerDeps, s: Scope, n: NodeIntent): Promise<ClaimResult> {
  try {
    const result = await claimMachine(deps.kube, n.machine, s.cluster.metadata.name ?? "", n.role);
    if (result === "claimed") deps.metrics.machineClaims.inc({ result: "claimed" });
    return result;
  } catch (err) {
    // Only a claim lost to another writer counts; API or transport failures show in the reconcile error metrics.
    if (err instanceof ClaimConflictError) deps.metrics.machineClaims.inc({ result: "conflict" });
    throw err;
  }
}

/** Releases machines this cluster holds but no longer plans for and that have no configuration left. */
async function releaseUnplanned(
  deps: ClusterControllerDeps,
  s: Scope,
  plan: SelectionPlan<MachineObject>,
  owned: ConfigObject[],
): Promise<void> {
  const planned = new Set([...plan.controlPlane, ...plan.workers].map((m) => m.metadata.name));
  const withConfig = new Set(owned.map((c) => c.spec.machineRef.name));
  const released: string[] = [];
  for (const m of deps.machines.byIndex(BY_CLUSTER_LABEL, s.key)) {
    if (planned.has(m.metadata.name) || withConfig.has(m.metadata.name ?? "")) continue;
    if (await releaseMachine(deps.kube, m, s.cluster.metadata.name ?? "")) {
      deps.metrics.machineClaims.inc({ result: "released" });
      released.push(m.metadata.name ?? "");
    }
  }
  batchEvent(deps.recorder, s.cluster, "MachineReleased", (n) => `released ${plural(n, "Machine")}`, released);
}

/**
 * Scale down: configurations of machines no longer planned are deleted (NIO applies #minimal first), and a machine
 * is released once its configuration is gone. Workers go first; surplus control-plane nodes one at a time.
 */
async function removeSurplus(
  deps: ClusterControllerDeps,
  s: Scope,
  plan: SelectionPlan<MachineObject>,
  owned: ConfigObject[],
): Promise<string[]> {
  const planned = new Set([...plan.controlPlane, ...plan.workers].map((m) => m.metadata.name));
  const surplus = owned.filter((c) => !planned.has(c.spec.machineRef.name));
  const workers = surplus.filter((c) => c.metadata.labels?.["nico.homystack.com/role"] !== "control-plane");
  const toDelete = workers.length ? workers : surplus.slice(-1);
  await removeNodes(deps, s, toDelete);
  await releaseUnplanned(deps, s, plan, owned);
  return surplus.map((c) => c.spec.machineRef.name);
}

/** Deletes a node's configuration (NIO then applies #minimal); true when this call deleted it. */
export async function deleteConfiguration(deps: ClusterControllerDeps, c: ConfigObject): Promise<boolean> {
  if (c.metadata.deletionTimestamp) return false;
  deps.configsWritten.forget(`${c.metadata.namespace ?? ""}/${c.metadata.name ?? ""}`);
  try {
    await deps.kube.delete(nixosConfigurations, { namespace: c.metadata.namespace, name: c.metadata.name ?? "" });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return false;
  }
  return true;
}

/** Deletes the configurations and records one Event naming their machines. */
export async function removeNodes(deps: ClusterControllerDeps, s: Scope, configs: ConfigObject[]): Promise<void> {
  const removed: string[] = [];
  for (const c of configs) if (await deleteConfiguration(deps, c)) removed.push(c.spec.machineRef.name);
  batchEvent(
    deps.recorder,
    s.cluster,
    "NodeRemoving",
    (n) => `deleted the NixosConfigurations of ${plural(n, "node")}, NIO applies #minimal to them`,
    removed,
  );
}

async function writeTopologyConfigMap(deps: ClusterControllerDeps, s: Scope, clusterNix: string): Promise<void> {
  const digest = specHash({ clusterNix, uid: s.cluster.metadata.uid });
  if (deps.topologyWritten.get(s.key) === digest) return;
  const cm: ConfigMapObject = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: names.topology(s.cluster.metadata.name ?? ""),
      namespace: s.cluster.metadata.namespace,
      labels: { "nico.homystack.com/cluster": s.cluster.metadata.name ?? "" },
    },
    data: { "cluster.nix": clusterNix },
  };
  setControllerReference(cm, s.cluster, kubernetesClusters);
  await applyObject(deps.kube, configMaps, cm, { fieldManager: "nico", force: true, current: null });
  deps.topologyWritten.set(s.key, digest);
}

/** Server-side-applies every node's configuration whose spec, suspension or labels differ from what exists. */
interface Emission {
  nodes: NodeIntent[];
  commit: string;
  clusterNix: string;
  /** Claims the node's Machine (resolves when it is this cluster's). */
  claim: (n: NodeIntent) => Promise<void>;
}

async function emitConfigurations(deps: ClusterControllerDeps, s: Scope, e: Emission): Promise<RolloutDecision> {
  const { nodes, commit, clusterNix } = e;
  const ns = s.cluster.metadata.namespace ?? "";
  const clusterName = s.cluster.metadata.name ?? "";
  const specs = nodes.map((n) => nodeSpec(s.cluster, n, commit, clusterNix));
  const rolloutNodes: RolloutNode[] = nodes.map((n, i) => ({
    name: n.machine.metadata.name ?? "",
    role: n.role,
    desiredHash: specHash(specs[i] ?? {}),
    commit,
    current: currentConfiguration(deps, `${ns}/${names.configuration(clusterName, n.machine.metadata.name ?? "")}`),
  }));
  const decision = planRollout(
    rolloutNodes,
    s.status.initialized === true,
    s.cluster.spec.rollout?.maxUnavailable ?? 1,
  );
  const writes: Promise<void>[] = [];
  const created: string[] = [];
  nodes.forEach((n, i) => {
    const rn = rolloutNodes[i];
    const spec = specs[i];
    if (!rn || !spec) return;
    const suspend = decision.suspend.get(rn.name) ?? true;
    const cur = rn.current;
    if (cur?.metadata.deletionTimestamp) return;
    const same =
      cur &&
      cur.metadata.annotations?.["nico.homystack.com/desired-hash"] === rn.desiredHash &&
      (cur.spec.suspend ?? false) === suspend &&
      cur.metadata.labels?.["nico.homystack.com/role"] === n.role;
    const claimed = e.claim(n);
    if (same) {
      writes.push(claimed);
      return;
    }
    const desired = desiredConfiguration(s.cluster, n, spec, suspend, rn.desiredHash);
    writes.push(
      claimed
        .then(() =>
          applyObject(deps.kube, nixosConfigurations, desired, {
            fieldManager: "nico",
            force: true,
            current: cur ?? null,
          }),
        )
        .then((r) => {
          deps.configsWritten.record(`${ns}/${desired.metadata.name ?? ""}`, r.object);
          if (r.result === "created") created.push(desired.metadata.name ?? "");
        }),
    );
  });
  const results = await Promise.allSettled(writes);
  batchEvent(
    deps.recorder,
    s.cluster,
    "ConfigurationCreated",
    (n) => `created ${plural(n, "NixosConfiguration")} (nodes wait for their turn in the rollout)`,
    created,
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  return decision;
}

function currentConfiguration(deps: ClusterControllerDeps, key: string): ConfigObject | undefined {
  return deps.configsWritten.newest(key, deps.configs.get(key));
}

async function reconcileKubeconfig(
  deps: ClusterControllerDeps,
  s: Scope,
  topology: ClusterTopology,
  first: MachineObject | undefined,
  ctx: ReconcileContext,
): Promise<string | undefined> {
  const endpoint = clusterEndpoint(topology);
  if (!first || !endpoint) return "no control-plane node";
  const name = names.kubeconfig(s.cluster.metadata.name ?? "");
  const stored = deps.secrets.get(`${s.cluster.metadata.namespace ?? ""}/${name}`);
  const skip = kubeconfigReadDue(deps, s, stored !== undefined);
  if (skip) return skip.problem;
  try {
    const raw = await fetchKubeconfig(deps.ssh, first, deps.secrets, deps.config.sshConnectTimeoutSeconds * 1000);
    const res = await storeKubeconfig(deps.kube, deps.secrets, s.cluster, rewriteServer(raw, endpoint));
    deps.kubeconfigReadAt.set(s.key, { at: s.now.getTime(), ok: true });
    s.status.kubeconfigSecret = res.name;
    if (res.changed) {
      deps.recorder.event(
        s.cluster,
        "Normal",
        "KubeconfigStored",
        `stored the admin kubeconfig (server ${endpoint}) in Secret ${res.name}`,
      );
    }
    return undefined;
  } catch (err) {
    const c = classifyError(err);
    ctx.logger.info({ err: c.message }, "kubeconfig not readable yet");
    const problem = `cannot read ${K3S_KUBECONFIG_PATH} from ${first.metadata.name}: ${c.message}`;
    deps.kubeconfigReadAt.set(s.key, { at: s.now.getTime(), ok: false, problem: stored ? undefined : problem });
    return stored ? undefined : problem; // with a stored one: keep serving the last good one
  }
}

function summarizeNodes(
  deps: ClusterControllerDeps,
  s: Scope,
  nodes: NodeIntent[],
  rollout: RolloutDecision,
): Omit<Progress, "workerShortage" | "kubeconfigProblem" | "cleaningUp"> {
  const ns = s.cluster.metadata.namespace ?? "";
  const clusterName = s.cluster.metadata.name ?? "";
  let failure: Progress["failure"];
  const counts = { cpReady: 0, cpTotal: 0, workersReady: 0, workersTotal: 0 };
  s.status.nodes = nodes.map((n) => {
    const machine = n.machine.metadata.name ?? "";
    const configuration = names.configuration(clusterName, machine);
    const cfg = deps.configs.get(`${ns}/${configuration}`);
    const ready = rollout.upToDate.get(machine) === true;
    const failed = nodeFailure(cfg);
    if (failed && !failure) failure = { node: machine, ...failed };
    if (n.role === "control-plane") {
      counts.cpTotal++;
      if (ready) counts.cpReady++;
    } else {
      counts.workersTotal++;
      if (ready) counts.workersReady++;
    }
    return {
      machine,
      role: n.role,
      index: n.index,
      ip: n.machine.spec.ipAddress ?? "",
      configuration,
      ...(cfg?.status?.appliedCommit ? { appliedCommit: cfg.status.appliedCommit } : {}),
      ready,
    };
  });
  for (const role of ["control-plane", "worker"] as const) {
    const total = role === "control-plane" ? counts.cpTotal : counts.workersTotal;
    const ready = role === "control-plane" ? counts.cpReady : counts.workersReady;
    deps.metrics.clusterNodes.set({ namespace: ns, cluster: clusterName, role, state: "ready" }, ready);
    deps.metrics.clusterNodes.set({ namespace: ns, cluster: clusterName, role, state: "notready" }, total - ready);
  }
  if (!rollout.waitingFor) return { ...counts, failure };
  return { ...counts, failure, waitingFor: rollout.waitingFor };
}

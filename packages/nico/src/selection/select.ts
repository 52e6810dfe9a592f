import { LABELS, type NodeRole } from "@nio/api";
import type { ClusterObject, MachineObject } from "../resources.js";

/**
 * Which Machines a cluster uses, decided from the spec and the claim labels alone (pure, level-triggered): the same
 * inputs always give the same plan, so a selection persists across reconciles and follows spec changes.
 */
export interface SelectionPlan<M extends MachineObject = MachineObject> {
  controlPlane: M[];
  workers: M[];
  /** One message per role that is short of machines, e.g. "need 3 control-plane machines matching role=control-plane, 2 free". */
  shortages: string[];
  /** True when the control plane is short: NICO then provisions nothing rather than a partial control plane. */
  controlPlaneShort: boolean;
}

type Selector = NonNullable<ClusterObject["spec"]["controlPlane"]["machineSelector"]>;
type Placement = ClusterObject["spec"]["controlPlane"];

/** A Machine name NICO can use as a node: a DNS label (it becomes a flake attribute and a host name). */
const NODE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function claimedBy(m: MachineObject): string | undefined {
  return m.metadata.labels?.[LABELS.cluster];
}

export function claimedRole(m: MachineObject): string | undefined {
  return m.metadata.labels?.[LABELS.role];
}

export function matchesSelector(labels: Record<string, string> | undefined, sel: Selector): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  return (sel.matchExpressions ?? []).every((e) => matchesRequirement(l, e));
}

type Requirement = NonNullable<Selector["matchExpressions"]>[number];

function matchesRequirement(l: Record<string, string>, e: Requirement): boolean {
  const has = Object.prototype.hasOwnProperty.call(l, e.key);
  const value = l[e.key];
  const inValues = has && value !== undefined && (e.values ?? []).includes(value);
  switch (e.operator) {
    case "In":
      return inValues;
    case "NotIn":
      return !inValues;
    case "Exists":
      return has;
    case "DoesNotExist":
      return !has;
  }
}

export function describeSelector(sel: Selector): string {
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    const values = (e.values ?? []).join(",");
    if (e.operator === "In") parts.push(`${e.key} in (${values})`);
    else if (e.operator === "NotIn") parts.push(`${e.key} notin (${values})`);
    else if (e.operator === "Exists") parts.push(e.key);
    else parts.push(`!${e.key}`);
  }
  return parts.length ? parts.join(",") : "(any labels)";
}

/** Why a Machine cannot be a node of `cluster` at all, or undefined when it can. */
export function ineligibility(m: MachineObject, cluster: string): string | undefined {
  const owner = claimedBy(m);
  if (owner !== undefined && owner !== cluster) return `claimed by cluster ${owner}`;
  if (m.metadata.deletionTimestamp) return "being deleted";
  if (!NODE_NAME.test(m.metadata.name ?? "")) return "its name is not a DNS label (it becomes a flake attribute)";
  if (!m.spec.ipAddress) return "no spec.ipAddress (cluster.nix needs each node's IP)";
  return undefined;
}

function roleLabel(role: NodeRole): string {
  return role === "control-plane" ? "control-plane machines" : "workers";
}

interface RolePick<M> {
  picked: M[];
  shortage?: string;
}

function pickExplicit<M extends MachineObject>(
  names: string[],
  byName: Map<string, M>,
  cluster: string,
  role: NodeRole,
): RolePick<M> {
  const picked: M[] = [];
  const problems: string[] = [];
  for (const name of names) {
    const m = byName.get(name);
    const why = m ? ineligibility(m, cluster) : "not found";
    if (m && !why) picked.push(m);
    else problems.push(`Machine ${name}: ${why}`);
  }
  const shortage = problems.length
    ? `need ${names.length} ${roleLabel(role)} (listed), ${picked.length} usable: ${problems.join("; ")}`
    : undefined;
  return { picked, shortage };
}

function pickBySelector<M extends MachineObject>(
  p: Placement & { machineSelector: Selector },
  all: M[],
  exclude: Set<string>,
  cluster: string,
  role: NodeRole,
): RolePick<M> {
  const count = p.count ?? 0;
  const matching = all.filter(
    (m) => !exclude.has(m.metadata.name ?? "") && matchesSelector(m.metadata.labels, p.machineSelector),
  );
  const unusable: string[] = [];
  const free = matching.filter((m) => {
    const why = ineligibility(m, cluster);
    if (why) unusable.push(`${m.metadata.name}: ${why}`);
    return !why;
  });
  // Stable: machines this cluster already holds in this role first, then by name.
  const rank = (m: M): number => (claimedBy(m) === cluster && claimedRole(m) === role ? 0 : 1);
  free.sort((a, b) => rank(a) - rank(b) || (a.metadata.name ?? "").localeCompare(b.metadata.name ?? ""));
  const picked = free.slice(0, count);
  if (picked.length >= count) return { picked };
  const extra = unusable.length
    ? ` (not usable: ${unusable.slice(0, 5).join("; ")}${unusable.length > 5 ? "; …" : ""})`
    : "";
  return {
    picked,
    shortage: `need ${count} ${roleLabel(role)} matching ${describeSelector(p.machineSelector)}, ${free.length} free${extra}`,
  };
}

interface Pool<M> {
  all: M[];
  byName: Map<string, M>;
  cluster: string;
}

function pick<M extends MachineObject>(
  p: Placement | undefined,
  pool: Pool<M>,
  exclude: Set<string>,
  role: NodeRole,
): RolePick<M> {
  const { all, byName, cluster } = pool;
  if (!p) return { picked: [] };
  if (p.machines) return pickExplicit(p.machines, byName, cluster, role);
  if (p.machineSelector)
    return pickBySelector({ ...p, machineSelector: p.machineSelector }, all, exclude, cluster, role);
  return { picked: [] };
}

/**
 * Plans the nodes of `cluster` from the Machines of its namespace: explicit `machines` in their order, or the
 * `count` first matching machines not claimed by another cluster (already held ones first, then by name). The control
 * plane is chosen first; a machine is never both. Workers a worker selector would also match are not considered for
 * the control plane when they already serve this cluster as workers.
 */
export function planSelection<M extends MachineObject>(cluster: ClusterObject, machines: M[]): SelectionPlan<M> {
  const name = cluster.metadata.name ?? "";
  const ns = cluster.metadata.namespace;
  const inNs = machines.filter(
    (m) => ns === undefined || m.metadata.namespace === undefined || m.metadata.namespace === ns,
  );
  const byName = new Map(inNs.map((m) => [m.metadata.name ?? "", m]));
  const heldAsWorkers = new Set(
    inNs.filter((m) => claimedBy(m) === name && claimedRole(m) === "worker").map((m) => m.metadata.name ?? ""),
  );
  const explicitWorkers = new Set(cluster.spec.dataPlane?.machines ?? []);
  const cpExclude = new Set([...heldAsWorkers, ...explicitWorkers]);
  const pool = { all: inNs, byName, cluster: name };
  const cp = pick(cluster.spec.controlPlane, pool, cpExclude, "control-plane");
  const taken = new Set(cp.picked.map((m) => m.metadata.name ?? ""));
  const explicitCp = new Set(cluster.spec.controlPlane.machines ?? []);
  const w = pick(cluster.spec.dataPlane, pool, new Set([...taken, ...explicitCp]), "worker");
  const shortages = [cp.shortage, w.shortage].filter((s): s is string => s !== undefined);
  return {
    controlPlane: cp.picked,
    workers: w.picked.filter((m) => !taken.has(m.metadata.name ?? "")),
    shortages,
    controlPlaneShort: cp.shortage !== undefined,
  };
}

// Helpers for the whole-stack tests: typed reads of the objects, waiting on conditions (never on time), the hosts'
// rebuild records, the operators' /metrics and logs.
import type { KubernetesCluster } from "@nio/api";
import {
  nixosConfigurations,
  machines,
  secrets,
  type ConfigObject,
  type MachineObject,
  type SecretObject,
} from "@nio/nio";
import { kubernetesClusters } from "@nio/nico";
import { isNotFound, type KubeObject, type ResourceType } from "@nio/runtime";
import { waitFor, type Host, type RebuildRecord } from "@nio/testbed";
import { SEED_NAMESPACE, type OperatorProcess, type Stack } from "../../src/stack.js";

export type ClusterObject = KubernetesCluster & KubeObject;
export type { ConfigObject, MachineObject, SecretObject };

export const configMaps: ResourceType = {
  group: "",
  version: "v1",
  plural: "configmaps",
  kind: "ConfigMap",
  namespaced: true,
};
export const events: ResourceType = { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true };

export interface ConfigMapObject extends KubeObject {
  data?: Record<string, string>;
}

export interface EventObject extends KubeObject {
  reason: string;
  message: string;
  type: string;
  count?: number;
  reportingInstance?: string;
  involvedObject: { kind: string; name: string; namespace?: string };
}

export interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
}

export const LABEL_CLUSTER = "nico.homystack.com/cluster";

export function condition(obj: { status?: { conditions?: Cond[] } } | undefined, type: string): Cond | undefined {
  return obj?.status?.conditions?.find((c) => c.type === type);
}

/** The object, or undefined when it does not exist. */
export async function getOrUndefined<T extends KubeObject>(
  stack: Stack,
  res: ResourceType,
  name: string,
): Promise<T | undefined> {
  try {
    return await stack.kube.get<T>(res, { namespace: SEED_NAMESPACE, name });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export const cluster = (s: Stack, name: string): Promise<ClusterObject | undefined> =>
  getOrUndefined<ClusterObject>(s, kubernetesClusters, name);
export const configuration = (s: Stack, name: string): Promise<ConfigObject | undefined> =>
  getOrUndefined<ConfigObject>(s, nixosConfigurations, name);
export const machine = (s: Stack, name: string): Promise<MachineObject | undefined> =>
  getOrUndefined<MachineObject>(s, machines, name);
export const secret = (s: Stack, name: string): Promise<SecretObject | undefined> =>
  getOrUndefined<SecretObject>(s, secrets, name);
export const configMap = (s: Stack, name: string): Promise<ConfigMapObject | undefined> =>
  getOrUndefined<ConfigMapObject>(s, configMaps, name);

export async function configurationsOf(s: Stack, clusterName: string): Promise<ConfigObject[]> {
  const list = await s.kube.list<ConfigObject>(nixosConfigurations, {
    namespace: SEED_NAMESPACE,
    labelSelector: `${LABEL_CLUSTER}=${clusterName}`,
  });
  return list.items;
}

/** Events about one object (core/v1, as the operators record them). */
export async function eventsFor(s: Stack, name: string): Promise<EventObject[]> {
  const list = await s.kube.list<EventObject>(events, {
    namespace: SEED_NAMESPACE,
    fieldSelector: `involvedObject.name=${name}`,
  });
  return list.items;
}

/** The last lines of every operator's log, for failure messages. */
export async function operatorLogTails(s: Stack, lines = 15): Promise<string> {
  const parts: string[] = [];
  for (const op of [...s.nio, s.nico]) {
    parts.push(`--- ${op.name} (${op.logFile}):\n${(await op.log()).split("\n").slice(-lines).join("\n")}`);
  }
  return parts.join("\n");
}

/**
 * Polls `check` (every 250 ms) until it returns something other than undefined; on timeout the error carries the
 * operators' log tails.
 */
export async function until<T>(
  s: Stack,
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 120_000,
): Promise<T> {
  try {
    return await waitFor(what, check, { timeoutMs, intervalMs: 250 });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await operatorLogTails(s)}`);
  }
}

/** Waits for the cluster to be Ready at its current generation, and returns it. */
export function clusterReady(s: Stack, name: string, timeoutMs = 300_000): Promise<ClusterObject> {
  return until(
    s,
    `KubernetesCluster ${name} Ready`,
    async () => {
      const c = await cluster(s, name);
      const ready = condition(c, "Ready");
      const current = ready?.observedGeneration === undefined || ready.observedGeneration === c?.metadata.generation;
      return c?.status?.phase === "Ready" && ready?.status === "True" && current ? c : undefined;
    },
    timeoutMs,
  );
}

/** Waits until the object is gone (no finalizer holds it). */
export function gone(
  s: Stack,
  what: string,
  get: () => Promise<KubeObject | undefined>,
  timeoutMs = 300_000,
): Promise<true> {
  return until(s, `${what} gone`, async () => ((await get()) === undefined ? true : undefined), timeoutMs);
}

/**
 * kstatus invariants of an object that reports Ready=True: observed at its generation, and neither Reconciling nor
 * Stalled at the same time.
 */
export function kstatusViolations(obj: KubeObject & { status?: { conditions?: Cond[] } }): string[] {
  const out: string[] = [];
  const name = `${obj.kind ?? "?"}/${obj.metadata.name ?? "?"}`;
  const ready = condition(obj, "Ready");
  if (ready?.status !== "True") return out;
  if (ready.observedGeneration !== undefined && ready.observedGeneration !== obj.metadata.generation) {
    out.push(`${name}: Ready observed at generation ${ready.observedGeneration}, object at ${obj.metadata.generation}`);
  }
  for (const t of ["Reconciling", "Stalled"]) {
    if (condition(obj, t)?.status === "True") out.push(`${name}: Ready=True together with ${t}=True`);
  }
  return out;
}

// ---- the hosts' rebuild records

export const started = (r: RebuildRecord): number => Date.parse(r.time);
export const finished = (r: RebuildRecord): number => Date.parse(r.time) + r.durationMs;

/** Successful nixos-rebuild runs of a host, optionally only those after the first `skip` records. */
export async function successes(host: Host, skip = 0): Promise<RebuildRecord[]> {
  return (await host.rebuildRecords()).slice(skip).filter((r) => r.result === "success");
}

/** Whether nixos-rebuild runs inside the host right now. */
export async function rebuildRunning(host: Host): Promise<boolean> {
  return (await host.processes()).some((p) => p.comm === "nixos-rebuild");
}

/** Pairs of runs (by index) whose time spans overlap: two applies at once on one machine. */
export function overlaps(records: RebuildRecord[]): [number, number][] {
  const out: [number, number][] = [];
  records.forEach((a, i) =>
    records.forEach((b, j) => {
      if (j > i && started(b) < finished(a) && started(a) < finished(b)) out.push([i, j]);
    }),
  );
  return out;
}

// ---- /metrics

/** Metric families (`# TYPE` lines) of an exposition: name → type. */
export function metricTypes(exposition: string): Map<string, string> {
  return new Map([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]));
}

/** Sum of every sample of a series name (all label sets), or undefined when it has no sample. */
export function sampleSum(exposition: string, series: string): number | undefined {
  let sum: number | undefined;
  for (const line of exposition.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)/.exec(line);
    if (m?.[1] === series) sum = (sum ?? 0) + Number(m[2]);
  }
  return sum;
}

/** The sample of one exact series with the given labels (all must match), or undefined. */
export function sample(exposition: string, series: string, labels: Record<string, string>): number | undefined {
  for (const line of exposition.split("\n")) {
    if (!line.startsWith(`${series}{`) && !line.startsWith(`${series} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
      return Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return undefined;
}

// ---- logs

/** Log lines that show a request refused by RBAC (the operators log the API's status code and message). */
export function forbiddenLines(log: string): string[] {
  return log.split("\n").filter((l) => /forbidden|"code":\s*403|"statusCode":\s*403|\b403\b.*(denied|forbid)/i.test(l));
}

/** The `time` of a JSON log line (ms), or undefined. */
function lineTime(line: string): number | undefined {
  const m = /"time":"([^"]+)"/.exec(line);
  return m?.[1] !== undefined ? Date.parse(m[1]) : undefined;
}

/**
 * Every operator's log lines that show a refused request, by operator. `ignore` skips lines logged within a time
 * window (ms since the epoch), e.g. while a restarted API server's authorizer is still warming up: it answers 403
 * until its RBAC caches are filled, which is the API server's behaviour, not the operators'.
 */
export async function forbiddenByOperator(
  s: Stack,
  ignore?: { from: number; to: number },
): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const op of [...s.nio, s.nico] as OperatorProcess[]) {
    const lines = forbiddenLines(await op.log()).filter((l) => {
      const t = lineTime(l);
      return !ignore || t === undefined || t < ignore.from || t > ignore.to;
    });
    if (lines.length > 0) out[op.name] = lines.slice(0, 5);
  }
  return out;
}

/** The Lease's holder identity, or undefined. */
export async function leaseHolder(s: Stack, lease: string): Promise<string | undefined> {
  const out = await s
    .kubectl(["get", "lease", lease, "-n", "nixos-operator-system", "-o", "jsonpath={.spec.holderIdentity}"])
    .catch(() => "");
  return out.trim() === "" ? undefined : out.trim();
}

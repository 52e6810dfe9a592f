// Reads the cluster's world from the API server (admin client, read only) and shows it in a LiveView until a
// condition holds.
import { LABELS } from "@nio/api";
import { machines, nixosConfigurations, type ConfigObject, type MachineObject } from "@nio/nio";
import { kubernetesClusters } from "@nio/nico";
import { isNotFound, type Kube } from "@nio/runtime";
import {
  LiveView,
  formatTable,
  nodeRows,
  snapshotFrame,
  type ClusterObject,
  type Output,
  type Snapshot,
} from "./progress.js";

export async function readSnapshot(kube: Kube, namespace: string, cluster: string): Promise<Snapshot> {
  const [c, configs, ms] = await Promise.all([
    kube.get<ClusterObject>(kubernetesClusters, { namespace, name: cluster }).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    }),
    kube.list<ConfigObject>(nixosConfigurations, { namespace, labelSelector: `${LABELS.cluster}=${cluster}` }),
    kube.list<MachineObject>(machines, { namespace }),
  ]);
  return { cluster: c, configurations: configs.items, machines: ms.items };
}

export interface WatchOptions {
  kube: Kube;
  namespace: string;
  cluster: string;
  out: Output;
  /** Stop watching when this holds. */
  until: (s: Snapshot) => boolean;
  /** Called with every snapshot read (e.g. to record when nodes changed). */
  observe?: (s: Snapshot, at: number) => void;
  timeoutMs: number;
  intervalMs?: number;
  /** Set when the demo is being stopped: the watch ends at once with an error. */
  signal?: AbortSignal;
  tty?: boolean;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });

/** Polls the snapshot, shows it live, and returns the first snapshot for which `until` holds. */
export async function watchCluster(o: WatchOptions): Promise<Snapshot> {
  const view = new LiveView(o.out, { tty: o.tty });
  const deadline = Date.now() + o.timeoutMs;
  let last: Snapshot | undefined;
  try {
    for (;;) {
      if (o.signal?.aborted) throw new Error("interrupted");
      try {
        last = await readSnapshot(o.kube, o.namespace, o.cluster);
      } catch (err) {
        // A passing API hiccup must not end the demo; the deadline still bounds the wait.
        if (Date.now() > deadline) throw err;
        await sleep(o.intervalMs ?? 500, o.signal);
        continue;
      }
      o.observe?.(last, Date.now());
      view.update(snapshotFrame(last, o.cluster));
      if (o.until(last)) return last;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${o.timeoutMs / 1000} s; last state:\n${formatTable(nodeRows(last)).join("\n")}`,
        );
      }
      await sleep(o.intervalMs ?? 500, o.signal);
    }
  } finally {
    view.stop();
  }
}

/** Every node of the cluster is Ready at `commit` (and the cluster says so). */
export function clusterReadyAt(s: Snapshot, commit?: string): boolean {
  const c = s.cluster;
  if (c?.status?.phase !== "Ready" || !c.status.kubeconfigSecret) return false;
  if (commit !== undefined && c.status.commit !== commit) return false;
  const nodes = c.status.nodes ?? [];
  if (nodes.length === 0) return false;
  const byMachine = new Map(s.configurations.map((x) => [x.spec.machineRef.name, x]));
  return nodes.every((n) => {
    const cfg = byMachine.get(n.machine);
    return n.ready === true && cfg?.status?.appliedCommit === c.status?.commit;
  });
}

/** The cluster is gone and no Machine carries its claim label any more. */
export function clusterReleased(s: Snapshot, cluster: string): boolean {
  return (
    s.cluster === undefined &&
    s.configurations.length === 0 &&
    s.machines.every((m) => m.metadata.labels?.[LABELS.cluster] !== cluster)
  );
}

import { Counter, Gauge, type Registry } from "prom-client";

/** NICO's own metrics (reconcile, work queue and API metrics come from the runtime with the `nico` prefix). */
export interface NicoMetrics {
  clustersTotal: Gauge<"phase">;
  clusterNodes: Gauge<"cluster" | "role" | "state">;
  machineClaims: Counter<"result">;
  /** Drops every series of a deleted cluster. */
  forgetCluster(cluster: string): void;
}

export function createNicoMetrics(registry: Registry): NicoMetrics {
  const registers = [registry];
  const clusterNodes = new Gauge({
    name: "nico_cluster_nodes",
    help: "Nodes per cluster by role and state (ready, notready).",
    labelNames: ["cluster", "role", "state"] as const,
    registers,
  });
  return {
    clustersTotal: new Gauge({
      name: "nico_clusters_total",
      help: "KubernetesClusters managed by NICO, by phase.",
      labelNames: ["phase"] as const,
      registers,
    }),
    clusterNodes,
    machineClaims: new Counter({
      name: "nico_machine_claims_total",
      help: "Machine claim operations by result (claimed, released, conflict).",
      labelNames: ["result"] as const,
      registers,
    }),
    forgetCluster(cluster) {
      clusterNodes.remove({ cluster, role: "control-plane", state: "ready" });
      clusterNodes.remove({ cluster, role: "control-plane", state: "notready" });
      clusterNodes.remove({ cluster, role: "worker", state: "ready" });
      clusterNodes.remove({ cluster, role: "worker", state: "notready" });
    },
  };
}

import { Counter, Gauge, type Registry } from "prom-client";

/** NICO's own metrics (reconcile, work queue and API metrics come from the runtime with the `nico` prefix). */
export interface NicoMetrics {
  clustersTotal: Gauge<"phase">;
  clusterNodes: Gauge<"namespace" | "cluster" | "role" | "state">;
  machineClaims: Counter<"result">;
  /** Drops every series of a deleted cluster. */
  forgetCluster(namespace: string, cluster: string): void;
}

export function createNicoMetrics(registry: Registry): NicoMetrics {
  const registers = [registry];
  const clusterNodes = new Gauge({
    name: "nico_cluster_nodes",
    help: "Nodes per cluster (namespace, cluster) by role and state (ready, notready).",
    labelNames: ["namespace", "cluster", "role", "state"] as const,
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
      help: "Machine claims by result: claimed, released, conflict (a claim given up: the Machine belongs to another cluster, or kept changing under retries).",
      labelNames: ["result"] as const,
      registers,
    }),
    forgetCluster(namespace, cluster) {
      for (const role of ["control-plane", "worker"]) {
        for (const state of ["ready", "notready"]) clusterNodes.remove({ namespace, cluster, role, state });
      }
    },
  };
}

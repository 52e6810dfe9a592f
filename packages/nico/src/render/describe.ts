/** From a topology field back to the field of the user's objects (KubernetesCluster, Machine) to fix. */
import type { ClusterTopology, TopologyError } from "./topology.js";

/**
 * Where a topology error comes from, in the user's objects: `name` is the cluster's `metadata.name`, `vip` and
 * `network.*` are under `spec.`, `controlPlane` is `spec.controlPlane`, a node's `name`/`ip` is the Machine's
 * `metadata.name`/`spec.ipAddress`. Returns e.g. "Machine cp-02 spec.ipAddress (controlPlane[1].ip)".
 */
export function sourceField(field: string, t: ClusterTopology): string {
  const node = /^(controlPlane|workers)\[(\d+)\]\.(name|ip)$/.exec(field);
  if (node) {
    const list = node[1] === "controlPlane" ? t.controlPlane : t.workers;
    const machine = list[Number(node[2])]?.name ?? "?";
    return `Machine ${machine} ${node[3] === "ip" ? "spec.ipAddress" : "metadata.name"} (${field})`;
  }
  if (field === "name") return "metadata.name";
  if (field === "vip" || field === "controlPlane" || field.startsWith("network")) return `spec.${field}`;
  return field;
}

/** One line per error, naming the user's field: "spec.network.prefixLength: must be ... [prefixLength]". */
export function describeTopologyErrors(errors: readonly TopologyError[], t: ClusterTopology): string[] {
  return errors.map((e) => `${sourceField(e.field, t)}: ${e.message} [${e.rule}]`);
}

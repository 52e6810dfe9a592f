import { KUBERNETES_CLUSTER, type KubernetesCluster } from "@nio/api";
import type { KubeObject, ResourceType } from "@nio/runtime";

export { machines, nixosConfigurations, secrets } from "@nio/nio";
export type { ConfigObject, MachineObject, SecretObject } from "@nio/nio";

export const kubernetesClusters: ResourceType = {
  group: KUBERNETES_CLUSTER.group,
  version: KUBERNETES_CLUSTER.version,
  plural: KUBERNETES_CLUSTER.plural,
  kind: KUBERNETES_CLUSTER.kind,
  namespaced: true,
};
export const configMaps: ResourceType = {
  group: "",
  version: "v1",
  plural: "configmaps",
  kind: "ConfigMap",
  namespaced: true,
};

export type ClusterObject = KubernetesCluster & KubeObject;

export interface ConfigMapObject extends KubeObject {
  data?: Record<string, string>;
}

/** Names of the objects NICO derives from a cluster. */
export const names = {
  configuration: (cluster: string, machine: string): string => `${cluster}-${machine}`,
  joinToken: (cluster: string): string => `${cluster}-join-token`,
  kubeconfig: (cluster: string): string => `${cluster}-kubeconfig`,
  topology: (cluster: string): string => `${cluster}-topology`,
};

export const nsName = (o: { metadata: { namespace?: string; name?: string } }): string =>
  `${o.metadata.namespace ?? ""}/${o.metadata.name ?? ""}`;

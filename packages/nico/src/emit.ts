import { createHash } from "node:crypto";
import {
  DEFAULT_SSH_KEY_SECRET_KEY,
  LABELS,
  NIXOS_CONFIGURATION,
  type NixosConfigurationSpec,
  type NodeRole,
} from "@nio/api";
import { setControllerReference } from "@nio/runtime";
import { kubernetesClusters, names, type ClusterObject, type ConfigObject, type MachineObject } from "./resources.js";
import { JOIN_TOKEN_KEY, JOIN_TOKEN_PATH } from "./token.js";

/** Annotation on emitted configurations: digest of their spec without `suspend` (what the rollout compares). */
export const DESIRED_HASH_ANNOTATION = "nico.homystack.com/desired-hash";
/** Where the node's own SSH private key goes (inter-node SSH, seed). */
export const NODE_SSH_KEY_PATH = "/root/.ssh/id_ed25519";
export const CLUSTER_NIX = "cluster.nix";
export const MINIMAL_FLAKE = "#minimal";

export interface NodeIntent {
  machine: MachineObject;
  role: NodeRole;
  index: number;
}

/** The spec of a node's configuration, apart from `suspend` (decided by the rollout). */
export function nodeSpec(
  cluster: ClusterObject,
  node: NodeIntent,
  commit: string,
  clusterNix: string,
): Omit<NixosConfigurationSpec, "suspend"> {
  const c = cluster.spec;
  const m = node.machine;
  const name = m.metadata.name ?? "";
  const hostFiles: NonNullable<NixosConfigurationSpec["hostFiles"]> = [
    {
      path: JOIN_TOKEN_PATH,
      mode: "0400",
      value: { secretRef: { name: names.joinToken(cluster.metadata.name ?? ""), key: JOIN_TOKEN_KEY } },
    },
  ];
  const keyRef = m.spec.sshKeySecretRef;
  if (keyRef) {
    hostFiles.push({
      path: NODE_SSH_KEY_PATH,
      mode: "0600",
      value: { secretRef: { name: keyRef.name, key: keyRef.key ?? DEFAULT_SSH_KEY_SECRET_KEY } },
    });
  }
  return {
    gitRepo: c.gitRepo,
    ref: commit,
    ...(c.credentialsRef ? { credentialsRef: c.credentialsRef } : {}),
    ...(c.configurationSubdir ? { configurationSubdir: c.configurationSubdir } : {}),
    flake: `#${name}`,
    onRemoveFlake: MINIMAL_FLAKE,
    fullInstall: c.fullInstall ?? false,
    machineRef: { name },
    additionalFiles: [{ path: CLUSTER_NIX, value: { inline: clusterNix } }],
    hostFiles,
  };
}

export function specHash(spec: object): string {
  return createHash("sha256").update(stableJson(spec)).digest("hex").slice(0, 32);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(",")}]`;
  if (v && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

/** The complete object NICO server-side-applies for a node. */
export function desiredConfiguration(
  cluster: ClusterObject,
  node: NodeIntent,
  spec: Omit<NixosConfigurationSpec, "suspend">,
  suspend: boolean,
  hash: string = specHash(spec),
): ConfigObject {
  const clusterName = cluster.metadata.name ?? "";
  const cfg: ConfigObject = {
    apiVersion: NIXOS_CONFIGURATION.apiVersion,
    kind: NIXOS_CONFIGURATION.kind,
    metadata: {
      name: names.configuration(clusterName, node.machine.metadata.name ?? ""),
      namespace: cluster.metadata.namespace,
      labels: { [LABELS.cluster]: clusterName, [LABELS.role]: node.role },
      annotations: { [DESIRED_HASH_ANNOTATION]: hash },
    },
    spec: { ...spec, suspend },
  };
  return setControllerReference(cfg, cluster, kubernetesClusters);
}

import { createHash } from "node:crypto";
import { DEFAULT_SSH_KEY_SECRET_KEY } from "@nio/api";
import { secretValue } from "@nio/nio";
import type { Informer } from "@nio/runtime";
import { publicKeyFromPrivate, type ClusterTopology } from "./render/index.js";
import type { ClusterObject, MachineObject, SecretObject } from "./resources.js";

/** A Machine's SSH private key from its sshKeySecretRef, or undefined when it has none. */
export type PrivateKeyLookup = (m: MachineObject) => Buffer | undefined;

export function privateKeyFromCache(secrets: Informer<SecretObject>): PrivateKeyLookup {
  return (m) => {
    const ref = m.spec.sshKeySecretRef;
    if (!ref) return undefined;
    return secretValue(secrets, m.metadata.namespace ?? "", ref.name, ref.key ?? DEFAULT_SSH_KEY_SECRET_KEY);
  };
}

const publicKeys = new Map<string, string>();

/** Memoized by the key's digest: many Machines usually share one key Secret, and parsing keys is not free. */
function publicKeyOf(privateKey: Buffer): string {
  const id = createHash("sha256").update(privateKey).digest("hex");
  let pub = publicKeys.get(id);
  if (pub === undefined) {
    pub = publicKeyFromPrivate(privateKey);
    if (publicKeys.size > 1000) publicKeys.clear();
    publicKeys.set(id, pub);
  }
  return pub;
}

/** What cluster.nix says about the cluster: nodes in rollout order, network from the spec, every node's public key. */
export function buildTopology(
  cluster: ClusterObject,
  nodes: { controlPlane: MachineObject[]; workers: MachineObject[] },
  initialized: boolean,
  privateKey: PrivateKeyLookup,
): ClusterTopology {
  const net = cluster.spec.network;
  const node = (m: MachineObject): { name: string; ip: string } => ({
    name: m.metadata.name ?? "",
    ip: m.spec.ipAddress ?? "",
  });
  const keys = new Set<string>();
  for (const m of [...nodes.controlPlane, ...nodes.workers]) {
    const key = privateKey(m);
    if (key) keys.add(publicKeyOf(key));
  }
  return {
    name: cluster.metadata.name ?? "",
    vip: cluster.spec.vip ?? null,
    initialized,
    network: {
      interface: net?.interface ?? "eth0",
      prefixLength: net?.prefixLength ?? 24,
      gateway: net?.gateway ?? null,
      nameservers: net?.nameservers ?? [],
      virtualRouterId: net?.virtualRouterId ?? 51,
    },
    controlPlane: nodes.controlPlane.map(node),
    workers: nodes.workers.map(node),
    authorizedKeys: [...keys].sort(),
  };
}

/** The API endpoint: the VIP when set, else the first control-plane node. */
export function clusterEndpoint(t: Pick<ClusterTopology, "vip" | "controlPlane">): string | undefined {
  const host = t.vip ?? t.controlPlane[0]?.ip;
  if (!host) return undefined;
  return host.includes(":") ? `https://[${host}]:6443` : `https://${host}:6443`;
}

import { LABELS } from "@nio/api";
import { ssh as sshApi, expectedHostKey, machineTarget, usesSudo } from "@nio/nio";
import { WaitingError, applyObject, setControllerReference, type Informer, type Kube } from "@nio/runtime";
import { parse, stringify } from "yaml";
import {
  kubernetesClusters,
  names,
  secrets,
  type ClusterObject,
  type MachineObject,
  type SecretObject,
} from "./resources.js";

export const K3S_KUBECONFIG_PATH = "/etc/rancher/k3s/k3s.yaml";
export const KUBECONFIG_KEY = "value";

interface KubeconfigDoc {
  clusters?: { name?: string; cluster?: { server?: string } }[];
}

/** Points every cluster entry of a k3s admin kubeconfig at `endpoint` (the VIP), keeping everything else. */
export function rewriteServer(kubeconfig: string, endpoint: string): string {
  const doc = parse(kubeconfig) as KubeconfigDoc | null;
  if (!doc || typeof doc !== "object" || !Array.isArray(doc.clusters) || doc.clusters.length === 0) {
    throw new Error(`${K3S_KUBECONFIG_PATH} is not a kubeconfig with clusters`);
  }
  for (const c of doc.clusters) {
    if (c.cluster) c.cluster.server = endpoint;
  }
  return stringify(doc);
}

/** Reads the admin kubeconfig from `machine` over SSH, verifying the host key NIO recorded or the one pinned. */
export async function fetchKubeconfig(
  connector: sshApi.SshConnector,
  machine: MachineObject,
  secretCache: Informer<SecretObject>,
  timeoutMs: number,
): Promise<string> {
  const expected = expectedHostKey(machine);
  const name = machine.metadata.name ?? "";
  if (!expected)
    throw new WaitingError("KubeconfigUnavailable", `Machine ${name} has no recorded SSH host key yet`, 15_000);
  if (!machine.spec.sshKeySecretRef) {
    throw new WaitingError(
      "KubeconfigUnavailable",
      `Machine ${name} has no spec.sshKeySecretRef to read the kubeconfig with`,
      15_000,
    );
  }
  const target = await machineTarget(machine, secretCache, { defaultSshKeyPath: undefined });
  const session = await connector.connect(target, { expected }, { timeoutMs });
  try {
    const data = await session.readFile(K3S_KUBECONFIG_PATH, { sudo: usesSudo(machine), maxBytes: 1 << 20 });
    return data.toString("utf8");
  } finally {
    session.close();
  }
}

/** Stores the kubeconfig in `<cluster>-kubeconfig` (key value), owned by the cluster; written only when it changed. */
export async function storeKubeconfig(
  kube: Kube,
  cache: Informer<SecretObject>,
  cluster: ClusterObject,
  kubeconfig: string,
): Promise<{ name: string; changed: boolean }> {
  const ns = cluster.metadata.namespace ?? "";
  const name = names.kubeconfig(cluster.metadata.name ?? "");
  const value = Buffer.from(kubeconfig).toString("base64");
  const current = cache.get(`${ns}/${name}`);
  if (current?.data?.[KUBECONFIG_KEY] === value) return { name, changed: false };
  const secret: SecretObject = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: ns, labels: { [LABELS.cluster]: cluster.metadata.name ?? "" } },
    type: "Opaque",
    data: { [KUBECONFIG_KEY]: value },
  };
  setControllerReference(secret, cluster, kubernetesClusters);
  await applyObject(kube, secrets, secret, { fieldManager: "nico", force: true, current: current ?? null });
  return { name, changed: true };
}

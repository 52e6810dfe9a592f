// What the stack seeds, as plain manifests: the Secrets, the Machines and the KubernetesCluster of seed 003 pointed at
// the testbed (its hosts, its git server).
import type { Host } from "@nio/testbed";

/** Where the seed's objects live. */
export const SEED_NAMESPACE = "default";
export const SSH_KEY_SECRET = "machine-ssh-key";
export const GIT_CREDENTIALS_SECRET = "git-credentials";
export const DEFAULT_CLUSTER_NAME = "prod-cluster";

export interface SeedOptions {
  /** Control-plane Machines (default: the hosts named cp-…, else the first host). */
  controlPlane?: string[];
  /** Worker Machines (default: the hosts named worker-…, else every host but the control plane). */
  workers?: string[];
  /** spec.vip (default none: the endpoint is the first control-plane node). */
  vip?: string;
  /** Default "prod-cluster" (seed 003). */
  clusterName?: string;
  /** spec.dataPlane.count (default workers.length). */
  workerCount?: number;
}

/** A manifest as kubectl takes it. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** The default split of host names into control plane and workers. */
export function defaultRoles(hosts: readonly string[]): { controlPlane: string[]; workers: string[] } {
  const cp = hosts.filter((h) => /^cp-/.test(h));
  const workers = hosts.filter((h) => /^worker-/.test(h));
  if (cp.length > 0) return { controlPlane: cp, workers };
  const [first, ...rest] = hosts;
  return { controlPlane: first === undefined ? [] : [first], workers: rest };
}

const b64 = (s: string | Buffer): string => Buffer.from(s).toString("base64");

export function seedSecrets(privateKey: Buffer, gitToken: string): Manifest[] {
  return [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: SSH_KEY_SECRET, namespace: SEED_NAMESPACE },
      type: "Opaque",
      data: { "ssh-privatekey": b64(privateKey) },
    },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: GIT_CREDENTIALS_SECRET, namespace: SEED_NAMESPACE },
      type: "Opaque",
      data: { token: b64(gitToken) },
    },
  ];
}

/** A Machine as in seed 003 (hostname <name>.local, root, machine-ssh-key), on a testbed host. */
export function seedMachine(host: Host, role: "control-plane" | "worker"): Manifest {
  return {
    apiVersion: "nio.homystack.com/v1alpha1",
    kind: "Machine",
    metadata: { name: host.name, namespace: SEED_NAMESPACE, labels: { role } },
    spec: {
      hostname: `${host.name}.local`,
      ipAddress: host.address,
      sshPort: host.port,
      sshUser: "root",
      sshKeySecretRef: { name: SSH_KEY_SECRET },
    },
  };
}

/** Seed 003's KubernetesCluster, with gitRepo on the testbed's git server and its credentials. */
export function seedCluster(
  repoUrl: string,
  opts: { name: string; controlPlane: number; workers: number; vip?: string },
): Manifest {
  return {
    apiVersion: "nico.homystack.com/v1alpha1",
    kind: "KubernetesCluster",
    metadata: { name: opts.name, namespace: SEED_NAMESPACE },
    spec: {
      gitRepo: repoUrl,
      credentialsRef: { name: GIT_CREDENTIALS_SECRET },
      configurationSubdir: "nix",
      controlPlane: { machineSelector: { matchLabels: { role: "control-plane" } }, count: opts.controlPlane },
      dataPlane: { machineSelector: { matchLabels: { role: "worker" } }, count: opts.workers },
      ...(opts.vip !== undefined ? { vip: opts.vip } : {}),
    },
  };
}

/** Every object `Stack.seed` applies, in order. */
export function seedManifests(
  hosts: readonly Host[],
  secrets: { privateKey: Buffer; gitToken: string; repoUrl: string },
  opts: SeedOptions = {},
): Manifest[] {
  const defaults = defaultRoles(hosts.map((h) => h.name));
  const controlPlane = opts.controlPlane ?? defaults.controlPlane;
  const workers = opts.workers ?? defaults.workers;
  const host = (name: string): Host => {
    const h = hosts.find((x) => x.name === name);
    if (!h) throw new Error(`seed: no testbed host called ${name}`);
    return h;
  };
  return [
    ...seedSecrets(secrets.privateKey, secrets.gitToken),
    ...controlPlane.map((n) => seedMachine(host(n), "control-plane")),
    ...workers.map((n) => seedMachine(host(n), "worker")),
    seedCluster(secrets.repoUrl, {
      name: opts.clusterName ?? DEFAULT_CLUSTER_NAME,
      controlPlane: controlPlane.length,
      workers: opts.workerCount ?? workers.length,
      ...(opts.vip !== undefined ? { vip: opts.vip } : {}),
    }),
  ];
}

import { randomBytes } from "node:crypto";
import { FINALIZERS, LABELS } from "@nio/api";
import {
  StalledError,
  isAlreadyExists,
  removeFinalizer,
  setControllerReference,
  type Informer,
  type Kube,
} from "@nio/runtime";
import { kubernetesClusters, names, secrets, type ClusterObject, type SecretObject } from "./resources.js";

/** Key of the join token in `<cluster>-join-token`. */
export const JOIN_TOKEN_KEY = "token";
/** Where the nodes find the token (a host file, root-only; the flake reads it by this path string). */
export const JOIN_TOKEN_PATH = "/var/lib/nico/join-token";
const TOKEN_BYTES = 32;

export function newJoinToken(): string {
  return randomBytes(TOKEN_BYTES).toString("hex");
}

/**
 * Makes sure `<cluster>-join-token` exists with a CSPRNG token (created once, never regenerated: the running
 * cluster was bootstrapped with it). The Secret is owned by the cluster and carries NICO's finalizer, so garbage
 * collection cannot take it while the nodes are still being cleaned up; NICO removes the finalizer last.
 */
export async function ensureJoinToken(
  kube: Kube,
  cache: Informer<SecretObject>,
  cluster: ClusterObject,
): Promise<{ name: string; created: boolean }> {
  const ns = cluster.metadata.namespace ?? "";
  const name = names.joinToken(cluster.metadata.name ?? "");
  const existing = cache.get(`${ns}/${name}`);
  if (existing) {
    checkToken(existing, name);
    return { name, created: false };
  }
  const secret: SecretObject = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name,
      namespace: ns,
      labels: { [LABELS.cluster]: cluster.metadata.name ?? "" },
      finalizers: [FINALIZERS.nico],
    },
    type: "Opaque",
    data: { [JOIN_TOKEN_KEY]: Buffer.from(newJoinToken()).toString("base64") },
  };
  setControllerReference(secret, cluster, kubernetesClusters);
  try {
    await kube.create(secrets, secret, { fieldManager: "nico" });
  } catch (err) {
    // Created by an earlier attempt whose response we lost, or by another replica: the cache catches up.
    if (!isAlreadyExists(err)) throw err;
    return { name, created: false };
  }
  return { name, created: true };
}

function checkToken(s: SecretObject, name: string): void {
  const raw = s.data?.[JOIN_TOKEN_KEY];
  const token = raw ? Buffer.from(raw, "base64").toString("utf8") : "";
  if (token.length < TOKEN_BYTES) {
    throw new StalledError(
      "InvalidSpec",
      `Secret ${name}: key ${JOIN_TOKEN_KEY} must hold a join token of at least ${TOKEN_BYTES} characters (delete the Secret to let NICO generate one)`,
    );
  }
}

/** The last cleanup step: lets garbage collection take the join token. */
export async function releaseJoinToken(
  kube: Kube,
  cache: Informer<SecretObject>,
  cluster: ClusterObject,
): Promise<void> {
  const s = cache.get(`${cluster.metadata.namespace ?? ""}/${names.joinToken(cluster.metadata.name ?? "")}`);
  if (s?.metadata.finalizers?.includes(FINALIZERS.nico)) await removeFinalizer(kube, secrets, s, FINALIZERS.nico);
}

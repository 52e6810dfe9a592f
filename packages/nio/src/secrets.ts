import { Reason } from "@nio/api";
import { WaitingError, type Informer } from "@nio/runtime";
import type { SecretObject } from "./resources.js";

/** How long to wait before looking again for a Secret that does not exist (its creation also triggers a reconcile). */
export const SECRET_RETRY_MS = 30_000;

/** The bytes of `key` in Secret `namespace/name`, from the informer cache; a missing Secret or key is a wait. */
export function secretValue(cache: Informer<SecretObject>, namespace: string, name: string, key: string): Buffer {
  const secret = cache.get(`${namespace}/${name}`);
  if (!secret) {
    throw new WaitingError(Reason.SecretNotFound, `Secret ${namespace}/${name} not found`, SECRET_RETRY_MS);
  }
  const value = secret.data?.[key];
  if (value === undefined) {
    const keys = Object.keys(secret.data ?? {}).join(", ") || "none";
    throw new WaitingError(
      Reason.SecretNotFound,
      `Secret ${namespace}/${name} has no key "${key}" (keys: ${keys})`,
      SECRET_RETRY_MS,
    );
  }
  return Buffer.from(value, "base64");
}

/** `namespace/name` keys of Secrets, for the index that maps a Secret change to the objects that use it. */
export function secretKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

/**
 * Git credentials from a `credentialsRef` Secret (key `token`, optional `username`), or undefined without a ref.
 * A missing Secret or token is a WaitingError.
 */
export function gitAuthFromSecret(
  cache: Informer<SecretObject>,
  namespace: string,
  ref: { name: string } | undefined,
): { token: string; username?: string } | undefined {
  if (!ref) return undefined;
  const token = secretValue(cache, namespace, ref.name, "token").toString("utf8").trim();
  const username = cache.get(`${namespace}/${ref.name}`)?.data?.username;
  return username ? { token, username: Buffer.from(username, "base64").toString("utf8").trim() } : { token };
}

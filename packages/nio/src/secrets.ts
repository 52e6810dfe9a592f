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

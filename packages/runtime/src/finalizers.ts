import type { Kube } from "./kube/client.js";
import { isConflict, isNotFound } from "./kube/errors.js";
import type { KubeObject, ResourceType } from "./kube/types.js";

export interface FinalizerOptions {
  /** Attempts after the first one when the object changed concurrently (Conflict); each re-reads it. Default 5. */
  maxRetries?: number;
  /** Receives the object as the server returned it after the write (e.g. to continue with its resourceVersion). */
  onPatched?: (obj: KubeObject) => void;
}

const DEFAULT_RETRIES = 5;

export function hasFinalizer(obj: KubeObject, name: string): boolean {
  return obj.metadata.finalizers?.includes(name) ?? false;
}

/**
 * Adds finalizer `name` unless it is there. Returns true when it was added (the caller usually returns and lets the
 * resulting watch event start the next pass), false when nothing had to be done (no request is made then).
 *
 * The write is a JSON patch that first sets `metadata.resourceVersion` to the one read: the API server turns a
 * mismatch into a 409 Conflict, so a concurrent writer's finalizers are never overwritten. On Conflict the object is
 * re-read and the change retried (bounded). An object that is already being deleted gets no new finalizer (the API
 * server forbids it): false is returned.
 *
 * (A JSON patch `test` op would also guard the write, but a failed test comes back as an indistinguishable
 * 422 Invalid; the resourceVersion precondition gives a proper, typed Conflict.)
 */
export async function ensureFinalizer(
  kube: Kube,
  res: ResourceType,
  obj: KubeObject,
  name: string,
  opts: FinalizerOptions = {},
): Promise<boolean> {
  return updateFinalizers(kube, res, obj, opts, (o) => {
    if (hasFinalizer(o, name) || o.metadata.deletionTimestamp) return undefined;
    return [...(o.metadata.finalizers ?? []), name];
  });
}

/**
 * Removes finalizer `name` if present. Returns true when this call removed it; false when it was not there (no
 * request) or the object is already gone (404 counts as success: there is nothing left to finalize).
 * Same concurrency guard and Conflict retries as {@link ensureFinalizer}.
 */
export async function removeFinalizer(
  kube: Kube,
  res: ResourceType,
  obj: KubeObject,
  name: string,
  opts: FinalizerOptions = {},
): Promise<boolean> {
  try {
    return await updateFinalizers(kube, res, obj, opts, (o) => {
      if (!hasFinalizer(o, name)) return undefined;
      return (o.metadata.finalizers ?? []).filter((f) => f !== name);
    });
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** `desired` returns the new finalizer list, or undefined when the object is already as wanted. */
async function updateFinalizers(
  kube: Kube,
  res: ResourceType,
  obj: KubeObject,
  opts: FinalizerOptions,
  desired: (o: KubeObject) => string[] | undefined,
): Promise<boolean> {
  const maxRetries = opts.maxRetries ?? DEFAULT_RETRIES;
  const key = { namespace: obj.metadata.namespace, name: obj.metadata.name ?? "" };
  let current = obj;
  for (let attempt = 0; ; attempt++) {
    const finalizers = desired(current);
    if (finalizers === undefined) return false;
    try {
      const updated = await kube.patch<KubeObject>(res, key, finalizerPatch(current, finalizers), "json");
      opts.onPatched?.(updated);
      return true;
    } catch (err) {
      if (!isConflict(err) || attempt >= maxRetries) throw err;
    }
    current = await kube.get<KubeObject>(res, key);
  }
}

function finalizerPatch(obj: KubeObject, finalizers: string[]): unknown[] {
  const rv = obj.metadata.resourceVersion;
  if (!rv) throw new TypeError(`object ${obj.metadata.name ?? ""} has no resourceVersion; read it from the API first`);
  // "add" replaces an existing member and also works when the server's copy has no finalizers at all (where
  // "replace"/"remove" would fail before the resourceVersion precondition is even checked).
  const change = { op: "add", path: "/metadata/finalizers", value: finalizers };
  return [{ op: "replace", path: "/metadata/resourceVersion", value: rv }, change];
}

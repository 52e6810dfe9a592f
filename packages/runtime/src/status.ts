import type { Kube } from "./kube/client.js";
import type { KubeObject, ResourceType } from "./kube/types.js";

/** A deep copy to diff against later (take it right after reading the object, before any mutation). */
export function snapshot<T>(obj: T): T {
  return structuredClone(obj);
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Deep equality with JSON semantics: key order is ignored, and a key whose value is `undefined` counts as absent
 * (it would not survive serialisation). Arrays compare element by element, in order. Deterministic; no coercion.
 */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => deepEqual(v, b[i]));
  }
  if (!isPlainObject(a) || !isPlainObject(b)) return Number.isNaN(a) && Number.isNaN(b);
  const ka = definedKeys(a);
  const kb = definedKeys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
}

function definedKeys(o: Record<string, unknown>): string[] {
  return Object.keys(o).filter((k) => o[k] !== undefined);
}

/**
 * The JSON merge patch (RFC 7386) that turns `before` into `after`, or `undefined` when they are equal.
 * Removed keys become `null`; arrays (e.g. `conditions`) are replaced whole, as merge patch requires.
 */
export function mergePatchFor(before: unknown, after: unknown): Json | undefined {
  if (deepEqual(before, after)) return undefined;
  if (!isPlainObject(before) || !isPlainObject(after)) return toJson(after);
  const patch: Record<string, Json> = {};
  for (const key of definedKeys(before)) {
    if (after[key] === undefined) patch[key] = null;
  }
  for (const key of definedKeys(after)) {
    const sub = mergePatchFor(before[key], after[key]);
    if (sub !== undefined) patch[key] = sub;
  }
  return patch;
}

function toJson(v: unknown): Json {
  return v === undefined ? null : (JSON.parse(JSON.stringify(v)) as Json);
}

export interface PatchStatusOptions {
  fieldManager?: string;
  /**
   * Add `metadata.resourceVersion` of `before` to the patch so the write fails with a Conflict if the object
   * changed since it was read. Off by default: one controller owns the status and the diff only carries what it
   * changed (whole arrays excepted).
   */
  optimisticLock?: boolean;
}

export interface PatchStatusResult<T> {
  /** False when the status was unchanged: then no request was made at all. */
  written: boolean;
  /** The object as the server returned it after the write. */
  object?: T;
  /** The merge patch that was sent (for logs and tests). */
  patch?: Json;
}

/**
 * Writes `after` as the object's status, only through the `/status` subresource and only when it differs from
 * `before.status` (deep compare, key order ignored). An unchanged status makes no request. The body is a JSON
 * merge patch holding only the changed fields; `kube.requestCounts().patch` counts the writes.
 */
export async function patchStatus<T extends KubeObject & { status?: unknown }>(
  kube: Kube,
  res: ResourceType,
  before: T,
  after: NonNullable<T["status"]>,
  opts: PatchStatusOptions = {},
): Promise<PatchStatusResult<T>> {
  const diff = mergePatchFor(before.status ?? {}, after);
  if (diff === undefined || (isPlainObject(diff) && Object.keys(diff).length === 0)) return { written: false };
  const name = before.metadata.name;
  if (!name) throw new TypeError("patchStatus: object has no metadata.name");
  const patch: Record<string, Json> = { status: diff };
  if (opts.optimisticLock && before.metadata.resourceVersion) {
    patch.metadata = { resourceVersion: before.metadata.resourceVersion };
  }
  const object = await kube.patch<T>(res, { namespace: before.metadata.namespace, name }, patch, "merge", {
    subresource: "status",
    ...(opts.fieldManager ? { fieldManager: opts.fieldManager } : {}),
  });
  return { written: true, object, patch };
}

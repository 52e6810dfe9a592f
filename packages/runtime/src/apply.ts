import { TransientError } from "./errors.js";
import type { Kube } from "./kube/client.js";
import { isAlreadyExists, isConflict, isNotFound, KubeApiError } from "./kube/errors.js";
import {
  resourceApiVersion,
  type KubeObject,
  type ObjectKey,
  type OwnerReference,
  type ResourceType,
} from "./kube/types.js";
import { mergePatchFor, snapshot } from "./status.js";

export type OperationResult = "created" | "updated" | "unchanged";

export interface ApplyOptions {
  fieldManager: string;
  /** Take over fields another manager owns instead of failing with {@link ApplyConflictError}. */
  force?: boolean;
  /**
   * The object as last seen (e.g. from an informer cache); `null` means "known not to exist". When omitted the
   * object is read first (one extra GET) to tell created/updated/unchanged apart.
   */
  current?: KubeObject | null;
}

export interface ApplyResult<T> {
  object: T;
  result: OperationResult;
}

/** A server-side apply was refused because other field managers own some of the fields (409, not forced). */
export class ApplyConflictError extends TransientError {
  override readonly name: string = "ApplyConflictError";
  /** Conflicting fields, e.g. `.spec.flake`, each with the manager that owns it. */
  readonly conflicts: readonly { field: string; manager: string }[];

  constructor(message: string, conflicts: readonly { field: string; manager: string }[], cause: KubeApiError) {
    super("FieldManagerConflict", message, { cause });
    this.conflicts = conflicts;
  }
}

/** The object is already controlled by another owner (`controller: true` owner reference to someone else). */
export class AlreadyOwnedError extends TransientError {
  override readonly name: string = "AlreadyOwnedError";
  readonly owner: OwnerReference;

  constructor(obj: KubeObject, owner: OwnerReference) {
    super(
      "AlreadyOwned",
      `${obj.kind ?? "object"} ${describe(obj)} is already controlled by ${owner.kind} ${owner.name} (uid ${owner.uid})`,
    );
    this.owner = owner;
  }
}

/** Metadata the server owns; sending it in an apply would be a precondition or an error. */
const SERVER_METADATA = [
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "managedFields",
  "selfLink",
] as const;

/**
 * Server-side apply of `obj` (the complete intent of `fieldManager`: fields it applied before and leaves out now
 * are removed). Server-populated metadata and `status` are stripped from the body.
 *
 * The result compares resourceVersions: `created` when the object did not exist before, `unchanged` when the
 * server kept the resourceVersion (an apply that changes nothing is not written), else `updated`. The "before" is
 * `opts.current` when given (a stale cached copy can turn "unchanged" into "updated", never the reverse), otherwise
 * a GET made first.
 *
 * A field owned by another manager makes the apply fail with {@link ApplyConflictError} unless `force` is set.
 */
export async function applyObject<T extends KubeObject>(
  kube: Kube,
  res: ResourceType,
  obj: T,
  opts: ApplyOptions,
): Promise<ApplyResult<T>> {
  const name = obj.metadata.name;
  if (!name) throw new TypeError("applyObject: object has no metadata.name");
  const key = { namespace: res.namespaced ? obj.metadata.namespace : undefined, name };
  const before = opts.current !== undefined ? opts.current : await getOrNull(kube, res, key);
  let object: T;
  try {
    object = await kube.patch<T>(res, key, applyBody(res, obj), "apply", {
      fieldManager: opts.fieldManager,
      force: opts.force ?? false,
    });
  } catch (err) {
    throw toApplyConflict(err) ?? err;
  }
  const result: OperationResult = !before
    ? "created"
    : before.metadata.resourceVersion === object.metadata.resourceVersion
      ? "unchanged"
      : "updated";
  return { object, result };
}

function applyBody(res: ResourceType, obj: KubeObject): KubeObject {
  const { status: _status, ...rest } = obj as KubeObject & { status?: unknown };
  const metadata: Record<string, unknown> = { ...obj.metadata };
  for (const k of SERVER_METADATA) delete metadata[k];
  return { ...rest, apiVersion: obj.apiVersion ?? resourceApiVersion(res), kind: obj.kind ?? res.kind, metadata };
}

function toApplyConflict(err: unknown): ApplyConflictError | undefined {
  if (!(err instanceof KubeApiError) || !isConflict(err)) return undefined;
  const causes = (err.details as { causes?: { reason?: string; message?: string; field?: string }[] } | undefined)
    ?.causes;
  const conflicts = (causes ?? [])
    .filter((c) => c.reason === "FieldManagerConflict")
    .map((c) => ({ field: c.field ?? "", manager: /conflict with "([^"]*)"/.exec(c.message ?? "")?.[1] ?? "" }));
  if (conflicts.length === 0) return undefined;
  return new ApplyConflictError(err.message, conflicts, err);
}

async function getOrNull<T extends KubeObject>(kube: Kube, res: ResourceType, key: ObjectKey): Promise<T | null> {
  try {
    return await kube.get<T>(res, key);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

export interface CreateOrPatchOptions {
  fieldManager?: string;
  /** Re-read and re-mutate this many times when the object changed between read and patch. Default 3. */
  maxRetries?: number;
}

/**
 * controller-runtime's CreateOrPatch: read the object at `key`; if missing, build an empty one (apiVersion, kind,
 * name, namespace), let `mutate` fill it and create it; otherwise let `mutate` change a copy and send a JSON merge
 * patch of the difference only if there is one. `mutate` must be idempotent and must not change name or namespace.
 *
 * `status` is neither created nor patched here (use `patchStatus`). The patch carries the resourceVersion read, so
 * a concurrent change is a Conflict; it is retried by reading and mutating again (bounded).
 */
export async function createOrPatch<T extends KubeObject>(
  kube: Kube,
  res: ResourceType,
  key: ObjectKey,
  mutate: (obj: T) => void | Promise<void>,
  opts: CreateOrPatchOptions = {},
): Promise<OperationResult> {
  const maxRetries = opts.maxRetries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      return await createOrPatchOnce(kube, res, key, mutate, opts);
    } catch (err) {
      if (!(isConflict(err) || isAlreadyExists(err)) || attempt >= maxRetries) throw err;
    }
  }
}

async function createOrPatchOnce<T extends KubeObject>(
  kube: Kube,
  res: ResourceType,
  key: ObjectKey,
  mutate: (obj: T) => void | Promise<void>,
  opts: CreateOrPatchOptions,
): Promise<OperationResult> {
  const writeOpts = opts.fieldManager ? { fieldManager: opts.fieldManager } : {};
  const existing = await getOrNull<T>(kube, res, key);
  if (!existing) {
    const fresh = {
      apiVersion: resourceApiVersion(res),
      kind: res.kind,
      metadata: { name: key.name, ...(res.namespaced && key.namespace ? { namespace: key.namespace } : {}) },
    } as T;
    await mutate(fresh);
    checkKey(fresh, key, res);
    await kube.create(res, fresh, writeOpts);
    return "created";
  }
  const before = snapshot(existing);
  await mutate(existing);
  checkKey(existing, key, res);
  const { status: _a, ...b } = before as KubeObject & { status?: unknown };
  const { status: _b, ...a } = existing as KubeObject & { status?: unknown };
  const diff = mergePatchFor(b, a);
  if (diff === undefined) return "unchanged";
  const diffObj = diff as Record<string, unknown>;
  const metadata = { ...((diffObj.metadata as Record<string, unknown> | undefined) ?? {}) };
  metadata.resourceVersion = before.metadata.resourceVersion;
  const patch = { ...diffObj, metadata };
  await kube.patch(res, key, patch, "merge", writeOpts);
  return "updated";
}

function checkKey(obj: KubeObject, key: ObjectKey, res: ResourceType): void {
  const ns = res.namespaced ? key.namespace : undefined;
  if (obj.metadata.name !== key.name || (res.namespaced && obj.metadata.namespace !== ns)) {
    throw new TypeError("createOrPatch: mutate must not change the object's name or namespace");
  }
}

/** An owner reference marking `owner` (of type `res`) as the managing controller, with `blockOwnerDeletion`. */
export function controllerReference(owner: KubeObject, res: ResourceType): OwnerReference {
  const { name, uid } = owner.metadata;
  if (!name || !uid) throw new TypeError("controllerReference: owner needs metadata.name and metadata.uid");
  return { apiVersion: resourceApiVersion(res), kind: res.kind, name, uid, controller: true, blockOwnerDeletion: true };
}

/**
 * Makes `owner` the controller of `obj` (mutates `obj.metadata.ownerReferences` and returns `obj`). An existing
 * reference to the same owner (same API group, kind and name) is updated in place. Throws
 * {@link AlreadyOwnedError} when another object is already the controller, and a TypeError for a reference
 * Kubernetes would not honour (namespaced owner in another namespace, or a namespaced owner of a cluster-scoped
 * object). `owner` needs `apiVersion` and `kind` unless `ownerRes` is given.
 */
export function setControllerReference<T extends KubeObject>(obj: T, owner: KubeObject, ownerRes?: ResourceType): T {
  const ref = ownerRes ? controllerReference(owner, ownerRes) : referenceFromObject(owner);
  const ownerNs = owner.metadata.namespace;
  if (ownerNs && ownerNs !== obj.metadata.namespace) {
    throw new TypeError(
      `cannot make ${ref.kind} ${describe(owner)} the owner of ${describe(obj)}: cross-namespace owner references are not allowed`,
    );
  }
  const refs = obj.metadata.ownerReferences ?? [];
  const existing = refs.find((r) => r.controller === true);
  if (existing && !sameOwner(existing, ref)) throw new AlreadyOwnedError(obj, existing);
  const i = refs.findIndex((r) => sameOwner(r, ref));
  obj.metadata.ownerReferences = i >= 0 ? refs.map((r, j) => (j === i ? ref : r)) : [...refs, ref];
  return obj;
}

function referenceFromObject(owner: KubeObject): OwnerReference {
  if (!owner.apiVersion || !owner.kind) {
    throw new TypeError("setControllerReference: owner has no apiVersion/kind; pass its ResourceType");
  }
  const { name, uid } = owner.metadata;
  if (!name || !uid) throw new TypeError("setControllerReference: owner needs metadata.name and metadata.uid");
  return { apiVersion: owner.apiVersion, kind: owner.kind, name, uid, controller: true, blockOwnerDeletion: true };
}

function groupOf(apiVersion: string): string {
  const i = apiVersion.indexOf("/");
  return i < 0 ? "" : apiVersion.slice(0, i);
}

function sameOwner(a: OwnerReference, b: OwnerReference): boolean {
  return groupOf(a.apiVersion) === groupOf(b.apiVersion) && a.kind === b.kind && a.name === b.name;
}

function describe(obj: KubeObject): string {
  const { namespace, name } = obj.metadata;
  return namespace ? `${namespace}/${name ?? ""}` : (name ?? "");
}

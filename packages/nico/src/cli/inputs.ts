/**
 * Where `nico render` reads the KubernetesCluster, its namespace's Machines and their SSH key Secrets from: the
 * Kubernetes API, or a multi-document YAML file. Both validate the objects with the API's own validators (and apply
 * the schema defaults), so a file is held to what the API server would accept.
 */
import { readFile } from "node:fs/promises";
import { parseAllDocuments } from "yaml";
import {
  KUBERNETES_CLUSTER,
  MACHINE,
  formatValidationErrors,
  parseKubernetesCluster,
  parseMachine,
  type ValidationError,
} from "@nio/api";
import { isNotFound, type Kube } from "@nio/runtime";
import {
  kubernetesClusters,
  machines as machineResource,
  secrets as secretResource,
  type ClusterObject,
  type MachineObject,
  type SecretObject,
} from "../resources.js";
import { DEFAULT_NAMESPACE } from "./args.js";

export interface RenderInputs {
  cluster: ClusterObject;
  /** The Machines of the cluster's namespace (selection happens later). */
  machines: MachineObject[];
  /** The Secret `name` of the cluster's namespace, or undefined when there is none. */
  secret(name: string): Promise<SecretObject | undefined>;
  /** Where the objects came from, for messages. */
  origin: string;
  warnings: string[];
}

/** A problem with the input objects (exit code 1). */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

function invalid(what: string, errors: readonly ValidationError[]): InputError {
  return new InputError(`${what} is invalid:\n  ${errors.map((e) => e.message).join("\n  ")}`);
}

// ------------------------------------------------------------------------------------------------------ API

/** Reads the cluster and the Machines of its namespace; Secrets are read one by one, only those asked for. */
export async function loadFromApi(kube: Kube, namespace: string, name: string): Promise<RenderInputs> {
  const what = `KubernetesCluster ${namespace}/${name}`;
  let raw: ClusterObject;
  try {
    raw = await kube.get<ClusterObject>(kubernetesClusters, { namespace, name });
  } catch (err) {
    if (isNotFound(err)) throw new InputError(`${what} not found`);
    throw err;
  }
  const cluster = parseKubernetesCluster(raw);
  if (!cluster.ok) throw invalid(what, cluster.errors);
  const list = await kube.list<MachineObject>(machineResource, { namespace });
  const warnings: string[] = [];
  const machines: MachineObject[] = [];
  for (const m of list.items) {
    const parsed = parseMachine(m);
    if (parsed.ok) machines.push({ ...parsed.value, metadata: m.metadata });
    else warnings.push(`ignoring Machine ${m.metadata.name ?? "?"}: ${formatValidationErrors(parsed.errors)}`);
  }
  const secret = async (secretName: string): Promise<SecretObject | undefined> => {
    try {
      return await kube.get<SecretObject>(secretResource, { namespace, name: secretName });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  return {
    cluster: { ...cluster.value, metadata: raw.metadata },
    machines,
    secret,
    origin: `the API (${what})`,
    warnings,
  };
}

// ----------------------------------------------------------------------------------------------------- file

interface RawObject {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { name?: unknown; namespace?: unknown };
  items?: unknown;
  [key: string]: unknown;
}

interface Located {
  obj: RawObject;
  /** "cluster.yaml document 3". */
  where: string;
}

function isObject(v: unknown): v is RawObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Every object of the file (documents, and the items of `kind: List` documents) with where it is. */
function fileObjects(text: string, file: string): Located[] {
  const out: Located[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    const where = `${file} document ${i + 1}`;
    if (doc.errors.length > 0) throw new InputError(`${where}: ${doc.errors.map((e) => e.message).join("; ")}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return;
    if (!isObject(value)) throw new InputError(`${where}: expected a Kubernetes object (a mapping)`);
    if (value.kind === "List" && Array.isArray(value.items)) {
      value.items.forEach((item: unknown, j) => {
        if (!isObject(item)) throw new InputError(`${where} item ${j + 1}: expected a Kubernetes object`);
        out.push({ obj: item, where: `${where} item ${j + 1}` });
      });
    } else {
      out.push({ obj: value, where });
    }
  });
  return out;
}

type Kind = "KubernetesCluster" | "Machine" | "Secret";

function kindOf(o: RawObject): Kind | undefined {
  if (o.kind === KUBERNETES_CLUSTER.kind && o.apiVersion === KUBERNETES_CLUSTER.apiVersion) return "KubernetesCluster";
  if (o.kind === MACHINE.kind && o.apiVersion === MACHINE.apiVersion) return "Machine";
  if (o.kind === "Secret" && o.apiVersion === "v1") return "Secret";
  return undefined;
}

function nameOf(o: RawObject): string {
  return typeof o.metadata?.name === "string" ? o.metadata.name : "";
}

function namespaceOf(o: RawObject, fallback: string): string {
  return typeof o.metadata?.namespace === "string" && o.metadata.namespace !== "" ? o.metadata.namespace : fallback;
}

/** The object with `metadata.namespace` set (objects of a file without one are in the default namespace). */
function withNamespace(o: RawObject, namespace: string): RawObject {
  return { ...o, metadata: { ...(o.metadata ?? {}), namespace } };
}

function pickCluster(found: Located[], file: string, name: string | undefined, namespace: string | undefined): Located {
  const scope = [name ? `named ${name}` : "", namespace ? `in namespace ${namespace}` : ""].filter(Boolean).join(" ");
  if (found.length === 0) throw new InputError(`${file}: no KubernetesCluster${scope ? ` ${scope}` : ""}`);
  if (found.length > 1) {
    const names = found.map((f) => nameOf(f.obj) || "?").join(", ");
    throw new InputError(`${file}: several KubernetesClusters (${names}); choose one with --cluster (and -n)`);
  }
  return found[0] as Located;
}

/** Decodes a Secret of a file: `data` is base64 (as in the API), `stringData` plain text and wins, as on the API. */
function fileSecret(o: RawObject, where: string): SecretObject {
  const data: Record<string, string> = {};
  for (const field of ["data", "stringData"] as const) {
    const entries: unknown = o[field];
    if (entries === undefined || entries === null) continue;
    if (!isObject(entries)) throw new InputError(`${where}: Secret ${nameOf(o)}: ${field} must be a mapping`);
    for (const [k, v] of Object.entries(entries)) {
      if (typeof v !== "string") throw new InputError(`${where}: Secret ${nameOf(o)}: ${field}.${k} must be a string`);
      data[k] = field === "data" ? v : Buffer.from(v, "utf8").toString("base64");
    }
  }
  return { apiVersion: "v1", kind: "Secret", metadata: { name: nameOf(o) }, data };
}

/**
 * Reads a YAML file of KubernetesCluster, Machine and Secret objects (other kinds are ignored with a warning).
 * Objects without a namespace are in `namespace` (default "default"); only the chosen cluster's namespace counts.
 */
export async function loadFromFile(
  file: string,
  clusterName: string | undefined,
  namespace: string | undefined,
): Promise<RenderInputs> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new InputError(`-f ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const fallbackNs = namespace ?? DEFAULT_NAMESPACE;
  const objects = fileObjects(text, file);
  const warnings: string[] = [];
  const byKind = (kind: Kind): Located[] => objects.filter((o) => kindOf(o.obj) === kind);
  for (const o of objects) {
    if (!kindOf(o.obj))
      warnings.push(`${o.where}: ignoring ${String(o.obj.kind)} ${nameOf(o.obj)} (not used by nico render)`);
  }
  const clusters = byKind("KubernetesCluster").filter(
    (c) =>
      (clusterName === undefined || nameOf(c.obj) === clusterName) &&
      (namespace === undefined || namespaceOf(c.obj, fallbackNs) === namespace),
  );
  const chosen = pickCluster(clusters, file, clusterName, namespace);
  const ns = namespaceOf(chosen.obj, fallbackNs);
  const cluster = parseKubernetesCluster(withNamespace(chosen.obj, ns));
  if (!cluster.ok) throw invalid(`${chosen.where}: KubernetesCluster ${ns}/${nameOf(chosen.obj)}`, cluster.errors);
  const machines = byKind("Machine")
    .filter((m) => namespaceOf(m.obj, fallbackNs) === ns)
    .map((m) => {
      const parsed = parseMachine(withNamespace(m.obj, ns));
      if (!parsed.ok) throw invalid(`${m.where}: Machine ${ns}/${nameOf(m.obj)}`, parsed.errors);
      return parsed.value as MachineObject;
    });
  const secrets = new Map<string, SecretObject>();
  for (const s of byKind("Secret").filter((x) => namespaceOf(x.obj, fallbackNs) === ns)) {
    secrets.set(nameOf(s.obj), fileSecret(s.obj, s.where));
  }
  return {
    cluster: cluster.value as ClusterObject,
    machines,
    secret: async (name) => secrets.get(name),
    origin: file,
    warnings,
  };
}

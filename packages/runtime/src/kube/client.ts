import { Agent, request, type RequestOptions } from "node:https";
import { request as httpRequest, type IncomingMessage } from "node:http";
import type { KubeConnection } from "./config.js";
import { KubeApiError } from "./errors.js";
import type {
  DeleteOptions,
  KubeObject,
  ListOptions,
  ObjectKey,
  ObjectList,
  PatchOptions,
  PatchType,
  ResourceType,
  WatchEvent,
  WatchOptions,
  WriteOptions,
} from "./types.js";

/** The narrow Kubernetes interface controllers use. Every call is one HTTP request, counted per verb. */
export interface Kube {
  get<T extends KubeObject>(res: ResourceType, key: ObjectKey): Promise<T>;
  list<T extends KubeObject>(res: ResourceType, opts?: ListOptions): Promise<ObjectList<T>>;
  /** Streams watch events until the server ends the watch, `signal` aborts, or an error is thrown. */
  watch<T extends KubeObject>(
    res: ResourceType,
    opts: WatchOptions,
    signal?: AbortSignal,
  ): AsyncIterable<WatchEvent<T>>;
  create<T extends KubeObject>(res: ResourceType, obj: T, opts?: WriteOptions): Promise<T>;
  replace<T extends KubeObject>(
    res: ResourceType,
    obj: T,
    opts?: WriteOptions & { subresource?: "status" },
  ): Promise<T>;
  patch<T extends KubeObject>(
    res: ResourceType,
    key: ObjectKey,
    patch: unknown,
    type: PatchType,
    opts?: PatchOptions,
  ): Promise<T>;
  delete(res: ResourceType, key: ObjectKey, opts?: DeleteOptions): Promise<void>;
  /** Raw request for APIs the typed methods don't cover (e.g. Events, TokenRequest). */
  request<T>(method: string, path: string, body?: unknown, contentType?: string): Promise<T>;
  /** Requests made so far by verb (get, list, watch, create, update, patch, delete). */
  requestCounts(): Readonly<Record<string, number>>;
  /** Called after every request with its verb, outcome (0: no response) and path; feeds metrics and benchmarks. */
  onRequest(listener: RequestListener): void;
  close(): void;
}

export type RequestListener = (verb: string, statusCode: number, path: string) => void;

const contentTypes: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
};

export function resourcePath(res: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  const base = res.group === "" ? `/api/${res.version}` : `/apis/${res.group}/${res.version}`;
  const ns = res.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  const obj = name === undefined ? "" : `/${encodeURIComponent(name)}`;
  const sub = subresource ? `/${subresource}` : "";
  return `${base}${ns}/${res.plural}${obj}${sub}`;
}

function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

interface Transport {
  server: URL;
  options: () => Promise<RequestOptions>;
}

/** How long TLS/auth options are reused before re-reading them (service-account tokens rotate). */
const AUTH_REFRESH_MS = 60_000;

function transportFor(conn: KubeConnection, agent: Agent): Transport {
  let cached: { at: number; opts: RequestOptions } | undefined;
  return {
    server: new URL(conn.server),
    options: async () => {
      if (cached && Date.now() - cached.at < AUTH_REFRESH_MS) return cached.opts;
      cached = { at: Date.now(), opts: { ...(await conn.requestOptions()), agent } };
      return cached.opts;
    },
  };
}

export function createKube(conn: KubeConnection, opts: { userAgent?: string; maxSockets?: number } = {}): Kube {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 32 });
  const transport = transportFor(conn, agent);
  const counts: Record<string, number> = {};
  const listeners: RequestListener[] = [];
  const userAgent = opts.userAgent ?? "nio-runtime";

  const count = (verb: string, statusCode: number, path: string): void => {
    counts[verb] = (counts[verb] ?? 0) + 1;
    for (const l of listeners) l(verb, statusCode, path);
  };

  const open = async (
    method: string,
    path: string,
    body?: Buffer,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ): Promise<IncomingMessage> => {
    const base = await transport.options();
    const url = new URL(path, transport.server);
    const reqOpts: RequestOptions = {
      ...base,
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      headers: {
        ...(base.headers as Record<string, string>),
        Accept: "application/json",
        "User-Agent": userAgent,
        ...headers,
        ...(body ? { "Content-Length": String(body.length) } : {}),
      },
      signal,
    };
    const send = url.protocol === "http:" ? httpRequest : request;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(reqOpts, resolve);
      req.once("error", (err) => reject(transportError(method, path, err)));
      req.end(body);
    });
  };

  const call = async <T>(
    verb: string,
    method: string,
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<T> => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    let res: IncomingMessage;
    try {
      res = await open(method, path, payload, payload ? { "Content-Type": contentType ?? "application/json" } : {});
    } catch (err) {
      count(verb, 0, path);
      throw err;
    }
    const text = await readBody(res).catch((err: unknown) => {
      throw transportError(method, path, err);
    });
    const status = res.statusCode ?? 0;
    count(verb, status, path);
    if (status >= 200 && status < 300) return (text ? JSON.parse(text) : undefined) as T;
    throw apiError(method, path, status, text);
  };

  async function* watch<T extends KubeObject>(
    res: ResourceType,
    w: WatchOptions,
    signal?: AbortSignal,
  ): AsyncIterable<WatchEvent<T>> {
    const path =
      resourcePath(res, w.namespace) +
      query({
        watch: 1,
        resourceVersion: w.resourceVersion,
        allowWatchBookmarks: w.allowWatchBookmarks ?? true,
        labelSelector: w.labelSelector,
        fieldSelector: w.fieldSelector,
        timeoutSeconds: w.timeoutSeconds,
      });
    let response: IncomingMessage;
    try {
      response = await open("GET", path, undefined, {}, signal);
    } catch (err) {
      count("watch", 0, path);
      throw err;
    }
    const status = response.statusCode ?? 0;
    count("watch", status, path);
    if (status !== 200) throw apiError("GET", path, status, await readBody(response).catch(() => ""));
    // A socket that goes quiet without closing would hang the watch forever; the server sends bookmarks or
    // ends the watch within timeoutSeconds, so silence well beyond that means the connection is dead.
    const idleMs = ((w.timeoutSeconds ?? 300) + 60) * 1000;
    response.setTimeout(idleMs, () => response.destroy(new Error(`watch idle for ${idleMs} ms`)));
    let buffered = "";
    try {
      for await (const chunk of response) {
        buffered += (chunk as Buffer).toString("utf8");
        let nl: number;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          const event = JSON.parse(line) as { type: string; object: unknown };
          if (event.type === "ERROR") throw statusToError("GET", path, event.object);
          yield event as WatchEvent<T>;
        }
      }
    } catch (err) {
      if (signal?.aborted) return;
      if (err instanceof KubeApiError) throw err;
      throw transportError("GET", path, err);
    } finally {
      response.destroy();
    }
  }

  return {
    get: (res, key) => call("get", "GET", resourcePath(res, key.namespace, key.name)),
    list: (res, o = {}) =>
      call(
        "list",
        "GET",
        resourcePath(res, o.namespace) +
          query({
            labelSelector: o.labelSelector,
            fieldSelector: o.fieldSelector,
            limit: o.limit,
            continue: o.continue,
            resourceVersion: o.resourceVersion,
            resourceVersionMatch: o.resourceVersionMatch,
          }),
      ),
    watch,
    create: (res, obj, o = {}) =>
      call(
        "create",
        "POST",
        resourcePath(res, obj.metadata.namespace) +
          query({ fieldManager: o.fieldManager, dryRun: o.dryRun ? "All" : undefined }),
        obj,
      ),
    replace: (res, obj, o = {}) =>
      call(
        "update",
        "PUT",
        resourcePath(res, obj.metadata.namespace, obj.metadata.name ?? "", o.subresource) +
          query({ fieldManager: o.fieldManager, dryRun: o.dryRun ? "All" : undefined }),
        obj,
      ),
    patch: (res, key, patch, type, o = {}) =>
      call(
        "patch",
        "PATCH",
        resourcePath(res, key.namespace, key.name, o.subresource) +
          query({
            fieldManager: o.fieldManager ?? (type === "apply" ? userAgent : undefined),
            force: type === "apply" ? (o.force ?? false) : undefined,
            dryRun: o.dryRun ? "All" : undefined,
          }),
        patch,
        contentTypes[type],
      ),
    delete: async (res, key, o = {}) => {
      const body =
        o.propagationPolicy || o.preconditions || o.dryRun
          ? {
              apiVersion: "v1",
              kind: "DeleteOptions",
              propagationPolicy: o.propagationPolicy,
              preconditions: o.preconditions,
              dryRun: o.dryRun ? ["All"] : undefined,
            }
          : undefined;
      await call("delete", "DELETE", resourcePath(res, key.namespace, key.name), body);
    },
    request: (method, path, body, contentType) => call(verbOf(method), method, path, body, contentType),
    requestCounts: () => ({ ...counts }),
    onRequest: (l) => void listeners.push(l),
    close: () => agent.destroy(),
  };
}

function verbOf(method: string): string {
  return (
    { GET: "get", POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" }[method] ?? method.toLowerCase()
  );
}

async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function transportError(method: string, path: string, err: unknown): KubeApiError {
  const msg = err instanceof Error ? err.message : String(err);
  return new KubeApiError(`${method} ${path}: ${msg}`, 0, "TransportError", undefined, { cause: err });
}

function apiError(method: string, path: string, status: number, text: string): KubeApiError {
  try {
    return statusToError(method, path, JSON.parse(text), status);
  } catch {
    return new KubeApiError(`${method} ${path}: HTTP ${status}: ${text.slice(0, 500)}`, status, `HTTP${status}`);
  }
}

function statusToError(method: string, path: string, obj: unknown, httpStatus?: number): KubeApiError {
  const s = (obj ?? {}) as { code?: number; reason?: string; message?: string; details?: unknown };
  const code = s.code ?? httpStatus ?? 0;
  return new KubeApiError(
    `${method} ${path}: ${s.message ?? `HTTP ${code}`}`,
    code,
    s.reason ?? `HTTP${code}`,
    s.details,
  );
}

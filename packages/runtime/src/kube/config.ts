import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import type { RequestOptions } from "node:https";
import { parse } from "yaml";

/**
 * How to reach and authenticate to the API server. Loaded without @kubernetes/client-node, whose import alone
 * costs ~75 MiB of RSS; that library is loaded lazily only for kubeconfigs using exec or auth-provider plugins.
 */
export interface KubeConnection {
  server: string;
  /** Fresh TLS and auth options for a request; tokens from files are re-read so rotated tokens are used. */
  requestOptions(): Promise<RequestOptions>;
  /** Where this came from, for messages. */
  source: string;
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

interface NamedEntry<T> {
  name: string;
  cluster?: T;
  user?: T;
  context?: T;
}
interface KubeconfigFile {
  "current-context"?: string;
  clusters?: NamedEntry<ClusterEntry>[];
  users?: NamedEntry<UserEntry>[];
  contexts?: NamedEntry<{ cluster: string; user: string }>[];
}
interface ClusterEntry {
  server: string;
  "certificate-authority"?: string;
  "certificate-authority-data"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "tls-server-name"?: string;
}
interface UserEntry {
  token?: string;
  tokenFile?: string;
  "client-certificate"?: string;
  "client-certificate-data"?: string;
  "client-key"?: string;
  "client-key-data"?: string;
  username?: string;
  password?: string;
  exec?: unknown;
  "auth-provider"?: unknown;
}

/** In-cluster config inside a pod, else the kubeconfig at `path`, $KUBECONFIG (first entry) or ~/.kube/config. */
export function loadKubeConfig(path?: string): KubeConnection {
  if (!path && !process.env.KUBECONFIG && process.env.KUBERNETES_SERVICE_HOST) return inCluster();
  const file = path ?? process.env.KUBECONFIG?.split(":").find((p) => p) ?? join(homedir(), ".kube", "config");
  return fromKubeconfig(file);
}

function inCluster(): KubeConnection {
  const host = process.env.KUBERNETES_SERVICE_HOST as string;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? "443";
  const ca = readFileSync(join(SA_DIR, "ca.crt"));
  return {
    server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    source: "in-cluster service account",
    requestOptions: async () => ({
      ca,
      headers: { Authorization: `Bearer ${readFileSync(join(SA_DIR, "token"), "utf8").trim()}` },
    }),
  };
}

function pick<T>(list: NamedEntry<T>[] | undefined, name: string, kind: "cluster" | "user" | "context"): T {
  const entry = list?.find((e) => e.name === name)?.[kind];
  if (!entry) throw new Error(`kubeconfig: ${kind} "${name}" not found`);
  return entry;
}

function fromKubeconfig(file: string): KubeConnection {
  const cfg = parse(readFileSync(file, "utf8")) as KubeconfigFile;
  const contextName = cfg["current-context"];
  if (!contextName) throw new Error(`kubeconfig ${file}: no current-context`);
  const ctx = pick(cfg.contexts, contextName, "context");
  const cluster = pick(cfg.clusters, ctx.cluster, "cluster");
  const user = pick(cfg.users, ctx.user, "user");
  const base = dirname(file);
  const readRef = (data: string | undefined, ref: string | undefined): Buffer | undefined =>
    data ? Buffer.from(data, "base64") : ref ? readFileSync(isAbsolute(ref) ? ref : resolve(base, ref)) : undefined;

  const tls: RequestOptions = {
    ca: readRef(cluster["certificate-authority-data"], cluster["certificate-authority"]),
    cert: readRef(user["client-certificate-data"], user["client-certificate"]),
    key: readRef(user["client-key-data"], user["client-key"]),
    rejectUnauthorized: !cluster["insecure-skip-tls-verify"],
    servername: cluster["tls-server-name"],
  };
  const source = `kubeconfig ${file} (context ${contextName})`;
  if (user.exec || user["auth-provider"]) return viaClientNode(file, cluster.server, source);
  const authorization = (): string | undefined => {
    if (user.token) return `Bearer ${user.token}`;
    if (user.tokenFile) return `Bearer ${readFileSync(resolve(base, user.tokenFile), "utf8").trim()}`;
    if (user.username) return `Basic ${Buffer.from(`${user.username}:${user.password ?? ""}`).toString("base64")}`;
    return undefined;
  };
  return {
    server: cluster.server,
    source,
    requestOptions: async () => {
      const auth = authorization();
      return { ...tls, headers: auth ? { Authorization: auth } : {} };
    },
  };
}

function viaClientNode(file: string, server: string, source: string): KubeConnection {
  let kc: Promise<{ applyToHTTPSOptions(o: RequestOptions): Promise<void> }> | undefined;
  return {
    server,
    source,
    requestOptions: async () => {
      kc ??= import("@kubernetes/client-node").then((m) => {
        const k = new m.KubeConfig();
        k.loadFromFile(file);
        return k;
      });
      const opts: RequestOptions = { headers: {} };
      await (await kc).applyToHTTPSOptions(opts);
      const { agent: _agent, ...rest } = opts as RequestOptions & { agent?: unknown };
      return rest;
    },
  };
}

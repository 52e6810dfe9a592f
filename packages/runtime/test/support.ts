import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import { controlPlaneBinaries, startControlPlane, type ControlPlane } from "@nio/testbed";
import { createKube, type Kube } from "../src/kube/client.js";
import { loadKubeConfig } from "../src/kube/config.js";
import type { ResourceType } from "../src/kube/types.js";

export const configMaps: ResourceType = {
  group: "",
  version: "v1",
  plural: "configmaps",
  kind: "ConfigMap",
  namespaced: true,
};

export interface TestEnv {
  dir: string;
  cp: ControlPlane;
  kube: Kube;
  stop(): Promise<void>;
}

/** A real kube-apiserver + etcd for one test file, in its own temp dir. */
export async function startTestEnv(): Promise<TestEnv> {
  const dir = await mkdtemp(join(tmpdir(), "runtime-test-"));
  const cp = await startControlPlane({
    dir,
    binaries: await controlPlaneBinaries(),
    // ConfigMap watches go straight to etcd, so compacting etcd expires them (410) at once; the watch cache
    // would otherwise keep serving old resourceVersions for minutes.
    extraApiServerArgs: ["--watch-cache-sizes=configmaps#0"],
  });
  const kube = createKube(loadKubeConfig(cp.kubeconfigPath));
  return {
    dir,
    cp,
    kube,
    stop: async () => {
      kube.close();
      await cp.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const quietLogger: Logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

/** A TCP proxy in front of the API server whose connections a test can cut (ECONNRESET) and restore. */
export interface CuttableProxy {
  port: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<CuttableProxy> {
  const sockets = new Set<Socket>();
  let open = true;
  const server: Server = createServer((client) => {
    if (!open) return client.destroy();
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  if (!addr || typeof addr === "string") throw new Error("proxy has no port");
  return {
    port: addr.port,
    cut: () => {
      open = false;
      for (const s of sockets) s.resetAndDestroy();
    },
    restore: () => {
      open = true;
    },
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A kubeconfig like the admin one but pointing at another port on 127.0.0.1 (e.g. a proxy). */
export async function kubeconfigVia(cp: ControlPlane, dir: string, port: number): Promise<string> {
  const config = JSON.parse(await readFile(cp.kubeconfigPath, "utf8")) as {
    clusters: { cluster: { server: string } }[];
  };
  for (const c of config.clusters) c.cluster.server = `https://127.0.0.1:${port}`;
  const path = join(dir, `via-${port}.kubeconfig`);
  await writeFile(path, JSON.stringify(config), { mode: 0o600 });
  return path;
}

/** Compacts etcd up to its current revision, so watches from older resourceVersions get 410 Gone. */
export async function compactEtcd(endpoint: string): Promise<number> {
  const range = await fetch(`${endpoint}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: "AA==" }) });
  const { header } = (await range.json()) as { header: { revision: string } };
  const revision = Number(header.revision);
  const res = await fetch(`${endpoint}/v3/kv/compaction`, {
    method: "POST",
    body: JSON.stringify({ revision, physical: true }),
  });
  if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
  return revision;
}

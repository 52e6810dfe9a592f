import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { freePort } from "../util/net.js";
import { logTail, startProcess, waitFor, type ManagedProcess } from "../util/process.js";
import type { ControlPlaneBinaries } from "./binaries.js";
import { generatePki, type ControlPlanePki } from "./pki.js";
import { writeKubeconfig } from "./kubeconfig.js";

export interface ControlPlaneOptions {
  /** Directory for this control plane's data, certificates, logs and kubeconfig. */
  dir: string;
  binaries: ControlPlaneBinaries;
  /** Keep the processes running after this Node process exits (`testbed up`). */
  detached?: boolean;
  /** Budget for /readyz after start. */
  readyTimeoutMs?: number;
  /** Extra kube-apiserver flags, e.g. `--watch-cache-sizes=configmaps#0` so a test can expire watches. */
  extraApiServerArgs?: string[];
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly caCertFile: string;
  /** Admin kubeconfig (system:masters), mode 0600. */
  readonly kubeconfigPath: string;
  readonly adminToken: string;
  readonly etcdEndpoint: string;
  /** Admin client configuration. */
  kubeConfig(): KubeConfig;
  /** A fresh bearer token for a ServiceAccount (created if missing): a limited identity for RBAC tests. */
  mintServiceAccountToken(namespace: string, name: string, expirationSeconds?: number): Promise<string>;
  /** Writes a kubeconfig for the given token (e.g. one from mintServiceAccountToken). */
  writeKubeconfig(path: string, userName: string, token: string): Promise<void>;
  /** Stops only the API server (etcd keeps the data), e.g. to test watch recovery. */
  stopApiServer(): Promise<void>;
  /** Starts the API server again on the same port with the same certificates. */
  startApiServer(): Promise<void>;
  /** PIDs of the processes this control plane started and still runs. */
  pids(): number[];
  stop(): Promise<void>;
}

const ADMIN_USER = "testbed-admin";

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const dirs = { pki: join(opts.dir, "pki"), etcd: join(opts.dir, "etcd"), logs: join(opts.dir, "logs") };
  await Promise.all(Object.values(dirs).map((d) => mkdir(d, { recursive: true, mode: 0o700 })));
  const [pki, etcdPort, etcdPeerPort, apiPort] = await Promise.all([
    generatePki(dirs.pki),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const adminToken = randomBytes(32).toString("hex");
  const tokenFile = join(dirs.pki, "tokens.csv");
  await writeFile(tokenFile, `${adminToken},${ADMIN_USER},${ADMIN_USER},"system:masters"\n`, { mode: 0o600 });

  const etcdEndpoint = `http://127.0.0.1:${etcdPort}`;
  const etcd = startProcess({
    name: "etcd",
    command: opts.binaries.etcd,
    args: etcdArgs(dirs.etcd, etcdPort, etcdPeerPort),
    logFile: join(dirs.logs, "etcd.log"),
    detached: opts.detached,
  });
  const server = `https://127.0.0.1:${apiPort}`;
  const apiArgs = [
    ...apiServerArgs({ pki, tokenFile, etcdEndpoint, apiPort, certDir: dirs.pki }),
    ...(opts.extraApiServerArgs ?? []),
  ];
  const kubeconfigPath = join(opts.dir, "kubeconfig");
  await writeKubeconfig(kubeconfigPath, server, pki.caCert, { name: ADMIN_USER, token: adminToken });
  const ca = await readFile(pki.caCert);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;

  let apiServer: ManagedProcess | undefined;
  const startApiServer = async (): Promise<void> => {
    const proc = startProcess({
      name: "kube-apiserver",
      command: opts.binaries.kubeApiserver,
      args: apiArgs,
      logFile: join(dirs.logs, "kube-apiserver.log"),
      detached: opts.detached,
    });
    apiServer = proc;
    const died = proc.exited.then(async (code) => {
      throw new Error(`kube-apiserver exited (${code}) before ready:\n${await logTail(proc.logFile)}`);
    });
    const ready = waitFor("kube-apiserver /readyz", () => readyz(server, ca, adminToken), {
      timeoutMs: readyTimeoutMs,
      intervalMs: 100,
    });
    await Promise.race([ready, died]);
    died.catch(() => undefined);
  };
  const stopApiServer = async (): Promise<void> => {
    await apiServer?.stop();
    apiServer = undefined;
  };

  try {
    await waitFor("etcd health", () => etcdHealthy(etcdEndpoint), { timeoutMs: 15_000 });
    await startApiServer();
  } catch (err) {
    await stopApiServer();
    await etcd.stop();
    throw err;
  }

  const kubeConfig = (): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    return kc;
  };

  return {
    server,
    caCertFile: pki.caCert,
    kubeconfigPath,
    adminToken,
    etcdEndpoint,
    kubeConfig,
    mintServiceAccountToken: (namespace, name, expirationSeconds) =>
      mintServiceAccountToken(kubeConfig(), namespace, name, expirationSeconds),
    writeKubeconfig: (path, userName, token) => writeKubeconfig(path, server, pki.caCert, { name: userName, token }),
    stopApiServer,
    startApiServer,
    pids: () => [etcd.pid, ...(apiServer ? [apiServer.pid] : [])],
    stop: async () => {
      await stopApiServer();
      await etcd.stop();
    },
  };
}

function etcdArgs(dataDir: string, port: number, peerPort: number): string[] {
  const client = `http://127.0.0.1:${port}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    "--name=testbed",
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=testbed=${peer}`,
    "--listen-metrics-urls=",
    // A throw-away test store: durability is not the point, speed is.
    "--unsafe-no-fsync=true",
    "--quota-backend-bytes=4294967296",
    "--log-level=warn",
  ];
}

interface ApiServerArgsInput {
  pki: ControlPlanePki;
  tokenFile: string;
  etcdEndpoint: string;
  apiPort: number;
  certDir: string;
}

function apiServerArgs(i: ApiServerArgsInput): string[] {
  return [
    "--advertise-address=127.0.0.1",
    "--bind-address=127.0.0.1",
    `--secure-port=${i.apiPort}`,
    `--cert-dir=${i.certDir}`,
    `--tls-cert-file=${i.pki.servingCert}`,
    `--tls-private-key-file=${i.pki.servingKey}`,
    `--client-ca-file=${i.pki.caCert}`,
    `--etcd-servers=${i.etcdEndpoint}`,
    "--service-cluster-ip-range=10.0.0.0/24",
    `--service-account-issuer=https://127.0.0.1:${i.apiPort}`,
    `--service-account-key-file=${i.pki.serviceAccountPublicKey}`,
    `--service-account-signing-key-file=${i.pki.serviceAccountPrivateKey}`,
    "--authorization-mode=RBAC",
    `--token-auth-file=${i.tokenFile}`,
    "--allow-privileged=true",
    // No kube-controller-manager runs here, so pods could never get ServiceAccount tokens mounted.
    "--disable-admission-plugins=ServiceAccount",
    "--endpoint-reconciler-type=none",
    "--profiling=false",
    "--v=1",
  ];
}

function readyz(server: string, ca: Buffer, token: string): Promise<true | undefined> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${server}/readyz`,
      { ca, headers: { Authorization: `Bearer ${token}` }, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? true : undefined);
      },
    );
    req.once("error", reject);
    req.once("timeout", () => req.destroy(new Error("readyz timed out")));
    req.end();
  });
}

async function etcdHealthy(endpoint: string): Promise<true | undefined> {
  const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) return undefined;
  const body = (await res.json()) as { health?: string };
  return body.health === "true" ? true : undefined;
}

async function mintServiceAccountToken(
  kc: KubeConfig,
  namespace: string,
  name: string,
  expirationSeconds = 24 * 3600,
): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  await ignoreAlreadyExists(core.createNamespace({ body: { metadata: { name: namespace } } }));
  await ignoreAlreadyExists(core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }));
  const res = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds } },
  });
  const token = res.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  return token;
}

/** Grants a ClusterRole to a ServiceAccount cluster-wide (tests that need a narrowly privileged identity). */
export async function bindClusterRole(
  kc: KubeConfig,
  role: string,
  subject: { namespace: string; name: string },
): Promise<void> {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await ignoreAlreadyExists(
    rbac.createClusterRoleBinding({
      body: {
        metadata: { name: `${subject.namespace}-${subject.name}-${role}`.replace(/[^a-z0-9.-]/g, "-") },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
        subjects: [{ kind: "ServiceAccount", namespace: subject.namespace, name: subject.name }],
      },
    }),
  );
}

async function ignoreAlreadyExists(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if ((err as { code?: number }).code === 409) return;
    throw err;
  }
}

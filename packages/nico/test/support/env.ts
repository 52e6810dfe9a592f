import { createHmac } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import {
  GitFixture,
  freePort,
  readTreeFiles,
  repoRoot,
  runChecked,
  startTestbed,
  waitFor,
  type Host,
  type Testbed,
} from "@nio/testbed";
import { createKube, loadKubeConfig, type Kube, type KubeObject, type ResourceType } from "@nio/runtime";
import { createNio, type Nio } from "@nio/nio";
import { createNico, type Nico } from "../../src/operator.js";
import {
  configMaps,
  kubernetesClusters,
  machines,
  nixosConfigurations,
  secrets,
  type ClusterObject,
  type ConfigObject,
  type MachineObject,
  type SecretObject,
} from "../../src/resources.js";

export const GIT_TOKEN = "testbed-git-token-9c2e71";
export const NS = "default";
export const SSH_KEY_SECRET = "machine-ssh-key";
export const WEBHOOK_SECRET = "nico-webhook-secret";

/** The project's own nix/ flake, as files under `nix/` (the seed's configurationSubdir). */
export function projectFlakeFiles(prefix = "nix"): Promise<Record<string, string>> {
  return readTreeFiles(join(repoRoot, "nix"), prefix);
}

export interface NicoTestEnv {
  tb: Testbed;
  kube: Kube;
  nio: Nio;
  nico: Nico;
  repo: GitFixture;
  repoUrl: string;
  dir: string;
  /** NICO's git webhook: POSTs a signed push notification for the cluster repository; returns the HTTP status. */
  notifyPush(): Promise<number>;
  /** Pushes the project flake plus `extra` files; returns the commit. */
  push(message: string, extra?: Record<string, string>): Promise<string>;
  create<T extends KubeObject>(obj: T): Promise<T>;
  cluster(name: string): Promise<ClusterObject>;
  machine(name: string): Promise<MachineObject>;
  configuration(name: string): Promise<ConfigObject | undefined>;
  configurations(cluster: string): Promise<ConfigObject[]>;
  secret(name: string): Promise<SecretObject | undefined>;
  configMap(name: string): Promise<(KubeObject & { data?: Record<string, string> }) | undefined>;
  host(name: string): Host;
  kubectl(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export async function startNicoTestEnv(opts: {
  hosts: string[];
  nioEnv?: Record<string, string>;
  nicoEnv?: Record<string, string>;
}): Promise<NicoTestEnv> {
  const dir = await mkdtemp(join(tmpdir(), "nico-test-"));
  const tb = await startTestbed({ hosts: opts.hosts, gitToken: GIT_TOKEN });
  const kubectl = (args: string[]): Promise<string> =>
    runChecked(tb.binaries.kubectl, ["--kubeconfig", tb.controlPlane.kubeconfigPath, ...args]);
  await kubectl(["apply", "--server-side", "-f", join(repoRoot, "crds")]);
  await kubectl(["wait", "--for=condition=Established", "--timeout=30s", "crd", "--all"]);
  const kube = createKube(loadKubeConfig(tb.controlPlane.kubeconfigPath));
  const repo = await GitFixture.create({
    server: tb.git,
    repo: "cluster",
    token: GIT_TOKEN,
    workDir: join(dir, "repo"),
  });
  const flake = await projectFlakeFiles();
  const push = async (message: string, extra: Record<string, string> = {}): Promise<string> =>
    repo.commitAndPush({ ...flake, ...extra }, message);
  await push("initial");

  const common = {
    METRICS_PORT: "0",
    HEALTH_CHECK_PORT: "0",
    BIND_ADDRESS: "127.0.0.1",
    ENABLE_LEADER_ELECTION: "false",
  };
  const webhookPort = await freePort();
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
  process.env.NIO_TESTBED_ANYWHERE_LOG = join(tb.dir, "nixos-anywhere.jsonl");
  const nio = createNio({
    kubeconfigPath: tb.controlPlane.kubeconfigPath,
    logger,
    nixosAnywhere: join(tb.operatorToolsDir, "nixos-anywhere"),
    env: {
      ...common,
      NIO_BASE_CONFIG_PATH: join(dir, "work"),
      NIO_KNOWN_HOSTS_PATH: join(dir, "known_hosts"),
      NIO_MACHINE_DISCOVERY_INTERVAL: "30",
      NIO_CONFIG_RECONCILE_INTERVAL: "5",
      NIO_RETRY_INITIAL_DELAY: "0.2",
      NIO_RETRY_MAX_DELAY: "1",
      NIO_WEBHOOK_PORT: "0",
      ...opts.nioEnv,
    },
  });
  const nico = createNico({
    kubeconfigPath: tb.controlPlane.kubeconfigPath,
    logger: logger.child({ operator: "nico" }),
    env: {
      ...common,
      NICO_CLUSTER_RECONCILE_INTERVAL: "600",
      NICO_WEBHOOK_PORT: String(webhookPort),
      NICO_WEBHOOK_SECRET: WEBHOOK_SECRET,
      ...opts.nicoEnv,
    },
  });
  await nio.start();
  await nico.start();
  const privateKey = await readFile(tb.operatorKey.privateKeyPath);
  await kube.create(secrets, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: SSH_KEY_SECRET, namespace: NS },
    data: { "ssh-privatekey": privateKey.toString("base64") },
  });
  await kube.create(secrets, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "git-credentials", namespace: NS },
    data: { token: Buffer.from(GIT_TOKEN).toString("base64") },
  });
  const getOrUndefined = async <T extends KubeObject>(res: ResourceType, name: string): Promise<T | undefined> =>
    kube.get<T>(res, { namespace: NS, name }).catch((err: unknown) => {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    });
  return {
    tb,
    kube,
    nio,
    nico,
    repo,
    repoUrl: tb.git.repoUrl("cluster"),
    dir,
    push,
    notifyPush: async () => {
      const body = JSON.stringify({ repository: { clone_url: tb.git.repoUrl("cluster") } });
      const sig = createHmac("sha256", WEBHOOK_SECRET).update(body).digest("hex");
      const res = await fetch(`http://127.0.0.1:${webhookPort}/hooks/git`, {
        method: "POST",
        headers: { "X-Hub-Signature-256": `sha256=${sig}` },
        body,
      });
      return res.status;
    },
    create: <T extends KubeObject>(obj: T) => kube.create<T>(resourceOf(obj), obj),
    cluster: (name) => kube.get<ClusterObject>(kubernetesClusters, { namespace: NS, name }),
    machine: (name) => kube.get<MachineObject>(machines, { namespace: NS, name }),
    configuration: (name) => getOrUndefined<ConfigObject>(nixosConfigurations, name),
    configurations: async (cluster) =>
      (
        await kube.list<ConfigObject>(nixosConfigurations, {
          namespace: NS,
          labelSelector: `nico.homystack.com/cluster=${cluster}`,
        })
      ).items,
    secret: (name) => getOrUndefined<SecretObject>(secrets, name),
    configMap: (name) => getOrUndefined(configMaps, name),
    host: (name) => {
      const h = tb.fleet.hosts.find((x) => x.name === name);
      if (!h) throw new Error(`no host ${name}`);
      return h;
    },
    kubectl,
    async stop() {
      await nico.stop();
      await nio.stop();
      kube.close();
      await repo.cleanup();
      await tb.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function resourceOf(obj: KubeObject): ResourceType {
  const kinds: Record<string, ResourceType> = {
    Machine: machines,
    NixosConfiguration: nixosConfigurations,
    Secret: secrets,
    KubernetesCluster: kubernetesClusters,
  };
  const r = kinds[obj.kind ?? ""];
  if (!r) throw new Error(`no resource for kind ${obj.kind}`);
  return r;
}

/** A Machine as in the seed (sshKeySecretRef machine-ssh-key), pointing at a testbed host. */
export function machineFor(
  host: Host,
  labels: Record<string, string>,
  extra: Record<string, unknown> = {},
): MachineObject {
  return {
    apiVersion: "nio.homystack.com/v1alpha1",
    kind: "Machine",
    metadata: { name: host.name, namespace: NS, labels },
    spec: {
      hostname: `${host.name}.local`,
      ipAddress: host.address,
      sshPort: host.port,
      sshUser: "root",
      sshKeySecretRef: { name: SSH_KEY_SECRET },
      ...extra,
    },
  } as MachineObject;
}

/** The seed's KubernetesCluster (003), pointed at the testbed's git server. */
export function seedCluster(name: string, repoUrl: string, spec: Record<string, unknown> = {}): ClusterObject {
  return {
    apiVersion: "nico.homystack.com/v1alpha1",
    kind: "KubernetesCluster",
    metadata: { name, namespace: NS },
    spec: {
      gitRepo: repoUrl,
      credentialsRef: { name: "git-credentials" },
      configurationSubdir: "nix",
      controlPlane: { machineSelector: { matchLabels: { role: "control-plane" } }, count: 3 },
      dataPlane: { machineSelector: { matchLabels: { role: "worker" } }, count: 5 },
      ...spec,
    },
  } as unknown as ClusterObject;
}

interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
}

export function condition(obj: { status?: { conditions?: Cond[] } }, type: string): Cond | undefined {
  return obj.status?.conditions?.find((c) => c.type === type);
}

export async function until<T>(
  what: string,
  get: () => Promise<T>,
  check: (o: T) => boolean,
  timeoutMs = 120_000,
): Promise<T> {
  return waitFor(
    what,
    async () => {
      const o = await get();
      return check(o) ? o : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

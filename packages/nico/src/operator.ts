import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { git, ssh, startWebhookServer, type WebhookServer } from "@nio/nio";
import {
  createEventRecorder,
  createManager,
  loadRuntimeConfig,
  type Env,
  type Kube,
  type Logger,
  type Manager,
  type RuntimeConfig,
} from "@nio/runtime";
import { loadNicoConfig, type NicoConfig } from "./config.js";
import { registerClusterController } from "./controller/controller.js";
import { RecentWrites } from "./controller/recent.js";
import { createNicoMetrics, type NicoMetrics } from "./metrics.js";
import {
  kubernetesClusters,
  machines,
  nixosConfigurations,
  secrets,
  type ClusterObject,
  type ConfigObject,
  type MachineObject,
  type SecretObject,
} from "./resources.js";

export interface NicoOptions {
  env?: Env;
  kubeconfigPath?: string;
  kube?: Kube;
  logger?: Logger;
  runtimeConfig?: Partial<RuntimeConfig>;
  nicoConfig?: Partial<NicoConfig>;
  /** Start the health/metrics servers (default true). */
  servers?: boolean;
}

export interface Nico {
  manager: Manager;
  config: NicoConfig;
  metrics: NicoMetrics;
  webhook?: WebhookServer;
  start(): Promise<void>;
  stop(): Promise<void>;
}

const BY_REPO = "cluster-by-repo";

/** Wires NICO: informers for clusters, machines, configurations and Secrets, and the KubernetesCluster controller. */
export function createNico(opts: NicoOptions = {}): Nico {
  const env = opts.env ?? process.env;
  const runtimeConfig = { ...loadRuntimeConfig(env), ...opts.runtimeConfig };
  const config = { ...loadNicoConfig(env), ...opts.nicoConfig };
  const manager = createManager({
    name: "nico",
    config: runtimeConfig,
    kubeconfigPath: opts.kubeconfigPath,
    kube: opts.kube,
    logger: opts.logger,
    servers: opts.servers,
  });
  const metrics = createNicoMetrics(manager.metrics.registry);
  const ns = config.watchNamespace ? { namespace: config.watchNamespace } : {};
  const recorder = createEventRecorder({
    kube: manager.kube,
    component: "nico",
    instance: runtimeConfig.podName,
    logger: manager.logger,
  });
  const clusters = manager.informer<ClusterObject>(kubernetesClusters, ns);
  clusters.addIndex(BY_REPO, (c) => {
    try {
      return [git.normaliseGitUrl(c.spec.gitRepo)];
    } catch {
      return [];
    }
  });
  const commits = new Map<string, { commit: string; at: number; source: string }>();
  const controller = registerClusterController(manager, {
    kube: manager.kube,
    clusters,
    machines: manager.informer<MachineObject>(machines, ns),
    configs: manager.informer<ConfigObject>(nixosConfigurations, ns),
    secrets: manager.informer<SecretObject>(secrets, ns),
    // Only ref listings: nothing is fetched, so the cache directory stays empty.
    git: git.createGitSource({ cacheDir: join(tmpdir(), "nico-git") }),
    ssh: ssh.createSshConnector(),
    config,
    metrics,
    recorder,
    commits,
    kubeconfigReadAt: new Map(),
    topologyWritten: new Map(),
    clustersWritten: new RecentWrites(),
    configsWritten: new RecentWrites(),
  });
  const webhookSecret = (): Buffer | undefined => {
    if (config.webhookSecretFile) return readFileSync(config.webhookSecretFile);
    return config.webhookSecret ? Buffer.from(config.webhookSecret) : undefined;
  };
  const nico: Nico = {
    manager,
    config,
    metrics,
    async start() {
      await manager.start();
      if (config.webhookPort === 0) return;
      nico.webhook = await startWebhookServer({
        port: config.webhookPort,
        host: runtimeConfig.bindAddress,
        secret: webhookSecret,
        logger: manager.logger,
        onPush: (urls) => {
          let triggered = 0;
          for (const url of urls) {
            for (const c of clusters.byIndex(BY_REPO, git.normaliseGitUrl(url))) {
              const key = `${c.metadata.namespace}/${c.metadata.name}`;
              commits.delete(key);
              controller.enqueue(key);
              triggered++;
            }
          }
          return triggered;
        },
      });
    },
    async stop() {
      await nico.webhook?.close();
      await manager.stop();
    },
  };
  return nico;
}

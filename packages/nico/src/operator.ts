import { tmpdir } from "node:os";
import { join } from "node:path";
import { git, ssh } from "@nio/nio";
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
  start(): Promise<void>;
  stop(): Promise<void>;
}

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
  registerClusterController(manager, {
    kube: manager.kube,
    clusters: manager.informer<ClusterObject>(kubernetesClusters, ns),
    machines: manager.informer<MachineObject>(machines, ns),
    configs: manager.informer<ConfigObject>(nixosConfigurations, ns),
    secrets: manager.informer<SecretObject>(secrets, ns),
    // Only ref listings: nothing is fetched, so the cache directory stays empty.
    git: git.createGitSource({ cacheDir: join(tmpdir(), "nico-git") }),
    ssh: ssh.createSshConnector(),
    config,
    metrics,
    recorder,
    commits: new Map(),
    kubeconfigReadAt: new Map(),
    topologyWritten: new Map(),
  });
  return {
    manager,
    config,
    metrics,
    start: () => manager.start(),
    stop: () => manager.stop(),
  };
}

import { readFileSync } from "node:fs";
import { join } from "node:path";
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
import { ApplySlots, KeyedLock } from "./apply/limits.js";
import { loadNioConfig, type NioConfig } from "./config.js";
import { BY_REPO, registerConfigController } from "./controllers/nixosconfiguration/controller.js";
import { registerMachineController } from "./controllers/machine/controller.js";
import { FacterReports } from "./facts.js";
import { KnownHostsFile } from "./known-hosts.js";
import { createGitSource, normaliseGitUrl } from "./git/index.js";
import { createNioMetrics } from "./metrics.js";
import { RefCache } from "./refs.js";
import {
  machines,
  nixosConfigurations,
  secrets,
  type ConfigObject,
  type MachineObject,
  type SecretObject,
} from "./resources.js";
import { createSshConnector } from "./ssh/index.js";
import { startWebhookServer, type WebhookServer } from "./webhook.js";

export interface NioOptions {
  env?: Env;
  kubeconfigPath?: string;
  kube?: Kube;
  logger?: Logger;
  /** Overrides of the settings read from `env`. */
  runtimeConfig?: Partial<RuntimeConfig>;
  nioConfig?: Partial<NioConfig>;
  /** The nixos-anywhere command (default from PATH). */
  nixosAnywhere?: string;
  /** Start the health/metrics servers (default true). */
  servers?: boolean;
}

export interface Nio {
  manager: Manager;
  config: NioConfig;
  webhook?: WebhookServer;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Wires NIO: informers, both controllers, the shared git cache and SSH connector, metrics and the webhook. */
export function createNio(opts: NioOptions = {}): Nio {
  const env = opts.env ?? process.env;
  const runtimeConfig = { ...loadRuntimeConfig(env), ...opts.runtimeConfig };
  const config = { ...loadNioConfig(env), ...opts.nioConfig };
  const manager = createManager({
    name: "nio",
    config: runtimeConfig,
    kubeconfigPath: opts.kubeconfigPath,
    kube: opts.kube,
    logger: opts.logger,
    servers: opts.servers,
  });
  const metrics = createNioMetrics(manager.metrics.registry);
  const ns = config.watchNamespace ? { namespace: config.watchNamespace } : {};
  const machineCache = manager.informer<MachineObject>(machines, ns);
  const configCache = manager.informer<ConfigObject>(nixosConfigurations, ns);
  const secretCache = manager.informer<SecretObject>(secrets, ns);
  const updateMachineGauges = (): void => {
    const all = machineCache.list();
    metrics.machinesTotal.set(all.length);
    metrics.machinesDiscoverable.set(all.filter((m) => m.status?.discoverable === true).length);
  };
  machineCache.on(updateMachineGauges);

  const recorder = createEventRecorder({
    kube: manager.kube,
    component: "nio",
    instance: runtimeConfig.podName,
    logger: manager.logger,
  });
  const git = createGitSource({
    cacheDir: join(config.baseConfigPath, "git"),
    onFetch: () => metrics.gitClones.inc(),
  });
  const ssh = createSshConnector({ onConnection: (result) => metrics.sshConnections.inc({ result }) });
  const facts = new FacterReports();
  registerMachineController(manager, {
    kube: manager.kube,
    machines: machineCache,
    secrets: secretCache,
    ssh,
    config,
    metrics,
    recorder,
    facts,
    knownHosts: new KnownHostsFile(config.knownHostsPath),
  });
  const refs = new RefCache(git, config.configReconcileIntervalSeconds * 900, metrics);
  const configController = registerConfigController(manager, {
    kube: manager.kube,
    configs: configCache,
    machines: machineCache,
    secrets: secretCache,
    ssh,
    git,
    config,
    metrics,
    recorder,
    facts,
    refs,
    slots: new ApplySlots(config.maxConcurrentApplies),
    machineLocks: new KeyedLock(),
    failures: new Map(),
    applied: new Map(),
    reconcileErrors: manager.metrics.reconcileErrors,
    nixosAnywhere: opts.nixosAnywhere,
  });

  const webhookSecret = (): Buffer | undefined => {
    if (config.webhookSecretFile) return readFileSync(config.webhookSecretFile);
    return config.webhookSecret ? Buffer.from(config.webhookSecret) : undefined;
  };
  const nio: Nio = {
    manager,
    config,
    async start() {
      await manager.start();
      if (config.webhookPort > 0) {
        nio.webhook = await startWebhookServer({
          port: config.webhookPort,
          host: runtimeConfig.bindAddress,
          secret: webhookSecret,
          metrics,
          logger: manager.logger,
          onPush: (urls) => {
            let triggered = 0;
            for (const url of urls) {
              refs.invalidate(url);
              for (const c of configCache.byIndex(BY_REPO, normaliseGitUrl(url))) {
                configController.enqueue(`${c.metadata.namespace}/${c.metadata.name}`);
                triggered++;
              }
            }
            return triggered;
          },
        });
      }
    },
    async stop() {
      await nio.webhook?.close();
      await manager.stop();
    },
  };
  return nio;
}

import { randomBytes } from "node:crypto";
import { createController, type Controller, type ControllerOptions } from "./controller.js";
import { loadRuntimeConfig, type RuntimeConfig } from "./config.js";
import { Informer, type InformerOptions } from "./informer.js";
import { createKube, type Kube } from "./kube/client.js";
import { loadKubeConfig } from "./kube/config.js";
import type { KubeObject, ResourceType } from "./kube/types.js";
import { createLeaderElector, type LeaderElector } from "./leader.js";
import { createLogger, type Logger } from "./log.js";
import { createRuntimeMetrics, type RuntimeMetrics } from "./metrics.js";
import {
  instrumentKube,
  startHealthServer,
  startMetricsServer,
  type HealthServer,
  type ReadyResult,
  type ServerHandle,
} from "./servers.js";

export interface ManagerOptions {
  /** Component name: metrics prefix (`nio_…`), log `component`, default Lease name `<name>-leader`. */
  name: string;
  config?: RuntimeConfig;
  kubeconfigPath?: string;
  kube?: Kube;
  logger?: Logger;
  metrics?: RuntimeMetrics;
  /** Start the health and metrics servers (default true). */
  servers?: boolean;
}

export interface Manager {
  readonly name: string;
  readonly kube: Kube;
  readonly logger: Logger;
  readonly metrics: RuntimeMetrics;
  readonly config: RuntimeConfig;
  /** One shared informer per resource type and selector. */
  informer<T extends KubeObject>(res: ResourceType, opts?: Omit<InformerOptions, "metrics" | "logger">): Informer<T>;
  /** Creates a controller wired to this manager's metrics and logger, and adds it. */
  controller<T extends KubeObject>(opts: Omit<ControllerOptions<T>, "metrics" | "logger">): Controller;
  /** Controllers run only while this replica leads (or always, with leader election off). */
  add(controller: Controller): void;
  start(): Promise<void>;
  /** Graceful stop: no new work, in-flight work finishes within the grace period, the lease is released. */
  stop(): Promise<void>;
  isLeader(): boolean;
  ready(): ReadyResult;
  /** Ports the servers actually bound (0 asks for a free one). */
  ports(): { metrics?: number; health?: number };
  /** SIGTERM/SIGINT → stop() → exit. */
  installSignalHandlers(): void;
}

export function createManager(opts: ManagerOptions): Manager {
  const config = opts.config ?? loadRuntimeConfig();
  const logger = opts.logger ?? createLogger({ name: opts.name, level: config.logLevel, format: config.logFormat });
  const metrics = opts.metrics ?? createRuntimeMetrics(opts.name);
  const kube = opts.kube ?? createKube(loadKubeConfig(opts.kubeconfigPath), { userAgent: opts.name });
  instrumentKube(kube, metrics);
  const informers = new Map<string, Informer<KubeObject>>();
  const controllers: Controller[] = [];
  let elector: LeaderElector | undefined;
  let running = false;
  let stopping: Promise<void> | undefined;
  let health: HealthServer | undefined;
  let metricsServer: ServerHandle | undefined;
  const graceMs = config.shutdownGraceSeconds * 1000;

  const startControllers = (): void => {
    for (const c of controllers) c.start();
    logger.info({ controllers: controllers.map((c) => c.name) }, "controllers started");
  };
  const stopControllers = async (grace: number): Promise<void> => {
    await Promise.all(controllers.map((c) => c.stop(grace)));
  };

  const ready = (): ReadyResult => {
    if (stopping) return { ready: false, reason: "shutting down" };
    const unsynced = [...informers.values()].filter((i) => !i.hasSynced()).map((i) => i.resourceName);
    if (unsynced.length) return { ready: false, reason: `caches not synced: ${unsynced.join(", ")}` };
    // A synced standby is ready too: it can take over the moment it wins the lease.
    return true;
  };

  const manager: Manager = {
    name: opts.name,
    kube,
    logger,
    metrics,
    config,
    informer<T extends KubeObject>(
      res: ResourceType,
      o: Omit<InformerOptions, "metrics" | "logger"> = {},
    ): Informer<T> {
      const key = [res.group, res.version, res.plural, o.namespace, o.labelSelector, o.fieldSelector].join("|");
      let inf = informers.get(key);
      if (!inf) {
        inf = new Informer<KubeObject>(kube, res, {
          resyncMs: config.resyncSeconds * 1000,
          ...o,
          metrics,
          logger,
        });
        informers.set(key, inf);
        if (running) inf.start();
      }
      return inf as unknown as Informer<T>;
    },
    controller(o) {
      const c = createController({ ...o, metrics, logger });
      controllers.push(c);
      return c;
    },
    add(controller) {
      controllers.push(controller);
    },
    async start() {
      running = true;
      if (opts.servers ?? true) {
        [health, metricsServer] = await Promise.all([
          startHealthServer({ port: config.healthPort, host: config.bindAddress, ready, logger }),
          startMetricsServer({
            port: config.metricsPort,
            host: config.bindAddress,
            registry: metrics.registry,
            logger,
          }),
        ]);
        logger.info({ metricsPort: metricsServer.port, healthPort: health.port }, "servers listening");
      }
      for (const inf of informers.values()) inf.start();
      await Promise.all([...informers.values()].map((i) => i.waitForSync()));
      logger.info({ informers: informers.size }, "caches synced");
      if (!config.enableLeaderElection) {
        startControllers();
        return;
      }
      elector = createLeaderElector(kube, {
        namespace: config.leaderElectionNamespace,
        name: config.leaderElectionId ?? `${opts.name}-leader`,
        identity: `${config.podName}_${randomBytes(4).toString("hex")}`,
        leaseDurationMs: config.leaseDurationSeconds * 1000,
        renewDeadlineMs: config.renewDeadlineSeconds * 1000,
        retryPeriodMs: config.retryPeriodSeconds * 1000,
        metrics,
        logger,
        onStartedLeading: startControllers,
        // Another replica may already be acting: stop handing out work now and abort what is running.
        onStoppedLeading: () => void stopControllers(0),
      });
      elector.start();
    },
    stop() {
      stopping ??= (async () => {
        logger.info({ graceMs }, "stopping: no new work; waiting for running reconciles");
        await stopControllers(graceMs);
        await elector?.stop({ release: true });
        await Promise.all([...informers.values()].map((i) => i.stop()));
        await Promise.all([health?.close(), metricsServer?.close()]);
        kube.close();
        running = false;
        logger.info("stopped");
      })();
      return stopping;
    },
    isLeader: () => (config.enableLeaderElection ? (elector?.isLeader() ?? false) : running),
    ready,
    ports: () => ({ metrics: metricsServer?.port, health: health?.port }),
    installSignalHandlers() {
      const onSignal = (signal: NodeJS.Signals): void => {
        logger.info({ signal }, "signal received");
        manager.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            logger.error({ err: String(err) }, "error while stopping");
            process.exit(1);
          },
        );
      };
      process.once("SIGTERM", onSignal);
      process.once("SIGINT", onSignal);
    },
  };
  return manager;
}

import type { Logger } from "pino";
import { errMessage } from "./informer.js";
import type { Kube } from "./kube/client.js";
import { isAlreadyExists, isConflict, isNotFound } from "./kube/errors.js";
import type { KubeObject, ResourceType } from "./kube/types.js";
import type { RuntimeMetrics } from "./metrics.js";

export const leaseResource: ResourceType = {
  group: "coordination.k8s.io",
  version: "v1",
  plural: "leases",
  kind: "Lease",
  namespaced: true,
};

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  /** Called at once when the lease is lost or can't be renewed within the deadline. */
  onStoppedLeading: () => void;
  metrics?: RuntimeMetrics;
  logger?: Logger;
  now?: () => number;
}

export interface LeaderElector {
  isLeader(): boolean;
  start(): void;
  /** Stops campaigning; a leader releases the lease so a standby takes over without waiting for expiry. */
  stop(opts?: { release?: boolean }): Promise<void>;
}

/** Kubernetes MicroTime: RFC 3339 with microseconds. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/**
 * client-go's leader election algorithm on a Lease: a candidate takes the lease when it is free or its holder has
 * not renewed it for a lease duration (measured on our own clock from when we last saw it change, so clock skew
 * between replicas does not matter); every write carries the resourceVersion read, so two candidates never both
 * win the same term.
 */
export function createLeaderElector(kube: Kube, opts: LeaderElectionOptions): LeaderElector {
  const leaseDurationMs = opts.leaseDurationMs ?? 15_000;
  const renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
  const retryPeriodMs = opts.retryPeriodMs ?? 2_000;
  const now = opts.now ?? Date.now;
  const key = { namespace: opts.namespace, name: opts.name };
  let leader = false;
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  let lastRenew = 0;
  let observed: { record: string; at: number } | undefined;
  let tick: Promise<void> = Promise.resolve();
  const log = opts.logger?.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });

  const setLeader = (value: boolean): void => {
    if (leader === value) return;
    leader = value;
    opts.metrics?.leaderStatus.set({ name: opts.name }, value ? 1 : 0);
    log?.info({ leader: value }, value ? "became leader" : "stopped leading");
    if (value) opts.onStartedLeading();
    else opts.onStoppedLeading();
  };

  const desired = (lease: Lease | undefined, t: number): Lease["spec"] => {
    const holder = lease?.spec?.holderIdentity;
    const isOurs = holder === opts.identity;
    return {
      holderIdentity: opts.identity,
      leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
      acquireTime: isOurs && lease?.spec?.acquireTime ? lease.spec.acquireTime : microTime(t),
      renewTime: microTime(t),
      leaseTransitions: (lease?.spec?.leaseTransitions ?? 0) + (isOurs || !holder ? 0 : 1),
    };
  };

  const readLease = async (): Promise<Lease | undefined> => {
    try {
      return await kube.get<Lease>(leaseResource, key);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };

  const createLease = async (t: number): Promise<boolean> => {
    try {
      await kube.create<Lease>(leaseResource, {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { ...key },
        spec: desired(undefined, t),
      });
      return true;
    } catch (err) {
      if (isAlreadyExists(err)) return false;
      throw err;
    }
  };

  /** Whether another holder's lease is still valid, judged by when we last saw its record change. */
  const heldByOther = (lease: Lease, t: number): boolean => {
    const record = JSON.stringify(lease.spec ?? {});
    if (observed?.record !== record) observed = { record, at: t };
    const holder = lease.spec?.holderIdentity;
    const durationMs = (lease.spec?.leaseDurationSeconds ?? leaseDurationMs / 1000) * 1000;
    return !!holder && holder !== opts.identity && observed.at + durationMs > t;
  };

  const tryAcquireOrRenew = async (): Promise<boolean> => {
    const t = now();
    const lease = await readLease();
    if (!lease) return createLease(t);
    if (heldByOther(lease, t)) return false;
    try {
      await kube.replace<Lease>(leaseResource, { ...lease, spec: desired(lease, t) });
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  };

  const round = async (): Promise<void> => {
    try {
      const ok = await tryAcquireOrRenew();
      if (ok) {
        lastRenew = now();
        setLeader(true);
      } else if (leader) {
        setLeader(false);
      }
    } catch (err) {
      log?.warn({ err: errMessage(err) }, "lease acquire/renew failed");
    }
    if (leader && now() - lastRenew > renewDeadlineMs) setLeader(false);
  };

  const schedule = (): void => {
    if (!running) return;
    timer = setTimeout(
      () => {
        tick = round().then(schedule);
      },
      retryPeriodMs * (leader ? 1 : 0.8 + Math.random() * 0.4),
    );
  };

  const release = async (): Promise<void> => {
    try {
      const lease = await kube.get<Lease>(leaseResource, key);
      if (lease.spec?.holderIdentity !== opts.identity) return;
      const t = microTime(now());
      await kube.replace<Lease>(leaseResource, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: t, acquireTime: t },
      });
    } catch (err) {
      log?.warn({ err: errMessage(err) }, "could not release the lease; the next leader waits for it to expire");
    }
  };

  return {
    isLeader: () => leader,
    start() {
      if (running) return;
      running = true;
      opts.metrics?.leaderStatus.set({ name: opts.name }, 0);
      tick = round().then(schedule);
    },
    async stop({ release: doRelease = true } = {}) {
      running = false;
      if (timer) clearTimeout(timer);
      await tick;
      const wasLeader = leader;
      setLeader(false);
      if (wasLeader && doRelease) await release();
    },
  };
}

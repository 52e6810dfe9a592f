import {
  ANNOTATIONS,
  ConditionType,
  FINALIZERS,
  Reason,
  formatValidationErrors,
  validateNixosConfiguration,
  type MachineStatus,
  type NixosConfigurationStatus,
} from "@nio/api";
import {
  StalledError,
  WaitingError,
  isNotFound,
  classifyError,
  ensureFinalizer,
  ignoreStatusOnlyUpdates,
  formatTime,
  patchStatus,
  snapshot,
  type ConditionContext,
  type Controller,
  type EventRecorder,
  type Informer,
  type Kube,
  type Manager,
  type ObjectKey,
  type ReconcileContext,
  type ReconcileResult,
} from "@nio/runtime";
import { executeApply, type ApplyOutcome, type ExecutorDeps } from "../../apply/executor.js";
import { ApplyFailedError } from "../../apply/errors.js";
import type { ApplySlots, KeyedLock } from "../../apply/limits.js";
import { retryDelayMs, type NioConfig } from "../../config.js";
import type { FacterReports } from "../../facts.js";
import { normaliseGitUrl, type GitAuth } from "../../git/index.js";
import { expectedHostKey, machineTarget, usesSudo } from "../../machine-access.js";
import type { NioMetrics } from "../../metrics.js";
import type { RefCache } from "../../refs.js";
import {
  machines,
  nixosConfigurations,
  type ConfigObject,
  type MachineObject,
  type SecretObject,
} from "../../resources.js";
import { gitAuthFromSecret } from "../../secrets.js";
import { computeDesired, redactSecrets, type DesiredState } from "./desired.js";
import { reconcileDelete } from "./delete.js";
import { setApplied, setApplying, setFailed, setStalled, setSuspended, setUpToDate, setWaiting } from "./status.js";

export interface ConfigControllerDeps extends ExecutorDeps {
  kube: Kube;
  configs: Informer<ConfigObject>;
  machines: Informer<MachineObject>;
  secrets: Informer<SecretObject>;
  config: NioConfig;
  metrics: NioMetrics;
  recorder: EventRecorder;
  facts: FacterReports;
  refs: RefCache;
  /** NIO_MAX_CONCURRENT_APPLIES, taken by executeApply. */
  slots: ApplySlots;
  machineLocks: KeyedLock;
  /**
   * Failed attempts per configuration and desired digest: `count` (every failure) sets the backoff, `budget` (only
   * failures of the desired state itself) is bounded by NIO_RETRY_MAX_ATTEMPTS.
   */
  failures: Map<string, { digest: string; count: number; budget: number }>;
  /**
   * What this process last completed per configuration (digest, install, handled reinstall request): guards against
   * acting again on a cached object that does not show our own status write yet.
   */
  applied: Map<string, AppliedRecord>;
  /** The runtime's `nio_reconcile_errors_total`: a failed apply is a reconcile error even though it is requeued. */
  reconcileErrors?: { inc(labels: { controller: string; reason: string }): void };
  now?: () => Date;
}

export interface AppliedRecord {
  digest: string;
  installed: boolean;
  reinstallAt?: string;
  /**
   * The success to record (status and Machine fields), kept until the cache shows it: if writing it failed (e.g. the
   * API server went away right after the switch), it is written again instead of being lost.
   */
  success?: { status: NixosConfigurationStatus; machine: Partial<MachineStatus>; at: number };
}

/** How long the cache may lag behind a recorded success before NIO writes that success again. */
const RECORD_AGAIN_AFTER_MS = 3_000;

/** Failures that say the desired state itself does not work: retried at most NIO_RETRY_MAX_ATTEMPTS times. */
const BUDGETED_FAILURES = new Set<string>([Reason.BuildFailed, Reason.InstallFailed, Reason.Timeout]);

export const BY_MACHINE = "config-by-machine";
export const BY_SECRET = "config-by-secret";
export const BY_REPO = "config-by-repo";

const nsName = (o: { metadata: { namespace?: string; name?: string } }): string =>
  `${o.metadata.namespace ?? ""}/${o.metadata.name ?? ""}`;

function referencedSecrets(c: ConfigObject): string[] {
  const ns = c.metadata.namespace ?? "";
  const names = [
    c.spec.credentialsRef?.name,
    ...(c.spec.additionalFiles ?? []).map((f) => f.value.secretRef?.name),
    ...(c.spec.hostFiles ?? []).map((f) => f.value.secretRef?.name),
  ];
  return [...new Set(names.filter((n): n is string => !!n).map((n) => `${ns}/${n}`))];
}

export function registerConfigController(mgr: Manager, deps: ConfigControllerDeps): Controller {
  deps.configs.addIndex(BY_MACHINE, (c) => [`${c.metadata.namespace}/${c.spec.machineRef.name}`]);
  deps.configs.addIndex(BY_SECRET, referencedSecrets);
  deps.configs.addIndex(BY_REPO, (c) => {
    try {
      return [normaliseGitUrl(c.spec.gitRepo)];
    } catch {
      return [];
    }
  });
  const byIndex = (index: string) => (value: string) => deps.configs.byIndex(index, value).map(nsName);
  return mgr.controller({
    name: "nixosconfiguration",
    for: deps.configs,
    watches: [
      { informer: deps.machines, map: (m) => byIndex(BY_MACHINE)(nsName(m)) },
      { informer: deps.secrets, map: (s) => byIndex(BY_SECRET)(nsName(s)) },
      // Another configuration on the same machine appearing or going away decides a conflict.
      {
        informer: deps.configs,
        // Only the others on that machine: a configuration's own updates must not re-trigger it.
        map: (c) =>
          byIndex(BY_MACHINE)(`${c.metadata.namespace}/${(c as ConfigObject).spec.machineRef.name}`).filter(
            (k) => k !== nsName(c),
          ),
      },
    ],
    predicates: [ignoreStatusOnlyUpdates],
    concurrency: Math.max(4, deps.config.maxConcurrentApplies * 2),
    reconcile: (key, ctx) => reconcileConfiguration(deps, key, ctx),
  });
}

export interface Scope {
  cfg: ConfigObject;
  /** What the server has as status: the cached object, then whatever an interim status write returned. */
  before: ConfigObject;
  status: NixosConfigurationStatus;
  cond: ConditionContext;
  now: string;
  key: string;
}

export async function reconcileConfiguration(
  deps: ConfigControllerDeps,
  key: ObjectKey,
  ctx: ReconcileContext,
): Promise<ReconcileResult> {
  const cfg = deps.configs.get(`${key.namespace}/${key.name}`);
  if (!cfg) {
    deps.failures.delete(`${key.namespace}/${key.name}`);
    deps.applied.delete(`${key.namespace}/${key.name}`);
    return {};
  }
  if (!cfg.metadata.deletionTimestamp && !cfg.metadata.finalizers?.includes(FINALIZERS.nio)) {
    // The update this makes brings the object back through the queue.
    await ensureFinalizer(deps.kube, nixosConfigurations, cfg, FINALIZERS.nio);
    return {};
  }
  const now = formatTime((deps.now ?? (() => new Date()))());
  const scope: Scope = {
    cfg,
    before: snapshot(cfg),
    status: structuredClone(cfg.status ?? {}),
    now,
    cond: { generation: cfg.metadata.generation, now },
    key: nsName(cfg),
  };
  try {
    if (cfg.metadata.deletionTimestamp) return await reconcileDelete(deps, scope, ctx);
    const result = await reconcileNormal(deps, scope, ctx);
    scope.status.observedGeneration = cfg.metadata.generation;
    return result;
  } catch (err) {
    return handleError(deps, scope, err, ctx);
  } finally {
    await writeStatus(deps, scope);
  }
}

/**
 * Writes the status diff against what the server has (not against the object this reconcile started from: an
 * interim write may have happened since), and makes that the new baseline. A configuration already gone is fine.
 */
export async function writeStatus(deps: ConfigControllerDeps, s: Scope): Promise<void> {
  try {
    const res = await patchStatus(deps.kube, nixosConfigurations, s.before, s.status);
    if (res.object) s.before = res.object;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

function handleError(deps: ConfigControllerDeps, s: Scope, err: unknown, ctx: ReconcileContext): ReconcileResult {
  const c = classifyError(err);
  if (c.kind === "stalled") {
    if (s.status.conditions?.find((x) => x.type === ConditionType.Stalled)?.message !== c.message) {
      deps.recorder.event(s.cfg, "Warning", c.reason, c.message);
    }
    setStalled(s.status, s.cond, c.reason, c.message);
    s.status.observedGeneration = s.cfg.metadata.generation;
    return {};
  }
  if (c.kind === "waiting") {
    setWaiting(s.status, s.cond, c.reason, c.message);
    ctx.logger.debug({ reason: c.reason }, c.message);
    return { requeueAfterMs: c.requeueAfterMs ?? 10_000 };
  }
  setFailed(s.status, s.cond, { reason: c.reason, message: c.message, now: s.now });
  throw err;
}

async function reconcileNormal(deps: ConfigControllerDeps, s: Scope, ctx: ReconcileContext): Promise<ReconcileResult> {
  const errors = validateNixosConfiguration(s.cfg);
  if (errors.length) throw new StalledError(Reason.InvalidSpec, formatValidationErrors(errors));
  const spec = s.cfg.spec;
  s.status.targetMachine = spec.machineRef.name;
  const fresh = acknowledgeRequest(s);
  setSuspended(s.status, s.cond, spec.suspend === true);
  if (spec.suspend) return {};

  const plan = await planApply(deps, s, fresh);
  const { desired, install, machine } = plan;
  const interval = deps.config.configReconcileIntervalSeconds * 1000;
  if (!install && s.status.appliedDigest === desired.digest) {
    deps.failures.delete(s.key);
    setUpToDate(s.status, s.cond, machine.metadata.name ?? "");
    return { requeueAfterMs: interval };
  }
  const memo = deps.applied.get(s.key);
  if (!install && memo?.digest === desired.digest) {
    // Applied moments ago; the cache has not caught up with our own status write yet. Look again shortly, and if it
    // still does not show the success after a while, the write was lost: record it again (idempotent).
    if (memo.success && Date.now() - memo.success.at > RECORD_AGAIN_AFTER_MS) {
      Object.assign(s.status, structuredClone(memo.success.status));
      await patchMachineStatus(deps, machine, memo.success.machine);
      memo.success.at = Date.now();
    }
    return { requeueAfterMs: 1_000 };
  }
  const failed = deps.failures.get(s.key);
  if (!fresh && failed?.digest === desired.digest && failed.budget >= deps.config.retryMaxAttempts) {
    // Retries for this exact desired state are used up; a change (commit, spec, Secret) or a requested reconcile
    // starts over. The failure stays visible in conditions and lastAttempt.
    return { requeueAfterMs: interval };
  }
  prefetchSource(deps, s, desired.commit);
  return apply(deps, s, plan, ctx);
}

/**
 * Starts fetching the source now, while the status write and the waits for the machine and a slot happen; the
 * apply's own checkout joins it (one fetch per commit either way). Its errors surface in that checkout.
 */
function prefetchSource(deps: ConfigControllerDeps, s: Scope, commit: string): void {
  void Promise.resolve()
    .then(() => deps.git.checkout(s.cfg.spec.gitRepo, commit, gitAuth(deps, s.cfg), { ref: s.cfg.spec.ref }))
    .then(
      (lease) => lease.release(),
      () => undefined,
    );
}

interface ApplyPlan {
  machine: MachineObject;
  desired: DesiredState;
  install: boolean;
  reinstallAt?: string;
}

async function planApply(deps: ConfigControllerDeps, s: Scope, fresh: boolean): Promise<ApplyPlan> {
  const spec = s.cfg.spec;
  const machine = readyMachine(deps, s);
  const commit = await resolveCommit(deps, s, fresh);
  const desired = computeDesired(spec, spec.flake, commit, {
    namespace: s.cfg.metadata.namespace ?? "",
    machine,
    secrets: deps.secrets,
    facts: deps.facts,
  });
  warnSecretsInStore(deps, s, desired);
  const memory = deps.applied.get(s.key);
  const reinstallAt = s.cfg.metadata.annotations?.[ANNOTATIONS.reinstallRequestedAt];
  const handled = [s.status.lastHandledReinstallAt, memory?.reinstallAt];
  const reinstall = !!reinstallAt && !handled.includes(reinstallAt);
  const installed = s.status.fullInstallCompleted === true || memory?.installed === true;
  const install = spec.fullInstall === true && (!installed || reinstall);
  return { machine, desired, install, reinstallAt };
}

/** Echoes the reconcile-requested-at annotation into status; true when it carries a value not handled before. */
function acknowledgeRequest(s: Scope): boolean {
  const requested = s.cfg.metadata.annotations?.[ANNOTATIONS.reconcileRequestedAt];
  if (!requested) return false;
  const fresh = requested !== s.status.lastHandledReconcileAt;
  s.status.lastHandledReconcileAt = requested;
  return fresh;
}

/** The target Machine, provided it exists, is not claimed by an older configuration, and its host key is verified. */
function readyMachine(deps: ConfigControllerDeps, s: Scope): MachineObject {
  const ns = s.cfg.metadata.namespace ?? "";
  const name = s.cfg.spec.machineRef.name;
  const machine = deps.machines.get(`${ns}/${name}`);
  if (!machine) throw new WaitingError(Reason.MachineNotFound, `Machine ${ns}/${name} not found`, 30_000);
  const rivals = deps.configs
    .byIndex(BY_MACHINE, `${ns}/${name}`)
    .filter((c) => c.metadata.uid !== s.cfg.metadata.uid && !c.metadata.deletionTimestamp);
  const owner = [s.cfg, ...rivals].sort(olderFirst)[0];
  if (owner && owner.metadata.uid !== s.cfg.metadata.uid) {
    throw new StalledError(
      Reason.MachineConflict,
      `Machine ${name} is already targeted by NixosConfiguration ${owner.metadata.name}; one machine runs one configuration`,
    );
  }
  const hostKey = machine.status?.conditions?.find((c) => c.type === ConditionType.HostKeyVerified);
  if (hostKey?.status === "False") {
    throw new WaitingError(Reason.HostKeyMismatch, `Machine ${name}: ${hostKey.message}`, 60_000);
  }
  if (!expectedHostKey(machine)) {
    throw new WaitingError(
      Reason.Progressing,
      `waiting for the first contact with Machine ${name} (host key not recorded yet)`,
      2_000,
    );
  }
  return machine;
}

function olderFirst(a: ConfigObject, b: ConfigObject): number {
  const ta = a.metadata.creationTimestamp ?? "";
  const tb = b.metadata.creationTimestamp ?? "";
  if (ta !== tb) return ta < tb ? -1 : 1;
  return (a.metadata.name ?? "") < (b.metadata.name ?? "") ? -1 : 1;
}

export function gitAuth(deps: ConfigControllerDeps, cfg: ConfigObject): GitAuth | undefined {
  return gitAuthFromSecret(deps.secrets, cfg.metadata.namespace ?? "", cfg.spec.credentialsRef);
}

export async function resolveCommit(deps: ConfigControllerDeps, s: Scope, fresh: boolean): Promise<string> {
  const spec = s.cfg.spec;
  try {
    const resolved = await deps.refs.resolve(spec.gitRepo, spec.ref, gitAuth(deps, s.cfg), { fresh });
    return resolved.commit;
  } catch (err) {
    const c = classifyError(err);
    if (c.kind === "stalled" || c.kind === "waiting") throw err;
    deps.metrics.configurationsFailed.inc({ reason: Reason.GitError });
    throw new WaitingError(
      c.reason === "AuthFailed" ? Reason.GitAuthenticationFailed : Reason.GitError,
      c.message,
      retryDelayMs(deps.config, 2),
    );
  }
}

function warnSecretsInStore(deps: ConfigControllerDeps, s: Scope, d: DesiredState): void {
  if (!d.secretsInFlake.length || s.status.observedGeneration === s.cfg.metadata.generation) return;
  deps.recorder.event(
    s.cfg,
    "Warning",
    "SecretInNixStore",
    `additionalFiles ${d.secretsInFlake.join(", ")} come from Secrets and will be copied into the world-readable Nix store; deliver secrets with hostFiles instead`,
  );
}

async function apply(
  deps: ConfigControllerDeps,
  s: Scope,
  plan: ApplyPlan,
  ctx: ReconcileContext,
): Promise<ReconcileResult> {
  const { machine, desired } = plan;
  const opts = { install: plan.install };
  const machineName = machine.metadata.name ?? "";
  setApplying(s.status, s.cond, desired.commit, machineName, s.now);
  // Written before waiting for the machine and an apply slot: the wait shows as "applying", and the slot is not held
  // during an API round trip.
  try {
    await writeStatus(deps, s);
  } catch (err) {
    return recordFailure(deps, s, desired, err, ctx);
  }
  const releaseMachine = await deps.machineLocks.acquire(nsName(machine));
  try {
    const outcome = await executeApply(deps, {
      mode: opts.install ? "install" : "switch",
      metricMode: opts.install ? "install" : "switch",
      target: await machineTarget(machine, deps.secrets, deps.config),
      expectedHostKey: expectedHostKey(machine),
      sudo: usesSudo(machine),
      git: { url: s.cfg.spec.gitRepo, auth: gitAuth(deps, s.cfg), ref: s.cfg.spec.ref },
      desired,
      writeHostFiles: true,
      signal: ctx.signal,
      logger: ctx.logger,
    });
    // (executeApply has released its slots: NIO_MAX_CONCURRENT_APPLIES does not cover the status bookkeeping.)
    await recordSuccess(deps, s, plan, outcome);
    return { requeueAfterMs: deps.config.configReconcileIntervalSeconds * 1000 };
  } catch (err) {
    return recordFailure(deps, s, desired, err, ctx);
  } finally {
    releaseMachine();
  }
}

async function recordSuccess(
  deps: ConfigControllerDeps,
  s: Scope,
  plan: ApplyPlan,
  outcome: ApplyOutcome,
): Promise<void> {
  const { machine, desired } = plan;
  const opts = { install: plan.install, reinstallAt: plan.reinstallAt };
  const machineName = machine.metadata.name ?? "";
  const logTail = redactSecrets(outcome.logTail, desired.secretValues);
  setApplied(s.status, s.cond, {
    commit: desired.commit,
    digest: desired.digest,
    now: s.now,
    machine: machineName,
    logTail,
    installed: opts.install,
  });
  if (opts.install && opts.reinstallAt) s.status.lastHandledReinstallAt = opts.reinstallAt;
  deps.failures.delete(s.key);
  const machineFields: Partial<MachineStatus> = {
    hasConfiguration: true,
    appliedConfiguration: s.cfg.metadata.name,
    appliedCommit: desired.commit,
    lastAppliedTime: s.now,
    ...(outcome.currentSystem ? { currentSystem: outcome.currentSystem } : {}),
    ...(outcome.newHostKey ? { sshHostKey: outcome.newHostKey } : {}),
  };
  deps.applied.set(s.key, {
    digest: desired.digest,
    installed: opts.install || deps.applied.get(s.key)?.installed === true,
    reinstallAt: opts.install ? opts.reinstallAt : deps.applied.get(s.key)?.reinstallAt,
    success: { status: structuredClone(s.status), machine: machineFields, at: Date.now() },
  });
  deps.metrics.configurationsApplied.inc();
  await patchMachineStatus(deps, machine, machineFields);
  deps.recorder.event(
    s.cfg,
    "Normal",
    opts.install ? "Installed" : "Applied",
    `${opts.install ? "installed" : "applied"} commit ${desired.commit.slice(0, 12)} (${s.cfg.spec.flake}) on Machine ${machineName}`,
  );
}

/**
 * Sets the Machine status fields this controller owns with an explicit merge patch (null removes a field). Never a
 * diff against the cached Machine, which may be older than the last write of either controller.
 */
export async function patchMachineStatus(
  deps: ConfigControllerDeps,
  machine: MachineObject,
  fields: { [K in keyof MachineStatus]?: MachineStatus[K] | null },
): Promise<void> {
  await deps.kube.patch(
    machines,
    { namespace: machine.metadata.namespace, name: machine.metadata.name ?? "" },
    { status: fields },
    "merge",
    { subresource: "status" },
  );
}

function recordFailure(
  deps: ConfigControllerDeps,
  s: Scope,
  desired: DesiredState,
  err: unknown,
  ctx: ReconcileContext,
): ReconcileResult {
  const c = classifyError(err);
  const logTail = err instanceof ApplyFailedError ? redactSecrets(err.logTail, desired.secretValues) : undefined;
  const message = redactSecrets(c.message, desired.secretValues);
  if (c.kind === "stalled") throw err;
  const previous = deps.failures.get(s.key);
  const same = previous?.digest === desired.digest;
  // Only a build or install that failed on its own merits uses up the retry budget; an unreachable machine or a
  // dropped connection is retried with backoff until it works (and a Machine turning Reachable triggers at once).
  const budgeted = BUDGETED_FAILURES.has(c.reason);
  const count = (same ? previous.count : 0) + 1;
  const budget = (same ? previous.budget : 0) + (budgeted ? 1 : 0);
  deps.failures.set(s.key, { digest: desired.digest, count, budget });
  setFailed(s.status, s.cond, {
    commit: desired.commit,
    reason: c.reason,
    message: `${message}${budgeted && budget >= deps.config.retryMaxAttempts ? ` (attempt ${budget} of ${deps.config.retryMaxAttempts}; no more retries until something changes)` : ""}`,
    logTail,
    now: s.now,
    result: c.reason === "ConnectionLost" ? "Unknown" : "Failed",
  });
  if (budgeted && budget >= deps.config.retryMaxAttempts) {
    // Retries for this desired state are used up: nothing happens until the commit, spec or a Secret changes.
    setStalled(
      s.status,
      s.cond,
      c.reason,
      `${message}; no more retries until the commit, spec or a referenced Secret changes (or a reconcile is requested)`,
    );
  }
  deps.metrics.configurationsFailed.inc({ reason: c.reason });
  deps.reconcileErrors?.inc({ controller: "nixosconfiguration", reason: c.reason });
  deps.recorder.event(s.cfg, "Warning", c.reason, message);
  ctx.logger.warn({ reason: c.reason, commit: desired.commit, attempt: count, error: message }, "apply failed");
  s.status.observedGeneration = s.cfg.metadata.generation;
  return { requeueAfterMs: retryDelayMs(deps.config, count - 1) };
}

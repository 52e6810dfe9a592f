import {
  ANNOTATIONS,
  ConditionType,
  Reason,
  formatValidationErrors,
  validateMachine,
  type MachineStatus,
} from "@nio/api";
import {
  StalledError,
  classifyError,
  formatTime,
  ignoreStatusOnlyUpdates,
  markStalled,
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
import type { NioConfig } from "../../config.js";
import { parseProbe, PROBE_SCRIPT, summarizeFacterReport, type FacterReports } from "../../facts.js";
import { acceptsKey, fingerprint } from "../../hostkeys.js";
import type { KnownHostsFile } from "../../known-hosts.js";
import { expectedHostKey, machineAddress, machineTarget, usesSudo } from "../../machine-access.js";
import type { NioMetrics } from "../../metrics.js";
import { machines, type MachineObject, type SecretObject } from "../../resources.js";
import {
  SshHostKeyMismatchError,
  normalizeHostKey,
  parseHostKey,
  type SshConnector,
  type SshSession,
} from "../../ssh/index.js";
import { setHostKeyVerified, setReachable, summarizeMachine } from "./status.js";

export interface MachineControllerDeps {
  kube: Kube;
  machines: Informer<MachineObject>;
  secrets: Informer<SecretObject>;
  ssh: SshConnector;
  config: NioConfig;
  metrics: NioMetrics;
  recorder: EventRecorder;
  facts: FacterReports;
  knownHosts?: KnownHostsFile;
  now?: () => Date;
}

/** Secret changes re-reconcile the Machines whose SSH key they hold. */
export const MACHINE_BY_SECRET = "machine-by-secret";

export function registerMachineController(mgr: Manager, deps: MachineControllerDeps): Controller {
  deps.machines.addIndex(MACHINE_BY_SECRET, (m) =>
    m.spec.sshKeySecretRef ? [`${m.metadata.namespace}/${m.spec.sshKeySecretRef.name}`] : [],
  );
  return mgr.controller({
    name: "machine",
    for: deps.machines,
    watches: [
      {
        informer: deps.secrets,
        map: (s) =>
          deps.machines
            .byIndex(MACHINE_BY_SECRET, `${s.metadata.namespace}/${s.metadata.name}`)
            .map((m) => `${m.metadata.namespace}/${m.metadata.name}`),
      },
    ],
    predicates: [ignoreStatusOnlyUpdates],
    concurrency: 8,
    reconcile: (key, ctx) => reconcileMachine(deps, key, ctx),
  });
}

interface Scope {
  machine: MachineObject;
  status: MachineStatus;
  cond: ConditionContext & { now: string };
  now: Date;
  nowIso: string;
}

export async function reconcileMachine(
  deps: MachineControllerDeps,
  key: ObjectKey,
  ctx: ReconcileContext,
): Promise<ReconcileResult> {
  const machine = deps.machines.get(`${key.namespace}/${key.name}`);
  if (!machine || machine.metadata.deletionTimestamp) {
    if (machine?.metadata.uid) deps.facts.delete(machine.metadata.uid);
    deps.knownHosts?.delete(`${key.namespace}/${key.name}`);
    return {};
  }
  const now = (deps.now ?? (() => new Date()))();
  const nowIso = formatTime(now);
  const before = snapshot(machine);
  const status: MachineStatus = structuredClone(machine.status ?? {});
  const scope: Scope = { machine, status, now, nowIso, cond: { generation: machine.metadata.generation, now: nowIso } };
  let result: ReconcileResult = {};
  try {
    result = await discover(deps, scope, ctx);
    status.observedGeneration = machine.metadata.generation;
  } catch (err) {
    const c = classifyError(err);
    if (c.kind !== "stalled") throw err;
    status.conditions = markStalled(status.conditions ?? [], c.reason, c.message, scope.cond);
    deps.recorder.event(machine, "Warning", c.reason, c.message);
  } finally {
    await patchStatus(deps.kube, machines, before, status);
  }
  return result;
}

function discoveryDue(deps: MachineControllerDeps, s: Scope): boolean {
  const m = s.machine;
  const requested = m.metadata.annotations?.[ANNOTATIONS.reconcileRequestedAt];
  if (requested && requested !== s.status.lastHandledReconcileAt) {
    s.status.lastHandledReconcileAt = requested;
    return true;
  }
  if (m.metadata.annotations?.[ANNOTATIONS.acceptHostKey]) return true;
  if (s.status.observedGeneration !== m.metadata.generation) return true;
  const last = s.status.lastDiscoveryTime ? Date.parse(s.status.lastDiscoveryTime) : 0;
  return s.now.getTime() - last >= deps.config.machineDiscoveryIntervalSeconds * 1000;
}

function nextDueMs(deps: MachineControllerDeps, s: Scope): number {
  const at = (iso: string | undefined, seconds: number): number =>
    (iso ? Date.parse(iso) : 0) + seconds * 1000 - s.now.getTime();
  const discovery = at(s.status.lastDiscoveryTime, deps.config.machineDiscoveryIntervalSeconds);
  const scan = at(s.status.lastHardwareScanTime, deps.config.hardwareScanIntervalSeconds);
  return Math.max(1000, Math.min(discovery, s.status.discoverable ? scan : discovery));
}

async function discover(deps: MachineControllerDeps, s: Scope, ctx: ReconcileContext): Promise<ReconcileResult> {
  const errors = validateMachine(s.machine);
  if (errors.length) throw new StalledError(Reason.InvalidSpec, formatValidationErrors(errors));
  if (s.machine.spec.sshHostKey && !parseHostKey(s.machine.spec.sshHostKey)) {
    throw new StalledError(
      Reason.InvalidSpec,
      "spec.sshHostKey: must be an OpenSSH public key whose base64 data is a key of the named type",
    );
  }
  if (!discoveryDue(deps, s)) return { requeueAfterMs: nextDueMs(deps, s) };
  const target = await machineTarget(s.machine, deps.secrets, deps.config);
  let session: SshSession | undefined;
  try {
    session = await connectVerified(deps, s, target);
    if (!session) return { requeueAfterMs: nextDueMs(deps, s) };
    setReachable(s.status, s.cond, true, Reason.Succeeded, `connected to ${target.user}@${target.host}:${target.port}`);
    await observeSystem(s, session);
    await scanHardwareIfDue(deps, s, session, ctx);
  } catch (err) {
    const c = classifyError(err);
    if (c.kind === "stalled") throw err;
    setReachable(s.status, s.cond, false, c.reason, c.message);
    ctx.logger.info({ machine: s.machine.metadata.name, reason: c.reason }, "machine not reachable");
  } finally {
    session?.close();
    summarizeMachine(s.status, s.cond);
  }
  return { requeueAfterMs: nextDueMs(deps, s) };
}

/**
 * Connects with the pinned or recorded key. First contact records the presented key. A changed key stops all work
 * on the machine until a person accepts it (annotation with the new key or its fingerprint); a pinned key can only
 * change through the spec.
 */
async function connectVerified(
  deps: MachineControllerDeps,
  s: Scope,
  target: Awaited<ReturnType<typeof machineTarget>>,
): Promise<SshSession | undefined> {
  const pinned = s.machine.spec.sshHostKey;
  const expected = expectedHostKey(s.machine);
  const timeoutMs = deps.config.sshConnectTimeoutSeconds * 1000;
  try {
    const session = await deps.ssh.connect(target, { expected }, { timeoutMs });
    recordHostKey(
      deps,
      s,
      session.hostKey,
      pinned ? Reason.HostKeyPinned : expected ? Reason.HostKeyMatches : Reason.HostKeyRecorded,
    );
    return session;
  } catch (err) {
    if (!(err instanceof SshHostKeyMismatchError)) throw err;
    const accept = s.machine.metadata.annotations?.[ANNOTATIONS.acceptHostKey];
    if (!pinned && acceptsKey(accept, err.presented)) {
      const session = await deps.ssh.connect(target, { expected: err.presented }, { timeoutMs });
      recordHostKey(deps, s, session.hostKey, Reason.HostKeyRecorded);
      deps.recorder.event(
        s.machine,
        "Normal",
        "HostKeyAccepted",
        `accepted the new host key ${fingerprint(err.presented)}`,
      );
      await removeAnnotation(deps, s.machine, ANNOTATIONS.acceptHostKey);
      return session;
    }
    const how = pinned
      ? "update spec.sshHostKey if the change is expected"
      : `if the machine was reinstalled, accept it: kubectl annotate machine ${s.machine.metadata.name} ${ANNOTATIONS.acceptHostKey}=${fingerprint(err.presented)}`;
    const msg = `host key changed: expected ${fingerprint(err.expected)}, presented ${fingerprint(err.presented)}; all work on this machine is stopped; ${how}`;
    if (s.status.conditions?.find((c) => c.type === ConditionType.HostKeyVerified)?.status !== "False") {
      deps.recorder.event(s.machine, "Warning", Reason.HostKeyMismatch, msg);
    }
    setHostKeyVerified(s.status, s.cond, false, Reason.HostKeyMismatch, msg);
    s.status.lastDiscoveryTime = s.nowIso;
    return undefined;
  }
}

function recordHostKey(deps: MachineControllerDeps, s: Scope, presented: string, reason: string): void {
  const first = !s.status.sshHostKey;
  s.status.sshHostKey = normalizeHostKey(presented);
  const m = s.machine;
  deps.knownHosts?.set(
    `${m.metadata.namespace}/${m.metadata.name}`,
    machineAddress(m),
    m.spec.sshPort ?? 22,
    presented,
  );
  setHostKeyVerified(s.status, s.cond, true, reason, `host key ${fingerprint(presented)}`);
  if (first) deps.recorder.event(s.machine, "Normal", reason, `recorded host key ${fingerprint(presented)}`);
}

async function removeAnnotation(deps: MachineControllerDeps, m: MachineObject, name: string): Promise<void> {
  await deps.kube.patch(
    machines,
    { namespace: m.metadata.namespace, name: m.metadata.name ?? "" },
    { metadata: { annotations: { [name]: null } } },
    "merge",
  );
}

/** What the machine really runs, read at every discovery (drift shows up here). */
async function observeSystem(s: Scope, session: SshSession): Promise<void> {
  const res = await session.exec(["readlink", "/run/current-system"], { timeoutMs: 10_000 });
  const path = res.code === 0 ? res.stdout.trim() : "";
  if (path) s.status.currentSystem = path;
}

async function scanHardwareIfDue(
  deps: MachineControllerDeps,
  s: Scope,
  session: SshSession,
  ctx: ReconcileContext,
): Promise<void> {
  const last = s.status.lastHardwareScanTime ? Date.parse(s.status.lastHardwareScanTime) : 0;
  const uid = s.machine.metadata.uid ?? "";
  const due = s.now.getTime() - last >= deps.config.hardwareScanIntervalSeconds * 1000 || !deps.facts.get(uid);
  if (!due) return;
  const sudo = usesSudo(s.machine);
  const facter = await session.exec(["sh", "-c", "command -v nixos-facter"], { timeoutMs: 10_000 });
  if (facter.code === 0) {
    const res = await session.exec(["nixos-facter"], { sudo, timeoutMs: 120_000 });
    if (res.code === 0) {
      deps.facts.set(uid, Buffer.from(res.stdout));
      s.status.hardwareFacts = summarizeFacterReport(res.stdout);
      s.status.lastHardwareScanTime = s.nowIso;
      return;
    }
    ctx.logger.warn({ machine: s.machine.metadata.name, code: res.code }, "nixos-facter failed; using the probe");
  }
  const probe = await session.exec(["sh", "-c", PROBE_SCRIPT], { timeoutMs: 30_000 });
  if (probe.code === 0) {
    s.status.hardwareFacts = parseProbe(probe.stdout);
    s.status.lastHardwareScanTime = s.nowIso;
  }
}

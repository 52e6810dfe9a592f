import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { Logger } from "@nio/runtime";
import { retryDelayMs, type NioConfig } from "../config.js";
import { redactSecrets, type DesiredState } from "../controllers/nixosconfiguration/desired.js";
import type { GitAuth, GitSource, TreeLease } from "../git/index.js";
import type { NioMetrics } from "../metrics.js";
import {
  SshCommandTimeoutError,
  SshConnectionLostError,
  type SshConnector,
  type SshSession,
  type SshTarget,
} from "../ssh/index.js";
import { materializeWorkspace, type Workspace } from "../workspace/index.js";
import { ApplyFailedError } from "./errors.js";
import type { ApplySlots } from "./limits.js";
import { WorkspacePool, workspaceKey, type WorkspaceHold } from "./workspaces.js";
import {
  awaitApply,
  RunStillRunningError,
  startApply,
  stopApply,
  type ApplyRun,
  type RunOutcome,
} from "./remote-run.js";

export const REMOTE_SRC_DIR = "/var/lib/nio/src";
export const REMOTE_RUN_DIR = "/var/lib/nio/runs";
/** Source trees kept on a machine (the newest ones; older are removed after a successful switch). */
const KEEP_SOURCES = 3;

export interface ApplyRequest {
  mode: "switch" | "install";
  /** What `nixos-rebuild`/`nixos-anywhere` reports as the operation in metrics. */
  metricMode: "switch" | "install" | "remove";
  target: SshTarget;
  expectedHostKey?: string;
  sudo: boolean;
  git: { url: string; auth?: GitAuth; ref?: string };
  desired: DesiredState;
  /** Host files are written (before the switch) unless false (e.g. onRemoveFlake). */
  writeHostFiles: boolean;
  signal?: AbortSignal;
  logger: Logger;
}

export interface ApplyOutcome {
  currentSystem: string;
  logTail: string;
  /** The host key after a full install (NIO reinstalled the machine, so it records the new key). */
  newHostKey?: string;
}

export interface ExecutorDeps {
  ssh: SshConnector;
  git: GitSource;
  config: NioConfig;
  metrics: NioMetrics;
  /** Bounds preparing and running applies (NIO_MAX_CONCURRENT_APPLIES). */
  slots: ApplySlots;
  /** The nixos-anywhere command (default `nixos-anywhere` from PATH). */
  nixosAnywhere?: string;
}

/** Workspaces of concurrent switches with the same source are shared (see WorkspacePool). */
const sharedWorkspaces = new WorkspacePool();

/**
 * Runs one apply end to end. Throws typed errors (ApplyFailedError, Ssh*Error, GitError, WorkspacePathError).
 * Holds a prepare slot while it gets the source, connects, writes host files and uploads, then a run slot for the
 * switch itself (see ApplySlots); an install holds the run slot for all of nixos-anywhere.
 */
export async function executeApply(deps: ExecutorDeps, req: ApplyRequest): Promise<ApplyOutcome> {
  const t0 = Date.now();
  const step = (name: string): void => req.logger.debug({ step: name, ms: Date.now() - t0 }, "apply step");
  const releasePrepare = await deps.slots.prepare.acquire();
  let releaseRun: (() => void) | undefined;
  const runSlot = async (opts: { onlyIfFree?: boolean } = {}): Promise<boolean> => {
    releaseRun = opts.onlyIfFree ? deps.slots.run.tryAcquire() : await deps.slots.run.acquire();
    if (!releaseRun) return false;
    releasePrepare();
    step("run-slot");
    return true;
  };
  try {
    return await prepareAndRun(deps, req, step, runSlot);
  } finally {
    releaseRun?.();
    releasePrepare();
  }
}

async function prepareAndRun(
  deps: ExecutorDeps,
  req: ApplyRequest,
  step: (name: string) => void,
  runSlot: RunSlot,
): Promise<ApplyOutcome> {
  // A switch's connection does not depend on the source: both are prepared at once.
  const connecting = req.mode === "switch" ? connect(deps, req, req.expectedHostKey) : undefined;
  connecting?.then(
    () => step("connected"),
    () => undefined,
  );
  let lease: TreeLease | undefined;
  let hold: WorkspaceHold;
  try {
    lease = await deps.git.checkout(req.git.url, req.desired.commit, req.git.auth, { ref: req.git.ref });
    step("checkout");
    hold = await workspaceFor(deps, req, lease);
    step("workspace");
  } catch (err) {
    void connecting?.then(
      (s) => s.close(),
      () => undefined,
    );
    await lease?.release();
    throw err;
  }
  try {
    const outcome =
      connecting === undefined
        ? await runSlot().then(() => measured(deps, req, () => install(deps, req, hold.ws)))
        : await switchOver(deps, req, { source: hold, session: await connecting, step, runSlot });
    return outcome;
  } finally {
    await hold.release();
    await lease.release();
    step("done");
  }
}

/** Counts and times the part of an apply that runs on the machine (nixos-rebuild or nixos-anywhere). */
async function measured(
  deps: ExecutorDeps,
  req: ApplyRequest,
  run: () => Promise<ApplyOutcome>,
): Promise<ApplyOutcome> {
  const started = Date.now();
  deps.metrics.appliesInFlight.inc();
  try {
    const outcome = await run();
    deps.metrics.nixosBuilds.inc({ mode: req.metricMode, result: "success" });
    return outcome;
  } catch (err) {
    deps.metrics.nixosBuilds.inc({
      mode: req.metricMode,
      result: err instanceof ApplyFailedError ? "failure" : "error",
    });
    throw err;
  } finally {
    deps.metrics.appliesInFlight.dec();
    deps.metrics.nixosBuildDuration.observe({ mode: req.metricMode }, (Date.now() - started) / 1000);
  }
}

/**
 * The flake source of this apply. A switch shares it with concurrent switches of the same source; an install gets
 * its own (nixos-anywhere evaluates the flake in place, and Nix may write a lock file there).
 */
async function workspaceFor(deps: ExecutorDeps, req: ApplyRequest, lease: TreeLease): Promise<WorkspaceHold> {
  const baseDir = join(deps.config.baseConfigPath, "workspaces");
  const additionalFiles = req.desired.additionalFiles.map((f, i) => ({
    ...f,
    field: `spec.additionalFiles[${i}].path`,
  }));
  const make = (): Promise<Workspace> =>
    materializeWorkspace({ baseDir, sourceDir: lease.dir, subdir: req.desired.subdir, additionalFiles });
  if (req.mode === "install") {
    const ws = await make();
    return { ws, tar: () => ws.tarStream(), release: () => ws.cleanup() };
  }
  const key = workspaceKey({
    baseDir,
    treeDir: lease.dir,
    commit: lease.commit,
    subdir: req.desired.subdir,
    additionalFiles: req.desired.additionalFiles,
  });
  return sharedWorkspaces.acquire(key, make);
}

function connect(deps: ExecutorDeps, req: ApplyRequest, expected: string | undefined): Promise<SshSession> {
  return deps.ssh.connect(
    req.target,
    { expected },
    { timeoutMs: deps.config.sshConnectTimeoutSeconds * 1000, signal: req.signal },
  );
}

/** Machine output may echo file contents: secret values never reach the log. */
function redact(text: string, req: ApplyRequest): string {
  return redactSecrets(text, req.desired.secretValues);
}

function flakeUri(dir: string, req: ApplyRequest): string {
  const sub = req.desired.flake.dir ? `/${req.desired.flake.dir}` : "";
  return `${dir}${sub}#${req.desired.flake.attr}`;
}

async function writeHostFiles(session: SshSession, req: ApplyRequest): Promise<void> {
  if (!req.writeHostFiles) return;
  for (const f of req.desired.hostFiles) {
    await session.writeFileAtomic(f.path, f.content, { mode: f.mode, sudo: req.sudo });
  }
}

interface SwitchContext {
  source: WorkspaceHold;
  session: SshSession;
  step: (name: string) => void;
  runSlot: RunSlot;
}

/** Takes a run slot (the preparation is done): waits for one, or with onlyIfFree takes one only if it is free now. */
type RunSlot = (opts?: { onlyIfFree?: boolean }) => Promise<boolean>;

/**
 * The switch over SSH. Prepared before a run slot is free: host files, and the source uploaded unless the machine has
 * it. Then one command runs `nixos-rebuild switch` detached, follows its log, reads /run/current-system and prunes
 * (see remote-run.ts).
 */
async function switchOver(deps: ExecutorDeps, req: ApplyRequest, sw: SwitchContext): Promise<ApplyOutcome> {
  const { source, step, session } = sw;
  const ws = source.ws;
  const id = `${Date.now()}-${randomBytes(4).toString("hex")}`;
  const sourceDir = `${REMOTE_SRC_DIR}/${ws.contentHash}`;
  const run: ApplyRun = {
    runDir: `${REMOTE_RUN_DIR}/${id}`,
    sourceDir,
    sourceTmp: `${sourceDir}.tmp-${id}`,
    tar: () => source.tar(),
    keepSources: KEEP_SOURCES,
    argv: ["nixos-rebuild", "switch", "--flake", flakeUri(`path:${sourceDir}`, req)],
  };
  try {
    await writeHostFiles(session, req);
    if (req.desired.hostFiles.length && req.writeHostFiles) step("host-files");
    // START uploads the source itself when the machine lacks it (one command); only an apply that has to wait for a
    // run slot uploads first, so that it does not pay for the upload inside the slot.
    if (!(await sw.runSlot({ onlyIfFree: true }))) {
      await session.uploadTar(() => source.tar(), sourceDir, { sudo: req.sudo, signal: req.signal });
      step("prepared");
      await sw.runSlot();
    }
    return await measured(deps, req, () => runSwitch(deps, req, session, run, step));
  } finally {
    session.close();
  }
}

/** START on the machine, and after a dropped connection AWAIT on a new one (closed here; `session` by the caller). */
async function runSwitch(
  deps: ExecutorDeps,
  req: ApplyRequest,
  connected: SshSession,
  run: ApplyRun,
  step: (name: string) => void,
): Promise<ApplyOutcome> {
  let session = connected;
  const timeoutMs = deps.config.applyTimeoutSeconds * 1000;
  const timedOut = (tail: string): ApplyFailedError =>
    new ApplyFailedError("Timeout", `nixos-rebuild did not finish within ${deps.config.applyTimeoutSeconds} s`, tail);
  try {
    let outcome: RunOutcome;
    try {
      outcome = await startApply(session, run, {
        sudo: req.sudo,
        timeoutMs,
        signal: req.signal,
        onOutput: (chunk) => req.logger.debug({ output: redact(chunk, req).trimEnd() }, "nixos-rebuild"),
      });
    } catch (err) {
      if (err instanceof SshCommandTimeoutError) {
        await stopApply(session, run.runDir, req.sudo).catch(() => undefined);
        throw timedOut(err.tail ?? "");
      }
      if (!(err instanceof SshConnectionLostError)) throw err;
      // Outcome unknown: the switch runs on, detached. Reconnect and read what it recorded; never re-run blindly.
      req.logger.warn({ runDir: run.runDir }, "connection lost during nixos-rebuild; reconnecting to read its outcome");
      session.close();
      session = await reconnect(deps, req);
      try {
        outcome = await awaitApply(session, run, { sudo: req.sudo, timeoutMs });
      } catch (awaitErr) {
        if (!(awaitErr instanceof RunStillRunningError)) throw awaitErr;
        await stopApply(session, run.runDir, req.sudo).catch(() => undefined);
        throw timedOut(awaitErr.tail);
      }
    }
    step("switched");
    if (outcome.code !== 0) {
      throw new ApplyFailedError(
        "BuildFailed",
        `nixos-rebuild switch failed with exit code ${outcome.code}`,
        outcome.tail,
        outcome.code,
      );
    }
    return { currentSystem: outcome.currentSystem, logTail: outcome.tail };
  } finally {
    session.close();
  }
}

async function reconnect(deps: ExecutorDeps, req: ApplyRequest): Promise<SshSession> {
  let lastError: unknown;
  for (let attempt = 0; attempt < Math.max(3, deps.config.retryMaxAttempts); attempt++) {
    try {
      return await connect(deps, req, req.expectedHostKey);
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, retryDelayMs(deps.config, attempt)));
    }
  }
  throw lastError;
}

async function readCurrentSystem(session: SshSession): Promise<string> {
  const res = await session.exec(["readlink", "/run/current-system"], { timeoutMs: 15_000 });
  return res.code === 0 ? res.stdout.trim() : "";
}

async function install(deps: ExecutorDeps, req: ApplyRequest, ws: Workspace): Promise<ApplyOutcome> {
  const keyDir = await mkdtemp(join(deps.config.baseConfigPath, "key-"));
  try {
    const keyFile = join(keyDir, "id");
    await writeFile(keyFile, req.target.privateKey, { mode: 0o600 });
    const argv = [
      "--flake",
      flakeUri(ws.dir, req),
      "--target-host",
      `${req.target.user}@${req.target.host}`,
      "-p",
      String(req.target.port),
      "-i",
      keyFile,
      ...(await stageHostFiles(req, join(keyDir, "extra"))),
    ];
    const res = await runLocal(
      deps.nixosAnywhere ?? "nixos-anywhere",
      argv,
      deps.config.applyTimeoutSeconds * 1000,
      req,
    );
    if (res.code !== 0) {
      const reason = res.timedOut ? "Timeout" : "InstallFailed";
      throw new ApplyFailedError(reason, `nixos-anywhere failed with exit code ${res.code ?? "?"}`, res.tail, res.code);
    }
    // NIO reinstalled the machine itself, so the new host key is trusted and recorded.
    const session = await connect(deps, req, undefined);
    try {
      await writeHostFiles(session, req);
      return { currentSystem: await readCurrentSystem(session), logTail: res.tail, newHostKey: session.hostKey };
    } finally {
      session.close();
    }
  } finally {
    await rm(keyDir, { recursive: true, force: true });
  }
}

/**
 * Host files ride along with the install (`--extra-files`, owned by root through `--chown`), so they are in place
 * when the new system first boots (a service reading e.g. a join token must not start without it). They are staged
 * in the private key directory (0700) and removed with it; they are written over SSH again afterwards, as always.
 */
async function stageHostFiles(req: ApplyRequest, dir: string): Promise<string[]> {
  if (!req.writeHostFiles || req.desired.hostFiles.length === 0) return [];
  const args = ["--extra-files", dir];
  for (const f of req.desired.hostFiles) {
    const target = resolve(dir, `.${f.path}`);
    if (!target.startsWith(`${dir}/`)) throw new Error(`host file path ${JSON.stringify(f.path)} leaves the root`);
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    await writeFile(target, f.content, { mode: f.mode & 0o777 });
    await chmod(target, f.mode & 0o777);
    args.push("--chown", f.path, "0:0");
  }
  return args;
}

function runLocal(
  command: string,
  args: string[],
  timeoutMs: number,
  req: ApplyRequest,
): Promise<{ code: number | null; tail: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    let timedOut = false;
    const keep = (d: Buffer): void => {
      const text = d.toString("utf8");
      req.logger.debug({ output: redact(text, req).trimEnd() }, "nixos-anywhere");
      tail = (tail + text).slice(-16_384);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
    }, timeoutMs);
    const onAbort = (): void => void child.kill("SIGTERM");
    req.signal?.addEventListener("abort", onAbort, { once: true });
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      req.signal?.removeEventListener("abort", onAbort);
      resolve({ code, tail, timedOut });
    });
  });
}

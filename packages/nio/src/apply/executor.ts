import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "@nio/runtime";
import { retryDelayMs, type NioConfig } from "../config.js";
import { redactSecrets, type DesiredState } from "../controllers/nixosconfiguration/desired.js";
import type { GitAuth, GitSource } from "../git/index.js";
import type { NioMetrics } from "../metrics.js";
import {
  SshCommandTimeoutError,
  SshConnectionLostError,
  type ExecResult,
  type SshConnector,
  type SshSession,
  type SshTarget,
} from "../ssh/index.js";
import { materializeWorkspace, type Workspace } from "../workspace/index.js";
import { ApplyFailedError } from "./errors.js";
import { awaitDetached, startDetached, stopDetached } from "./remote-run.js";

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
  /** Host files are written (after the upload, before the switch) unless false (e.g. onRemoveFlake). */
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
  /** The nixos-anywhere command (default `nixos-anywhere` from PATH). */
  nixosAnywhere?: string;
}

/** Runs one apply end to end. Throws typed errors (ApplyFailedError, Ssh*Error, GitError, WorkspacePathError). */
export async function executeApply(deps: ExecutorDeps, req: ApplyRequest): Promise<ApplyOutcome> {
  const lease = await deps.git.checkout(req.git.url, req.desired.commit, req.git.auth, { ref: req.git.ref });
  try {
    const ws = await materializeWorkspace({
      baseDir: join(deps.config.baseConfigPath, "workspaces"),
      sourceDir: lease.dir,
      subdir: req.desired.subdir,
      additionalFiles: req.desired.additionalFiles.map((f, i) => ({
        ...f,
        field: `spec.additionalFiles[${i}].path`,
      })),
    });
    const started = Date.now();
    deps.metrics.appliesInFlight.inc();
    try {
      const outcome = req.mode === "install" ? await install(deps, req, ws) : await switchOver(deps, req, ws);
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
      await ws.cleanup();
    }
  } finally {
    await lease.release();
  }
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

async function switchOver(deps: ExecutorDeps, req: ApplyRequest, ws: Workspace): Promise<ApplyOutcome> {
  const t0 = Date.now();
  const step = (name: string): void => req.logger.debug({ step: name, ms: Date.now() - t0 }, "apply step");
  let session = await connect(deps, req, req.expectedHostKey);
  step("connected");
  const runDir = `${REMOTE_RUN_DIR}/${Date.now()}-${randomBytes(4).toString("hex")}`;
  const timeoutMs = deps.config.applyTimeoutSeconds * 1000;
  try {
    const remoteDir = `${REMOTE_SRC_DIR}/${ws.contentHash}`;
    await session.uploadTar(() => ws.tarStream(), remoteDir, { sudo: req.sudo });
    step("uploaded");
    await writeHostFiles(session, req);
    const argv = ["nixos-rebuild", "switch", "--flake", flakeUri(`path:${remoteDir}`, req)];
    let result: ExecResult;
    try {
      result = await startDetached(session, runDir, argv, {
        sudo: req.sudo,
        timeoutMs,
        signal: req.signal,
        onOutput: (chunk) => req.logger.debug({ output: redact(chunk, req).trimEnd() }, "nixos-rebuild"),
      });
    } catch (err) {
      if (err instanceof SshCommandTimeoutError) {
        await stopDetached(session, runDir, req.sudo).catch(() => undefined);
        throw new ApplyFailedError(
          "Timeout",
          `nixos-rebuild did not finish within ${deps.config.applyTimeoutSeconds} s`,
          err.tail ?? "",
        );
      }
      if (!(err instanceof SshConnectionLostError)) throw err;
      // Outcome unknown: the switch runs on, detached. Reconnect and read what it recorded; never re-run blindly.
      req.logger.warn({ runDir }, "connection lost during nixos-rebuild; reconnecting to read its outcome");
      session.close();
      session = await reconnect(deps, req);
      result = await awaitDetached(session, runDir, { sudo: req.sudo, timeoutMs });
    }
    if (result.code !== 0) {
      throw new ApplyFailedError(
        "BuildFailed",
        `nixos-rebuild switch failed with exit code ${result.code ?? result.signal ?? "?"}`,
        result.tail,
        result.code,
      );
    }
    step("switched");
    const currentSystem = await readCurrentSystem(session);
    await pruneRemote(session, req.sudo, runDir);
    step("pruned");
    return { currentSystem, logTail: result.tail };
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

/** Keeps the newest source trees and removes the finished run's directory. Best effort. */
async function pruneRemote(session: SshSession, sudo: boolean, runDir: string): Promise<void> {
  const script =
    'rm -rf -- "$1"; cd "$2" 2>/dev/null || exit 0; ls -1t | tail -n +"$3" | while read -r d; do rm -rf -- "./$d"; done';
  await session
    .exec(["sh", "-c", script, "nio-prune", runDir, REMOTE_SRC_DIR, String(KEEP_SOURCES + 1)], {
      sudo,
      timeoutMs: 30_000,
    })
    .catch(() => undefined);
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

import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

/** A process the testbed started. `stop()` ends this process only (and, with `group`, its process group). */
export interface ManagedProcess {
  readonly pid: number;
  readonly name: string;
  readonly logFile: string;
  /** Resolves with the exit code (or signal) once the process has ended. */
  readonly exited: Promise<number | string>;
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  name: string;
  command: string;
  args: readonly string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * Leave the process running when this Node process exits (used by `testbed up`).
   * The process gets its own process group so that `stop` can end it and its children together.
   */
  detached?: boolean;
}

const running = new Set<ManagedProcess>();

/** The processes this Node process started with {@link startProcess} that have not ended yet. */
export function runningProcesses(): readonly ManagedProcess[] {
  return [...running];
}

export function startProcess(opts: StartOptions): ManagedProcess {
  const out = openSync(opts.logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(opts.command, [...opts.args], {
      stdio: ["ignore", out, out],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      detached: true,
    });
  } finally {
    closeSync(out);
  }
  if (child.pid === undefined) {
    throw new Error(`could not start ${opts.name} (${opts.command})`);
  }
  if (opts.detached) child.unref();
  const pid = child.pid;
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
    child.once("error", () => resolve("spawn-error"));
  });
  const proc: ManagedProcess = {
    pid,
    name: opts.name,
    logFile: opts.logFile,
    exited,
    stop: (graceMs = 5000) => stopGroup(pid, graceMs, exited),
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

/** Sends SIGTERM to the process group `pid`, then SIGKILL after `graceMs`. */
export async function stopGroup(pid: number, graceMs: number, exited?: Promise<unknown>): Promise<void> {
  if (!signalGroup(pid, "SIGTERM")) return;
  const gone = exited ?? waitUntilGone(pid, graceMs);
  const timedOut = await Promise.race([
    gone.then(() => false),
    new Promise<boolean>((r) => setTimeout(() => r(true), graceMs).unref()),
  ]);
  if (timedOut) {
    signalGroup(pid, "SIGKILL");
    await (exited ?? waitUntilGone(pid, 2000));
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

/** Whether `pid` runs. A zombie (exited, not yet reaped by its parent or init) does not count as running. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

async function waitUntilGone(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(25);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a value other than undefined, or fails with the last error after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  { timeoutMs = 10_000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `: ${lastError.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** Last `lines` lines of a log file, for error messages. */
export async function logTail(file: string, lines = 20): Promise<string> {
  try {
    const text = await readFile(file, "utf8");
    return text.split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion with an argv array (never a shell) and collects its output. */
export function run(
  command: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string | Buffer; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: opts.timeoutMs,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.once("error", reject);
    // A child that exits without reading its input must not crash us with EPIPE.
    child.stdin.on("error", () => undefined);
    child.once("close", (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
    child.stdin.end(opts.input ?? "");
  });
}

/** Like `run`, but throws with the command's stderr when it exits non-zero. */
export async function runChecked(
  command: string,
  args: readonly string[],
  opts: Parameters<typeof run>[2] = {},
): Promise<string> {
  const res = await run(command, args, opts);
  if (res.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${res.code}: ${res.stderr.trim() || res.stdout.trim()}`);
  }
  return res.stdout;
}

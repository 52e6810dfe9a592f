// One operator (NIO or NICO) as a separate process: `node packages/<op>/dist/src/main.js` with its own environment,
// ports and log file, restartable with the same settings, and never outliving the process that started it.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { repoRoot, sleep } from "@nio/testbed";

export interface OperatorProcess {
  /** "nio-0", "nio-1", "nico": also its POD_NAME (Lease holder identity prefix, Events' reportingInstance). */
  readonly name: string;
  /** PID of the running process (undefined while stopped). */
  pid(): number | undefined;
  /** `http://127.0.0.1:<port>/metrics` */
  readonly metricsUrl: string;
  /** `http://127.0.0.1:<port>` (`/health`, `/ready`, `/live`). */
  readonly healthUrl: string;
  /** The operator's git webhook, `POST /hooks/git` (NIO: a ref check of the repository's configurations; NICO: of
   * its clusters). */
  readonly webhookUrl: string | undefined;
  /** stdout and stderr of every run, appended (JSON lines). */
  readonly logFile: string;
  /** The environment the process runs with (variables only the stack sets; PATH etc. included). */
  readonly env: Readonly<Record<string, string>>;
  /** Sends `signal` (default SIGTERM) to the process and waits until it has exited; no-op when it is not running. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** (Re)starts it with the same ports and environment; resolves when /ready answers 200 (or, failing that, /live). */
  start(): Promise<void>;
  /** `GET /metrics`, the Prometheus text. */
  metrics(): Promise<string>;
  /** The log file's content. */
  log(): Promise<string>;
}

export interface OperatorSpec {
  name: string;
  /** Entry point, relative to the repository root. */
  main: string;
  env: Record<string, string>;
  metricsPort: number;
  healthPort: number;
  webhookPort?: number;
  logFile: string;
  /** How long start() waits for /ready (default 90 s). */
  readyTimeoutMs?: number;
  /** How long kill("SIGTERM") waits before it sends SIGKILL (default 30 s). */
  stopGraceMs?: number;
  log?: (line: string) => void;
}

/** `--import`ed into each operator: stops it when the stack's process goes away (see stack-watchdog.ts). */
const WATCHDOG = new URL("./stack-watchdog.js", import.meta.url).href;

/** Every operator process started from this Node process and still running: SIGKILLed on exit. */
const live = new Set<number>();
let exitHook = false;

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.on("exit", () => {
    for (const pid of live) signalGroup(pid, "SIGKILL");
  });
}

/** Signals the process group `pid` leads (the operator and anything it spawned); false if none is left. */
function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** True when `url` answers 2xx within 2 s. */
export async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

async function logTail(file: string, lines = 30): Promise<string> {
  try {
    return (await readFile(file, "utf8")).split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

interface Running {
  child: ChildProcess;
  pid: number;
  exited: Promise<number | string>;
}

function spawnOperator(spec: OperatorSpec): Running {
  const out = openSync(spec.logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, ["--import", WATCHDOG, spec.main], {
      cwd: repoRoot,
      env: spec.env,
      // stdin: a pipe we never write to nor close (the watchdog's lifeline); output to the log file.
      stdio: ["pipe", out, out],
      // Its own process group, so that stopping it also ends whatever it spawned (nixos-anywhere).
      detached: true,
    });
  } finally {
    closeSync(out);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${spec.name} (${spec.main})`);
  child.stdin?.on("error", () => undefined);
  live.add(pid);
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(pid);
      resolve(code ?? signal ?? "unknown");
    });
  });
  return { child, pid, exited };
}

/** Resolves `true` when the process exited within `ms`. */
async function exitsWithin(run: Running, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([run.exited.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A process of one operator; call start() to run it. */
export function operatorProcess(spec: OperatorSpec): OperatorProcess {
  installExitHook();
  const base = "http://127.0.0.1";
  const healthUrl = `${base}:${spec.healthPort}`;
  let running: Running | undefined;

  const waitUntilUp = async (run: Running): Promise<void> => {
    const deadline = Date.now() + (spec.readyTimeoutMs ?? 90_000);
    let exitCode: number | string | undefined;
    void run.exited.then((c) => (exitCode = c));
    while (Date.now() < deadline) {
      if (exitCode !== undefined) {
        throw new Error(`${spec.name} exited (${exitCode}) before it was ready:\n${await logTail(spec.logFile)}`);
      }
      if (await httpOk(`${healthUrl}/ready`)) return;
      await sleep(200);
    }
    if (await httpOk(`${healthUrl}/live`)) {
      spec.log?.(`${spec.name}: not ready after ${spec.readyTimeoutMs ?? 90_000} ms, but alive; going on`);
      return;
    }
    throw new Error(`${spec.name} answered neither /ready nor /live:\n${await logTail(spec.logFile)}`);
  };

  const op: OperatorProcess = {
    name: spec.name,
    pid: () => running?.pid,
    metricsUrl: `${base}:${spec.metricsPort}/metrics`,
    healthUrl,
    webhookUrl: spec.webhookPort !== undefined ? `${base}:${spec.webhookPort}/hooks/git` : undefined,
    logFile: spec.logFile,
    env: spec.env,
    async start() {
      if (running) throw new Error(`${spec.name} is already running (pid ${running.pid})`);
      const t0 = Date.now();
      const run = spawnOperator(spec);
      running = run;
      void run.exited.then(() => {
        if (running === run) running = undefined;
      });
      try {
        await waitUntilUp(run);
      } catch (err) {
        await op.kill("SIGKILL");
        throw err;
      }
      spec.log?.(`${spec.name} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (pid ${run.pid})`);
    },
    async kill(signal: NodeJS.Signals = "SIGTERM") {
      const run = running;
      if (!run) return;
      signalProcess(run.pid, signal);
      const grace = signal === "SIGKILL" ? 5000 : (spec.stopGraceMs ?? 30_000);
      if (!(await exitsWithin(run, grace))) {
        spec.log?.(`${spec.name} did not exit within ${grace} ms after ${signal}; killing it`);
        signalGroup(run.pid, "SIGKILL");
        await run.exited;
      }
      // Whatever it spawned and left behind (a pod's containers all go when it ends).
      signalGroup(run.pid, "SIGKILL");
      if (running === run) running = undefined;
    },
    async metrics() {
      const res = await fetch(op.metricsUrl, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`GET ${op.metricsUrl}: ${res.status}`);
      return res.text();
    },
    log: () => readFile(spec.logFile, "utf8").catch(() => ""),
  };
  return op;
}

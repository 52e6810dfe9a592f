import type { ExecResult, SshSession } from "../ssh/index.js";

/**
 * Runs a command on the machine so that it survives the SSH session: started with setsid, its output and exit
 * status go to files under `runDir`, and the foreground only follows the log. A dropped connection therefore
 * neither interrupts an activation half-way nor leaves its outcome unknown: `awaitDetached` reconnects and reads
 * the recorded status. The scripts are constants; every variable part arrives as a positional parameter.
 */
const START = [
  "set -u",
  "d=$1; shift",
  'mkdir -p "$d" && rm -f "$d/status" "$d/status.tmp" && : > "$d/log" || exit 125',
  `setsid sh -c 'd=$1; shift; "$@" > "$d/log" 2>&1 < /dev/null; echo $? > "$d/status.tmp"; mv "$d/status.tmp" "$d/status"' nio-run "$d" "$@" < /dev/null > /dev/null 2>&1 &`,
  'echo $! > "$d/pid"',
  'tail -s 0.2 -n +1 --pid=$! -f "$d/log"',
  'while [ ! -f "$d/status" ]; do sleep 0.2; done',
  'exit "$(cat "$d/status")"',
].join("\n");

const AWAIT = [
  "set -u",
  "d=$1; limit=$2; waited=0",
  '[ -d "$d" ] || { echo "no such run: $d" >&2; exit 124; }',
  'while [ ! -f "$d/status" ]; do',
  '  if [ "$waited" -ge "$limit" ]; then echo "still running after ${limit}s" >&2; exit 123; fi',
  "  sleep 1; waited=$((waited + 1))",
  "done",
  'tail -c 16384 "$d/log"',
  'exit "$(cat "$d/status")"',
].join("\n");

const STOP = 'd=$1; [ -f "$d/pid" ] && kill -TERM -- "-$(cat "$d/pid")" 2>/dev/null; exit 0';

export interface DetachedRunOptions {
  sudo: boolean;
  timeoutMs: number;
  onOutput?: (chunk: string) => void;
  signal?: AbortSignal;
}

export function startDetached(
  session: SshSession,
  runDir: string,
  argv: readonly string[],
  opts: DetachedRunOptions,
): Promise<ExecResult> {
  return session.exec(["sh", "-c", START, "nio-apply", runDir, ...argv], {
    sudo: opts.sudo,
    timeoutMs: opts.timeoutMs,
    signal: opts.signal,
    onOutput: opts.onOutput ? (chunk) => opts.onOutput?.(chunk) : undefined,
  });
}

/** After a dropped connection: waits (on a new session) for the run to finish and returns its status and log tail. */
export function awaitDetached(
  session: SshSession,
  runDir: string,
  opts: { sudo: boolean; timeoutMs: number },
): Promise<ExecResult> {
  const limitSeconds = Math.max(1, Math.floor(opts.timeoutMs / 1000));
  return session.exec(["sh", "-c", AWAIT, "nio-await", runDir, String(limitSeconds)], {
    sudo: opts.sudo,
    timeoutMs: opts.timeoutMs + 10_000,
  });
}

/** Ends a run that outlived its timeout (its whole process group). */
export async function stopDetached(session: SshSession, runDir: string, sudo: boolean): Promise<void> {
  await session.exec(["sh", "-c", STOP, "nio-stop", runDir], { sudo, timeoutMs: 10_000 });
}

import { PassThrough, type Readable } from "node:stream";
import { SshConnectionLostError, SshRemoteCommandError, type ExecResult, type SshSession } from "../ssh/index.js";

/**
 * One apply on the machine in one SSH command (START): makes sure the flake source is there (uploads it only when
 * missing), starts the command detached, follows its log, and once it has ended reads /run/current-system and
 * prunes old sources and finished runs.
 *
 * The command survives the SSH session: started with setsid, its output and exit status go to files under the run
 * directory, and the foreground only follows the log. A dropped connection therefore neither interrupts an
 * activation half-way nor leaves its outcome unknown: `awaitApply` reconnects and reads the recorded status.
 *
 * Nothing polls on the happy path: the foreground `wait`s for the detached run (its child), then touches the log so
 * that `tail --pid` (woken by inotify) sees the run gone, prints what is left and exits.
 *
 * Protocol: the run's log comes on stdout; the scripts report on stderr in lines `nio: <word> [<value>]`:
 *   upload          the source is missing: send its tar on stdin now (then EOF)
 *   source-present  the source is there: nothing is read from stdin
 *   setup-failed M  nothing was started (M says why)
 *   status N        the command ended with exit status N
 *   current-system P  after a successful run: where /run/current-system points
 *   no-run          (await) the run never started (e.g. the connection dropped during the upload)
 *   lost            (await) the run's process is gone without a recorded status (e.g. the machine rebooted)
 *   still-running   (await) the run did not end within the limit
 * The scripts are constants; every variable part arrives as a positional parameter, used only in double quotes.
 */

/** Shared by START and AWAIT: $d run dir, $src source dir, $keep sources kept, $runs and $srcs their parents. */
const COMMON = [
  "say() { printf 'nio: %s\\n' \"$*\" >&2; }",
  // After the run: on success read the current system and keep only the newest sources (the one just used was
  // touched, so it is among them); in any case remove finished runs other than this one. Best effort.
  "finish() {",
  '  code=$1 sys=""',
  '  if [ "$code" = 0 ]; then',
  '    sys=$(readlink /run/current-system 2>/dev/null) || sys=""',
  '    set -- "$srcs"/*',
  '    if [ "$#" -gt "$keep" ]; then',
  '      ls -1t -- "$srcs" 2>/dev/null | tail -n +"$((keep + 1))" | while IFS= read -r n; do',
  '        [ "$srcs/$n" = "$src" ] || rm -rf -- "${srcs:?}/$n"',
  "      done",
  "    fi",
  "  fi",
  '  for r in "$runs"/*; do',
  '    [ "$r" != "$d" ] || continue',
  '    if [ -f "$r/status" ] || [ -f "$r/setup-failed" ] || [ -f "$r/stopped" ]; then rm -rf -- "$r"; fi',
  "  done",
  '  [ "$code" != 0 ] || say "current-system $sys"',
  '  say "status $code"',
  '  exit "$code"',
  "}",
].join("\n");

/**
 * $1 run dir (new, unique), $2 source dir, $3 temporary dir for the upload (a sibling of $2), $4 sources kept, then
 * the argv.
 */
const START = [
  "set -u",
  "d=$1 src=$2 tmp=$3 keep=$4; shift 4",
  "runs=${d%/*} srcs=${src%/*}",
  COMMON,
  'setup_failed() { printf "%s\\n" "$1" > "$d/setup-failed" 2>/dev/null; say "setup-failed $1"; exit 125; }',
  // (Directories made here get mode 0700, parents included; the usual case needs a single mkdir.)
  'mkdir -m 0700 -- "$d" 2>/dev/null || ( umask 077 && mkdir -p -- "$d" )',
  'if ! { [ -d "$d" ] && : > "$d/log" && echo "$$" > "$d/start-pid"; }; then',
  '  say "setup-failed cannot create the run directory $d"; exit 125',
  "fi",
  'if [ -d "$src" ]; then',
  "  say source-present",
  "else",
  // umask 077: every directory created here (parents included) has mode 0700; files keep only the owner's
  // permission bits and belong to the extracting user (--no-same-owner), whatever the archive says.
  '  mkdir -m 0700 -- "$tmp" 2>/dev/null || ( umask 077 && mkdir -p -- "$srcs" && mkdir -- "$tmp" ) ||',
  '    setup_failed "cannot create $tmp"',
  "  say upload",
  '  if ( umask 077 && tar -x --no-same-owner --no-same-permissions -f - -C "$tmp" ) && cat > /dev/null &&',
  '    chmod 0700 -- "$tmp" && mv -T -- "$tmp" "$src" 2>/dev/null; then :',
  "  else",
  '    rm -rf -- "$tmp"',
  // A concurrent upload of the same content may have won the rename.
  '    [ -d "$src" ] || setup_failed "extracting the flake source into $src failed"',
  "  fi",
  "fi",
  // Sources are pruned by last use (an extracted one has the archive's mtime, 0).
  'touch -c -- "$src" 2>/dev/null',
  // One run per machine, even across operator restarts: a run still alive from an earlier operator process (its
  // apply was cut off) is adopted when it runs the very same command (same content-addressed source and argv), and
  // waited for otherwise.
  'printf "%s\\n" "$*" > "$d/argv"',
  'for r in "$runs"/*; do',
  '  [ "$r" != "$d" ] && [ -f "$r/pid" ] && [ ! -f "$r/status" ] || continue',
  '  read -r p < "$r/pid" && [ -d "/proc/$p" ] || continue',
  '  if [ "$(cat -- "$r/argv" 2>/dev/null)" = "$*" ]; then',
  '    say "adopting ${r##*/}"',
  '    tail -n +1 -F -s 1 --pid="$p" -- "$r/log" 2>/dev/null',
  '    while [ ! -f "$r/status" ]; do sleep 0.2; done',
  '    read -r code < "$r/status"',
  '    rm -rf -- "$d"; d=$r',
  '    finish "$code"',
  "  fi",
  '  say "waiting for ${r##*/}"',
  '  while [ -d "/proc/$p" ] && [ ! -f "$r/status" ]; do sleep 1; done',
  "done",
  `setsid sh -c 'd=$1; shift; "$@" > "$d/log" 2>&1 < /dev/null; echo $? > "$d/status.tmp"; mv "$d/status.tmp" "$d/status"' nio-run "$d" "$@" < /dev/null > /dev/null 2>&1 &`,
  "pid=$!",
  'echo "$pid" > "$d/pid"',
  // -F also watches attribute changes: the touch below wakes tail after the run ended (-s 1 is only a fallback
  // for file systems without inotify).
  'tail -n +1 -F -s 1 --pid="$pid" -- "$d/log" 2>/dev/null &',
  "t=$!",
  'wait "$pid"',
  'touch -c -- "$d/log"',
  'wait "$t"',
  // Only if the run was not this shell's child (wait returned at once).
  'while [ ! -f "$d/status" ]; do sleep 0.2; done',
  'read -r code < "$d/status"',
  'finish "$code"',
].join("\n");

/** $1 run dir, $2 source dir, $3 sources kept, $4 seconds to wait at most. */
const AWAIT = [
  "set -u",
  "d=$1 src=$2 keep=$3 limit=$4 waited=0",
  "runs=${d%/*} srcs=${src%/*}",
  COMMON,
  '[ -d "$d" ] || { say no-run; exit 124; }',
  'while [ ! -f "$d/status" ]; do',
  '  if [ -f "$d/setup-failed" ]; then say "setup-failed $(cat "$d/setup-failed")"; exit 125; fi',
  // Who should still be at work: the run once started, else the apply's wrapper (uploading). Gone without a status
  // means the run never started (the wrapper died with the connection) or ended unrecorded (e.g. a reboot).
  '  p=""',
  '  if [ -f "$d/pid" ]; then w=run; read -r p < "$d/pid"; else w=wrapper; read -r p 2>/dev/null < "$d/start-pid"; fi',
  // (A wrapper that has only just created the directory gets a moment to record itself.)
  '  if { [ -z "$p" ] && [ "$waited" -ge 2 ]; } || { [ -n "$p" ] && [ ! -d "/proc/$p" ]; }; then',
  '    [ ! -f "$d/status" ] || break',
  '    [ ! -f "$d/setup-failed" ] || continue',
  '    if [ "$w" = run ]; then say lost; else say no-run; fi',
  "    exit 124",
  "  fi",
  '  if [ "$waited" -ge "$limit" ]; then say still-running; exit 123; fi',
  "  sleep 1; waited=$((waited + 1))",
  "done",
  'tail -c 16384 -- "$d/log"',
  'read -r code < "$d/status"',
  'finish "$code"',
].join("\n");

const STOP =
  'd=$1; [ -d "$d" ] || exit 0; : > "$d/stopped"; [ -f "$d/pid" ] && kill -TERM -- "-$(cat "$d/pid")" 2>/dev/null; exit 0';

const WORDS = "upload|source-present|setup-failed|status|current-system|no-run|lost|still-running";
const MARKER = new RegExp(`^nio: (${WORDS})(?: (.*))?$`);
const MARKER_LINES = new RegExp(`^nio: (?:${WORDS})(?: .*)?(?:\\n|$)`, "gm");

export interface ApplyRun {
  /** The run's directory on the machine (its log, pid and status). */
  runDir: string;
  /** Where the flake source belongs on the machine (content-addressed), and a temporary sibling for its upload. */
  sourceDir: string;
  sourceTmp: string;
  /** The tar of the source; only called when the machine does not have it yet. */
  tar: () => Readable;
  /** Source trees kept on the machine after a successful run. */
  keepSources: number;
  argv: readonly string[];
}

export interface RunOptions {
  sudo: boolean;
  timeoutMs: number;
  onOutput?: (chunk: string) => void;
  signal?: AbortSignal;
}

export interface RunOutcome {
  /** The command's exit status. */
  code: number;
  /** The end of its log. */
  tail: string;
  /** Where /run/current-system points after a successful run ("" if unknown). */
  currentSystem: string;
  /** Whether the source was uploaded by this run (false: it was already on the machine). */
  uploaded: boolean;
}

/** Raised when the wrapper gives up waiting (AWAIT's limit). */
export class RunStillRunningError extends Error {
  override readonly name = "RunStillRunningError";
  constructor(readonly tail: string) {
    super("the run did not end within the limit");
  }
}

/**
 * Runs the apply (START). Resolves with the run's outcome; a setup failure (nothing started) is an
 * SshRemoteCommandError; a lost connection or a wrapper that ended without reporting is an SshConnectionLostError
 * (the run may go on: read its outcome with {@link awaitApply}); a timeout or abort as from `exec`.
 */
export async function startApply(session: SshSession, run: ApplyRun, opts: RunOptions): Promise<RunOutcome> {
  const stdin = new PassThrough();
  const upload: { tar?: Readable } = {};
  const markers = new MarkerReader((word) => {
    if (word === "upload" && upload.tar === undefined) {
      const tar = run.tar();
      upload.tar = tar;
      tar.once("error", (err: Error) => stdin.destroy(err));
      tar.pipe(stdin);
    } else if (word === "source-present") {
      stdin.end();
    }
  });
  let result: ExecResult;
  try {
    result = await session.exec(
      ["sh", "-c", START, "nio-apply", run.runDir, run.sourceDir, run.sourceTmp, String(run.keepSources), ...run.argv],
      {
        sudo: opts.sudo,
        timeoutMs: opts.timeoutMs,
        signal: opts.signal,
        stdin,
        onOutput: (chunk, stream) => {
          if (stream === "stderr") markers.push(chunk);
          opts.onOutput?.(chunk);
        },
      },
    );
  } finally {
    stdin.destroy();
    if (upload.tar && !upload.tar.readableEnded) upload.tar.destroy();
  }
  const outcome = readOutcome(result, "starting the apply on the machine");
  if (outcome === undefined) {
    throw new SshConnectionLostError(
      "the apply's wrapper on the machine ended without reporting the outcome; whether the command completed is unknown",
      cleanTail(result.tail),
    );
  }
  return { ...outcome, uploaded: upload.tar !== undefined };
}

/**
 * After a dropped connection: waits (on a new session) for the run to end and returns its status, log tail and the
 * current system. A run that never started is an SshConnectionLostError (nothing ran; safe to try again).
 */
export async function awaitApply(
  session: SshSession,
  run: Pick<ApplyRun, "runDir" | "sourceDir" | "keepSources">,
  opts: { sudo: boolean; timeoutMs: number },
): Promise<RunOutcome> {
  const limitSeconds = Math.max(1, Math.floor(opts.timeoutMs / 1000));
  const result = await session.exec(
    ["sh", "-c", AWAIT, "nio-await", run.runDir, run.sourceDir, String(run.keepSources), String(limitSeconds)],
    { sudo: opts.sudo, timeoutMs: opts.timeoutMs + 10_000 },
  );
  const words = markersOf(result.stderr);
  if (words.has("no-run")) {
    throw new SshConnectionLostError(
      "the connection was lost before the apply started on the machine (nothing ran)",
      cleanTail(result.tail),
    );
  }
  if (words.has("lost")) {
    throw new SshConnectionLostError(
      "the run on the machine ended without recording its outcome (was the machine restarted?)",
      cleanTail(result.tail),
    );
  }
  if (words.has("still-running")) throw new RunStillRunningError(cleanTail(result.tail));
  const outcome = readOutcome(result, "reading the outcome of the apply");
  if (outcome === undefined) {
    throw new SshRemoteCommandError(
      `reading the outcome of the apply failed: the command exited with ${result.code ?? result.signal ?? "?"}`,
      result.code,
      result.stderr,
    );
  }
  return { ...outcome, uploaded: false };
}

/** Ends a run that outlived its timeout (its whole process group). */
export async function stopApply(session: SshSession, runDir: string, sudo: boolean): Promise<void> {
  await session.exec(["sh", "-c", STOP, "nio-stop", runDir], { sudo, timeoutMs: 10_000 });
}

/** The outcome the markers report; throws for a setup failure; undefined when the wrapper reported nothing. */
function readOutcome(result: ExecResult, what: string): Omit<RunOutcome, "uploaded"> | undefined {
  const words = markersOf(result.stderr);
  const setup = words.get("setup-failed");
  if (setup !== undefined) {
    const detail = otherLines(result.stderr);
    throw new SshRemoteCommandError(
      `${what} failed: ${setup}${detail ? `: ${detail}` : ""}`,
      result.code,
      result.stderr,
    );
  }
  const status = words.get("status");
  if (status === undefined || !/^\d+$/.test(status)) return undefined;
  return { code: Number(status), tail: cleanTail(result.tail), currentSystem: words.get("current-system") ?? "" };
}

function markersOf(stderr: string): Map<string, string> {
  const words = new Map<string, string>();
  for (const line of stderr.split("\n")) {
    const m = MARKER.exec(line);
    if (m?.[1]) words.set(m[1], m[2] ?? "");
  }
  return words;
}

/** The first stderr line that is not a marker (e.g. tar's own error), shortened. */
function otherLines(stderr: string): string {
  const line = stderr.split("\n").find((l) => l.trim() !== "" && !MARKER.test(l)) ?? "";
  return line.length > 500 ? `${line.slice(0, 500)}…` : line.trim();
}

function cleanTail(tail: string): string {
  return tail.replace(MARKER_LINES, "");
}

/** Splits stderr chunks into lines and reports each marker word once, as soon as its line is complete. */
class MarkerReader {
  private partial = "";
  constructor(private readonly onMarker: (word: string, value: string) => void) {}

  push(chunk: string): void {
    const lines = (this.partial + chunk).split("\n");
    this.partial = lines.pop() ?? "";
    if (this.partial.length > 4096) this.partial = "";
    for (const line of lines) {
      const m = MARKER.exec(line);
      if (m?.[1]) this.onMarker(m[1], m[2] ?? "");
    }
  }
}

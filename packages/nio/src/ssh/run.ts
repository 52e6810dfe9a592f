/**
 * Runs one command on one SSH channel: feeds stdin, collects output, and turns the channel's end into a result or a
 * typed error. A timeout or abort first kills the command's whole process tree on the machine (through a second
 * channel, see scripts.KILL), then closes the channel. A channel that closes without an exit status means the
 * connection was lost while the command ran: the outcome is unknown.
 */
import { randomBytes } from "node:crypto";
import { PassThrough } from "node:stream";

import type { ClientChannel } from "ssh2";

import { SshAbortedError, SshCommandTimeoutError, SshConnectionLostError } from "./errors.js";
import { OutputCollector } from "./output.js";
import { remoteCommand } from "./quote.js";
import type { OutputStream } from "./types.js";

export const DEFAULT_TAIL_BYTES = 16 * 1024;
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;

/** What a command runner needs from its connection. */
export interface ChannelOpener {
  /** Opens an exec channel for a complete command string; rejects with SshConnectionLostError when disconnected. */
  openExec(command: string): Promise<ClientChannel>;
  /** Kills every process tagged with runId (best effort, bounded in time; never rejects). */
  killRun(runId: string, sudo: boolean): Promise<void>;
  /** "host:port", for messages. */
  readonly where: string;
}

export interface RunOptions {
  sudo?: boolean;
  stdin?: Buffer | NodeJS.ReadableStream;
  timeoutMs?: number;
  signal?: AbortSignal;
  onOutput?: (chunk: string, stream: OutputStream) => void;
  tailBytes?: number;
  maxOutputBytes?: number;
  /** A stdin already taken over with {@link takeInput} (instead of `stdin`). */
  input?: Input;
  /** How messages name the command. */
  label: string;
}

export interface RunResult {
  code: number | null;
  signal?: string;
  output: OutputCollector;
}

type Interruption =
  { kind: "timeout"; timeoutMs: number } | { kind: "abort"; reason: unknown } | { kind: "stdin"; error: unknown };

export function newRunId(): string {
  return randomBytes(12).toString("hex");
}

function checkTimeout(timeoutMs: number | undefined): void {
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
  }
}

/** Runs argv (quoted, optionally through sudo, tagged with a run id) and resolves when its exit status arrived. */
export async function runCommand(conn: ChannelOpener, argv: readonly string[], opts: RunOptions): Promise<RunResult> {
  checkTimeout(opts.timeoutMs);
  const runId = newRunId();
  const command = remoteCommand(argv, { sudo: opts.sudo, runId });
  const output = new OutputCollector({
    maxBytes: opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
    tailBytes: opts.tailBytes ?? DEFAULT_TAIL_BYTES,
    onOutput: opts.onOutput,
  });
  if (opts.signal?.aborted) throw abortError(opts.label, output, opts.signal.reason);
  const input = opts.input ?? takeInput(opts.stdin);
  let channel: ClientChannel;
  try {
    channel = await conn.openExec(command);
  } catch (err) {
    input?.release();
    throw err;
  }
  return new CommandRun(conn, channel, { runId, output, input }, opts).result;
}

/** A command's stdin, taken over at once (see {@link takeInput}). */
export interface Input {
  stream: NodeJS.ReadableStream | Buffer;
  /** Calls `cb` with the source stream's error (at once if it already failed). */
  onError(cb: (err: Error) => void): void;
  /** Stops reading; a source not read to its end is destroyed (so e.g. a `tar -c` child does not block forever). */
  release(): void;
}

/**
 * Starts reading a stdin stream into a buffer right away (before any await): Node drains and drops the output of a
 * child process that exits while nobody reads it, so a `tar -c` stdout must have a reader from the start.
 */
export function takeInput(stdin: Buffer | NodeJS.ReadableStream | undefined): Input | undefined {
  if (stdin === undefined) return undefined;
  if (Buffer.isBuffer(stdin)) return { stream: stdin, onError: () => undefined, release: () => undefined };
  const buffer = new PassThrough();
  let failure: Error | undefined;
  const listeners: ((err: Error) => void)[] = [];
  stdin.on("error", (err: Error) => {
    failure ??= err;
    for (const cb of listeners.splice(0)) cb(err);
  });
  stdin.pipe(buffer);
  const source = stdin as NodeJS.ReadableStream & { readableEnded?: boolean; destroy?: () => void };
  return {
    stream: buffer,
    onError: (cb) => {
      if (failure) cb(failure);
      else listeners.push(cb);
    },
    release: () => {
      stdin.unpipe(buffer);
      if (source.readableEnded !== true && typeof source.destroy === "function") source.destroy();
      buffer.destroy();
    },
  };
}

class CommandRun {
  readonly result: Promise<RunResult>;
  private resolve!: (r: RunResult) => void;
  private reject!: (e: unknown) => void;
  private exit: { code: number | null; signal?: string } | undefined;
  private interruption: Interruption | undefined;
  private settled = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly onAbort = (): void => this.interrupt({ kind: "abort", reason: this.opts.signal?.reason });

  private readonly runId: string;
  private readonly output: OutputCollector;
  private readonly input: Input | undefined;

  constructor(
    private readonly conn: ChannelOpener,
    private readonly channel: ClientChannel,
    run: { runId: string; output: OutputCollector; input: Input | undefined },
    private readonly opts: RunOptions,
  ) {
    this.runId = run.runId;
    this.output = run.output;
    this.input = run.input;
    const output = run.output;
    this.result = new Promise<RunResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    channel.on("data", (d: Buffer) => output.push("stdout", d));
    channel.stderr.on("data", (d: Buffer) => output.push("stderr", d));
    channel.on("exit", (code: number | null, signal?: string) => this.onExit(code, signal));
    channel.on("close", () => this.onClose());
    // Errors on a channel (e.g. a write after the server closed it) end in "close"; the exit status decides.
    channel.on("error", () => undefined);
    channel.stderr.on("error", () => undefined);
    if (opts.timeoutMs !== undefined) {
      const timeoutMs = opts.timeoutMs;
      this.timer = setTimeout(() => this.interrupt({ kind: "timeout", timeoutMs }), timeoutMs);
    }
    opts.signal?.addEventListener("abort", this.onAbort, { once: true });
    this.feedStdin();
  }

  private feedStdin(): void {
    const stdin = this.input?.stream;
    if (stdin === undefined) {
      this.channel.end();
    } else if (Buffer.isBuffer(stdin)) {
      this.channel.end(stdin);
    } else {
      this.input?.onError((error) => this.interrupt({ kind: "stdin", error }));
      stdin.pipe(this.channel);
    }
  }

  private onExit(code: number | null, signal: string | undefined): void {
    if (typeof code === "number") this.exit = { code };
    else if (typeof signal === "string" && signal !== "") {
      this.exit = { code: null, signal: signal.startsWith("SIG") ? signal : `SIG${signal}` };
    }
  }

  private onClose(): void {
    // A fast command's exit status can arrive in the same read as the channel confirmation, before our "exit"
    // listener exists; ssh2 still records it on the channel, so read it from there.
    if (this.exit === undefined) {
      const recorded = (this.channel as unknown as { _exit?: { code?: number | null; signal?: string } })._exit;
      if (recorded && (typeof recorded.code === "number" || recorded.signal))
        this.onExit(recorded.code ?? null, recorded.signal);
    }
    this.output.finish();
    this.releaseStdin();
    if (this.interruption !== undefined) return; // interrupt() settles once the kill is done
    if (this.exit !== undefined) {
      this.settle(() => this.resolve({ ...this.exit, code: this.exit?.code ?? null, output: this.output }));
      return;
    }
    const err = new SshConnectionLostError(
      `the SSH connection to ${this.conn.where} ended while ${this.opts.label} was running; ` +
        "whether it completed is unknown",
      this.output.tail(),
    );
    this.settle(() => this.reject(err));
  }

  private interrupt(why: Interruption): void {
    // Once the exit status is in, the command is over: let the close that follows settle the result.
    if (this.settled || this.interruption !== undefined || this.exit !== undefined) return;
    this.interruption = why;
    clearTimeout(this.timer);
    void this.conn
      .killRun(this.runId, this.opts.sudo ?? false)
      .finally(() => {
        this.releaseStdin();
        try {
          this.channel.close();
        } catch {
          // already closed
        }
        this.settle(() => this.reject(this.interruptionError(why)));
      })
      .catch(() => undefined);
  }

  private interruptionError(why: Interruption): Error {
    const tail = this.output.tail();
    if (why.kind === "timeout") return new SshCommandTimeoutError(this.opts.label, why.timeoutMs, tail);
    if (why.kind === "abort") return abortError(this.opts.label, this.output, why.reason);
    // The caller's own stream failed: its error, as it is (the command was stopped first).
    return why.error instanceof Error ? why.error : new Error(`the input stream of ${this.opts.label} failed`);
  }

  private releaseStdin(): void {
    const stdin = this.input?.stream;
    if (stdin !== undefined && !Buffer.isBuffer(stdin)) stdin.unpipe(this.channel);
    this.input?.release();
  }

  private settle(fn: () => void): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.opts.signal?.removeEventListener("abort", this.onAbort);
    fn();
  }
}

function abortError(label: string, output: OutputCollector, reason: unknown): SshAbortedError {
  return new SshAbortedError(`${label} was cancelled`, output.tail(), { cause: reason });
}

/** An authenticated ssh2 connection as an {@link SshSession}: commands, uploads, file writes and reads. */
import { randomBytes } from "node:crypto";

import type { Client, ClientChannel } from "ssh2";

import {
  endpoint,
  SshConnectionLostError,
  SshFileNotFoundError,
  SshInvalidArgumentError,
  SshRemoteCommandError,
  SshSudoError,
} from "./errors.js";
import { parentPath, remotePath } from "./paths.js";
import { commandLabel, remoteCommand } from "./quote.js";
import { runCommand, takeInput, type ChannelOpener, type Input, type RunOptions, type RunResult } from "./run.js";
import * as scripts from "./scripts.js";
import type {
  ExecOptions,
  ExecResult,
  ReadFileOptions,
  SshSession,
  TarSource,
  UploadOptions,
  WriteFileOptions,
} from "./types.js";

const UPLOAD_TIMEOUT_MS = 10 * 60_000;
const FILE_TIMEOUT_MS = 60_000;
const DEFAULT_READ_MAX_BYTES = 16 * 1024 * 1024;
/** How long a kill may take: TERM, 2 s grace, KILL, plus the round trips. */
const KILL_GRACE_TENTHS = 20;
const KILL_TIMEOUT_MS = 6_000;

/** sudo's own refusals (sudo -n exits 1 with one of these on stderr; 127 when sudo is missing). */
const SUDO_REFUSAL =
  /^sudo: (?:a password is required|a terminal is required|sorry, you must have a tty to run sudo|.*is not in the sudoers file.*|.*is not allowed to (?:execute|run sudo).*|.*may not run sudo.*)$/m;
const SUDO_MISSING = /\bsudo: (?:command )?not found\b/;

/** The sudo refusal message in a result, if the command failed because of sudo. */
export function sudoRefusal(code: number | null, stderr: string): string | undefined {
  const head = stderr.slice(0, 4096);
  if (code === 1) return SUDO_REFUSAL.exec(head)?.[0];
  if (code === 127) return SUDO_MISSING.exec(head) ? "sudo is not installed" : undefined;
  return undefined;
}

function randomSuffix(): string {
  return randomBytes(8).toString("hex");
}

/** The first line of stderr (usually the cause; later ones tend to be summaries like "tar: Exiting with failure…"). */
function firstLine(text: string): string {
  const line = text.trim().split("\n")[0] ?? "";
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}

export class Ssh2Session implements SshSession, ChannelOpener {
  readonly where: string;
  private lost: Error | undefined;
  private ended = false;

  constructor(
    private readonly client: Client,
    readonly hostKey: string,
    private readonly target: { host: string; port: number; user: string },
  ) {
    this.where = endpoint(target.host, target.port);
    client.on("error", (err: Error) => {
      this.lost ??= err;
    });
    client.on("close", () => {
      this.ended = true;
    });
  }

  get user(): string {
    return this.target.user;
  }

  get closed(): boolean {
    return this.ended;
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.client.end();
  }

  async exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const res = await this.run(argv, { ...opts, label: commandLabel(argv) });
    return {
      code: res.code,
      ...(res.signal !== undefined ? { signal: res.signal } : {}),
      stdout: res.output.text("stdout"),
      stderr: res.output.text("stderr"),
      truncated: res.output.truncated,
      tail: res.output.tail(),
    };
  }

  async uploadTar(
    archive: TarSource,
    remoteDir: string,
    opts: UploadOptions = {},
  ): Promise<{ alreadyPresent: boolean }> {
    const dir = remotePath(remoteDir, "the upload directory");
    const base = { sudo: opts.sudo, signal: opts.signal, timeoutMs: FILE_TIMEOUT_MS };
    // A stream is read from now on (see takeInput); a factory is only called when the upload is needed.
    const early = typeof archive === "function" ? undefined : takeInput(archive);
    let input: Input | undefined;
    let res: RunResult;
    try {
      const probe = await this.run(["test", "-e", dir], { ...base, label: `checking ${dir}` });
      if (probe.code === 0) return { alreadyPresent: true };
      input = early ?? takeInput(typeof archive === "function" ? archive() : archive);
      const tmp = `${dir}.tmp-${randomSuffix()}`;
      res = await this.run(["sh", "-c", scripts.UPLOAD, "nio-upload", dir, parentPath(dir), tmp], {
        ...base,
        input,
        timeoutMs: opts.timeoutMs ?? UPLOAD_TIMEOUT_MS,
        label: `the upload to ${dir}`,
      });
    } finally {
      early?.release();
      input?.release();
    }
    if (res.code === 0) return { alreadyPresent: false };
    if (res.code === scripts.UPLOAD_ALREADY_PRESENT) return { alreadyPresent: true };
    throw this.failure(`extracting the archive into ${dir}`, res);
  }

  async writeFileAtomic(path: string, data: Buffer, opts: WriteFileOptions): Promise<void> {
    const file = remotePath(path, "the file path");
    if (!Number.isInteger(opts.mode) || opts.mode < 0 || opts.mode > 0o777) {
      throw new SshInvalidArgumentError(`file mode must be between 0 and 0777 (no special bits), got ${opts.mode}`);
    }
    if (!Buffer.isBuffer(data)) throw new SshInvalidArgumentError("file data must be a Buffer");
    const parent = parentPath(file);
    const tmp = `${parent === "/" ? "" : parent}/.nio-tmp-${randomSuffix()}`;
    const mode = opts.mode.toString(8).padStart(4, "0");
    const res = await this.run(["sh", "-c", scripts.WRITE, "nio-write", file, parent, tmp, mode], {
      sudo: opts.sudo,
      signal: opts.signal,
      stdin: data,
      timeoutMs: opts.timeoutMs ?? FILE_TIMEOUT_MS,
      label: `writing ${file}`,
    });
    if (res.code !== 0) throw this.failure(`writing ${file}`, res);
  }

  async readFile(path: string, opts: ReadFileOptions = {}): Promise<Buffer> {
    const file = remotePath(path, "the file path");
    const maxBytes = opts.maxBytes ?? DEFAULT_READ_MAX_BYTES;
    if (!Number.isInteger(maxBytes) || maxBytes < 0) throw new SshInvalidArgumentError("maxBytes must be >= 0");
    const res = await this.run(["sh", "-c", scripts.READ, "nio-read", file, String(maxBytes + 1)], {
      sudo: opts.sudo,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? FILE_TIMEOUT_MS,
      maxOutputBytes: maxBytes + 1,
      tailBytes: 4096,
      label: `reading ${file}`,
    });
    const stderr = res.output.text("stderr");
    if (res.code === scripts.READ_NOT_FOUND) throw new SshFileNotFoundError(file, stderr);
    if (res.code !== 0) throw this.failure(`reading ${file}`, res);
    const data = res.output.buffer("stdout");
    if (data.length > maxBytes) {
      throw new SshRemoteCommandError(`${file} is larger than ${maxBytes} bytes`, res.code, stderr);
    }
    return data;
  }

  /** Runs argv; a sudo refusal becomes {@link SshSudoError}. */
  private async run(argv: readonly string[], opts: RunOptions): Promise<RunResult> {
    const res = await runCommand(this, argv, opts);
    if (opts.sudo) {
      const refusal = sudoRefusal(res.code, res.output.text("stderr"));
      if (refusal !== undefined) throw new SshSudoError(this.target.user, refusal);
    }
    return res;
  }

  private failure(what: string, res: RunResult): SshRemoteCommandError {
    const stderr = res.output.text("stderr");
    const status = res.code === null ? `was killed by ${res.signal ?? "a signal"}` : `exited with ${res.code}`;
    const detail = firstLine(stderr);
    return new SshRemoteCommandError(
      `${what} on ${this.where} failed: the command ${status}${detail ? `: ${detail}` : ""}`,
      res.code,
      stderr,
    );
  }

  openExec(command: string): Promise<ClientChannel> {
    if (this.ended) return Promise.reject(this.lostError());
    return new Promise((resolve, reject) => {
      try {
        this.client.exec(command, (err, channel) => {
          if (!err) resolve(channel);
          else if (this.ended) reject(this.lostError(err));
          else
            reject(
              new SshConnectionLostError(`cannot open an SSH channel to ${this.where}: ${err.message}`, "", {
                cause: err,
              }),
            );
        });
      } catch (err) {
        reject(this.lostError(err));
      }
    });
  }

  async killRun(runId: string, sudo: boolean): Promise<void> {
    if (this.ended) return;
    const command = remoteCommand(["sh", "-c", scripts.KILL, "nio-kill", runId, String(KILL_GRACE_TENTHS)], { sudo });
    let channel: ClientChannel;
    try {
      channel = await this.openExec(command);
    } catch {
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        try {
          channel.close();
        } catch {
          // already closed
        }
        resolve();
      }, KILL_TIMEOUT_MS);
      channel.on("error", () => undefined);
      channel.on("close", () => {
        clearTimeout(timer);
        resolve();
      });
      channel.resume();
      channel.stderr.resume();
      channel.end();
    });
  }

  private lostError(cause?: unknown): SshConnectionLostError {
    const why = this.lost ? `: ${this.lost.message}` : "";
    return new SshConnectionLostError(`the SSH connection to ${this.where} is closed${why}`, "", {
      cause: cause ?? this.lost,
    });
  }
}

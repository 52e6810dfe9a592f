/**
 * The SSH layer's narrow interfaces (STYLE §10): controllers receive an {@link SshConnector}, open one
 * {@link SshSession} per reconcile, run argv arrays on it and close it. No shell string is ever built from a caller's
 * input except by quoting each argv element (see quote.ts).
 */

/** Where and as whom to connect. */
export interface SshTarget {
  /** IP literal or hostname. */
  host: string;
  port: number;
  /** Login user (the protocol carries it; it never reaches a shell). */
  user: string;
  /** OpenSSH or PEM private key (ed25519, rsa, ecdsa), unencrypted. Kept in memory only. */
  privateKey: Buffer;
}

/** What the caller knows about the host key: pinned (spec.sshHostKey), recorded (status.sshHostKey) or nothing. */
export interface HostKeyExpectation {
  /** An OpenSSH public key line "ssh-ed25519 AAAA…" (a trailing comment is ignored). Absent: first contact. */
  expected?: string;
}

export interface SshConnectOptions {
  /** Budget for TCP connect, key exchange and authentication. Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** SSH keepalive interval; the connection counts as lost after 4 unanswered ones. Default 15 s. */
  keepaliveIntervalMs?: number;
}

export type SshConnectionResult = "success" | "unreachable" | "auth_failed" | "host_key_mismatch" | "error";

export interface SshConnectorDeps {
  /** Called once per connection attempt with its outcome (e.g. for `nio_ssh_connections_total{result}`). */
  onConnection?: (result: SshConnectionResult) => void;
}

export interface SshConnector {
  /**
   * Connects and authenticates. The host key is checked during the key exchange, before the client authenticates
   * or runs anything: a key other than `hostKey.expected` ends the attempt with `SshHostKeyMismatchError`.
   */
  connect(target: SshTarget, hostKey: HostKeyExpectation, opts?: SshConnectOptions): Promise<SshSession>;
}

export type OutputStream = "stdout" | "stderr";

export interface ExecOptions {
  /** Run through `sudo -n --` (never prompts; a password requirement fails with `SshSudoError`). */
  sudo?: boolean;
  /** Sent to the command's stdin, then EOF. Without it the command gets EOF at once. A stream is consumed. */
  stdin?: Buffer | NodeJS.ReadableStream;
  /** The command (with everything it started) is killed after this long: `SshCommandTimeoutError`. */
  timeoutMs?: number;
  /** Aborting kills the command like a timeout and rejects with an `AbortError` (`SshAbortedError`). */
  signal?: AbortSignal;
  /** Output as it arrives (UTF-8 decoded, chunks never split a character). */
  onOutput?: (chunk: string, stream: OutputStream) => void;
  /** Size of `ExecResult.tail`. Default 16 KiB. */
  tailBytes?: number;
  /** Cap of `stdout` and of `stderr` each. Default 1 MiB. */
  maxOutputBytes?: number;
  /** Deliberately unsupported: sshd drops most client-sent variables, and a value here could leak into logs. */
  env?: never;
}

export interface ExecResult {
  /** Exit status, or null when the command was ended by a signal. */
  code: number | null;
  /** E.g. "SIGTERM" when ended by a signal. */
  signal?: string;
  /** UTF-8 decoded, at most `maxOutputBytes`. */
  stdout: string;
  stderr: string;
  /** Whether stdout or stderr was cut at `maxOutputBytes`. */
  truncated: boolean;
  /** The last `tailBytes` of stdout and stderr interleaved as they arrived. */
  tail: string;
}

export interface UploadOptions {
  sudo?: boolean;
  /** Default 10 minutes. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface WriteFileOptions {
  /** Permission bits, 0 to 0o777 (no setuid, setgid or sticky bit). */
  mode: number;
  sudo?: boolean;
  /** Default 60 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ReadFileOptions {
  sudo?: boolean;
  /** Larger files are refused. Default 16 MiB. */
  maxBytes?: number;
  /** Default 60 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A tar archive, or a function that makes one only when it is needed (not called when the target already exists). */
export type TarSource = NodeJS.ReadableStream | (() => NodeJS.ReadableStream);

/** One authenticated SSH connection; runs any number of commands (one channel each). Close it when done. */
export interface SshSession {
  /** The key the server presented, "ssh-ed25519 AAAA…" (what to record on first contact). */
  readonly hostKey: string;
  readonly user: string;
  /** True once closed or lost; every further call fails with `SshConnectionLostError`. */
  readonly closed: boolean;
  /**
   * Runs argv on the machine. Each element is checked (no NUL) and quoted for the remote POSIX shell (the SSH
   * protocol only carries a command string). A non-zero exit is a result, not an error; errors are a timeout or
   * abort (the command is killed first), a lost connection (outcome unknown), or a sudo refusal.
   */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /**
   * Streams a tar archive into `remoteDir` atomically: extracted to `<remoteDir>.tmp-<random>`, then renamed into
   * place. New directories get mode 0700, files belong to the extracting user. An existing `remoteDir` is left as
   * is (content-addressed) and the archive is not read (a stream is destroyed, a function not called).
   */
  uploadTar(archive: TarSource, remoteDir: string, opts?: UploadOptions): Promise<{ alreadyPresent: boolean }>;
  /**
   * Replaces `path` atomically with `data` (owner root:root, `mode`). The data goes through stdin, never argv; a
   * missing parent directory is created with mode 0755.
   */
  writeFileAtomic(path: string, data: Buffer, opts: WriteFileOptions): Promise<void>;
  /** The content of a regular file (e.g. /etc/rancher/k3s/k3s.yaml). Missing: `SshFileNotFoundError`. */
  readFile(path: string, opts?: ReadFileOptions): Promise<Buffer>;
  /** Ends the connection; commands still running see `SshConnectionLostError`. Idempotent. */
  close(): void;
}

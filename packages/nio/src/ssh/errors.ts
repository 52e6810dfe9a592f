/**
 * Typed SSH failures (STYLE §6). Each carries a CamelCase `reason` a user can act on and keeps its `cause`. They are
 * runtime errors of the right kind, so `classifyError` maps them without translation:
 *
 * - stalled (no retry until something changes): {@link SshHostKeyMismatchError}, {@link SshInvalidKeyError},
 *   {@link SshInvalidArgumentError};
 * - transient (retried with backoff): everything else;
 * - {@link SshAbortedError} is an `AbortError` (the runtime treats it as a quiet cancellation).
 *
 * Messages never contain key material or file data.
 */
import { StalledError, TransientError } from "@nio/runtime";

export type SshErrorReason =
  | "Unreachable"
  | "HostKeyMismatch"
  | "SshAuthenticationFailed"
  | "SshHandshakeFailed"
  | "InvalidSshKey"
  | "InvalidArgument"
  | "Timeout"
  | "ConnectionLost"
  | "SudoFailed"
  | "RemoteCommandFailed"
  | "FileNotFound";

/** host:port, with brackets around an IPv6 literal. */
export function endpoint(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** TCP connect refused or failed, DNS failed, or no SSH handshake within the connect budget. */
export class SshUnreachableError extends TransientError {
  override readonly name: string = "SshUnreachableError";
  declare readonly reason: "Unreachable";

  constructor(
    readonly host: string,
    readonly port: number,
    /** ECONNREFUSED, EHOSTUNREACH, ENOTFOUND, ETIMEDOUT (connect budget spent), ECONNRESET… */
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super("Unreachable", message, options);
  }
}

/** The server presented another host key than the pinned or recorded one; nothing was authenticated or run. */
export class SshHostKeyMismatchError extends StalledError {
  override readonly name: string = "SshHostKeyMismatchError";
  declare readonly reason: "HostKeyMismatch";

  constructor(
    readonly host: string,
    readonly port: number,
    readonly expected: string,
    readonly presented: string,
  ) {
    super(
      "HostKeyMismatch",
      `the host key of ${endpoint(host, port)} is ${presented}, not the expected ${expected}; refusing to connect ` +
        "(the machine was reinstalled or regenerated its key, or someone is intercepting the connection)",
    );
  }
}

/** The server refused the private key for this user. */
export class SshAuthError extends TransientError {
  override readonly name: string = "SshAuthError";
  declare readonly reason: "SshAuthenticationFailed";

  constructor(
    readonly host: string,
    readonly port: number,
    readonly user: string,
    options?: { cause?: unknown },
  ) {
    super(
      "SshAuthenticationFailed",
      `${endpoint(host, port)} refused the SSH key for user ${JSON.stringify(user)} ` +
        "(check the key Secret and the user's authorized_keys on the machine)",
      options,
    );
  }
}

/** The SSH protocol failed after TCP connected (no common algorithm, protocol error, server closed early). */
export class SshHandshakeError extends TransientError {
  override readonly name: string = "SshHandshakeError";
  declare readonly reason: "SshHandshakeFailed";

  constructor(message: string, options?: { cause?: unknown }) {
    super("SshHandshakeFailed", message, options);
  }
}

/** The private key cannot be used: unparsable, encrypted, or not a private key. */
export class SshInvalidKeyError extends StalledError {
  override readonly name: string = "SshInvalidKeyError";
  declare readonly reason: "InvalidSshKey";

  constructor(message: string, options?: { cause?: unknown }) {
    super("InvalidSshKey", message, options);
  }
}

/** An argument cannot be sent safely (NUL byte, relative path, bad mode…). Nothing was sent. */
export class SshInvalidArgumentError extends StalledError {
  override readonly name: string = "SshInvalidArgumentError";
  declare readonly reason: "InvalidArgument";

  constructor(message: string) {
    super("InvalidArgument", message);
  }
}

/** Output captured before a command was stopped or lost. */
export interface PartialOutput {
  /** The last bytes of stdout and stderr, as in `ExecResult.tail`. */
  tail: string;
}

/** The command ran longer than its timeout; it (and everything it started) was killed. */
export class SshCommandTimeoutError extends TransientError implements PartialOutput {
  override readonly name: string = "SshCommandTimeoutError";
  declare readonly reason: "Timeout";

  constructor(
    readonly command: string,
    readonly timeoutMs: number,
    readonly tail: string,
    options?: { cause?: unknown },
  ) {
    super("Timeout", `${command} did not finish within ${formatMs(timeoutMs)} and was stopped`, options);
  }
}

/**
 * The connection (or the channel) ended before the command's exit status arrived. The command may still be running
 * or may have completed: the caller must treat the outcome as unknown and find out by looking (e.g. reading
 * /run/current-system after reconnecting), not by blindly retrying.
 */
export class SshConnectionLostError extends TransientError implements PartialOutput {
  override readonly name: string = "SshConnectionLostError";
  declare readonly reason: "ConnectionLost";

  constructor(
    message: string,
    readonly tail: string,
    options?: { cause?: unknown },
  ) {
    super("ConnectionLost", message, options);
  }
}

/** `sudo -n` refused: a password is required, the user may not use sudo, or sudo is missing. */
export class SshSudoError extends TransientError {
  override readonly name: string = "SshSudoError";
  declare readonly reason: "SudoFailed";

  constructor(
    readonly user: string,
    /** sudo's own message, e.g. "sudo: a password is required". */
    readonly detail: string,
  ) {
    super(
      "SudoFailed",
      `user ${JSON.stringify(user)} cannot run commands as root with "sudo -n" (${detail}); ` +
        "allow it passwordless sudo (NixOS: security.sudo.wheelNeedsPassword = false) or use root",
    );
  }
}

/** A command run by the session itself (upload, write, read) failed on the machine. */
export class SshRemoteCommandError extends TransientError {
  override readonly name: string = "SshRemoteCommandError";
  declare readonly reason: "RemoteCommandFailed" | "FileNotFound";

  constructor(
    message: string,
    readonly code: number | null,
    readonly stderr: string,
    reason: "RemoteCommandFailed" | "FileNotFound" = "RemoteCommandFailed",
  ) {
    super(reason, message);
  }
}

/** `readFile` of a path that does not exist on the machine. */
export class SshFileNotFoundError extends SshRemoteCommandError {
  override readonly name: string = "SshFileNotFoundError";

  constructor(
    readonly path: string,
    stderr: string,
  ) {
    super(`${path} does not exist on the machine`, 44, stderr, "FileNotFound");
  }
}

/**
 * The operation was cancelled through its AbortSignal (the remote command was killed first). Named "AbortError"
 * like DOM aborts, so the runtime classifies it as a quiet cancellation; `cause` is the signal's reason.
 */
export class SshAbortedError extends Error implements PartialOutput {
  override readonly name: string = "AbortError";
  readonly reason = "Canceled";

  constructor(
    message: string,
    readonly tail: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

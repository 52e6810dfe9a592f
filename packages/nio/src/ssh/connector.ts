/** Opening SSH connections with ssh2: host key verified during the key exchange, failures typed. */
import ssh2, { type ConnectConfig, type ParsedKey } from "ssh2";

import {
  endpoint,
  SshAbortedError,
  SshAuthError,
  SshHandshakeError,
  SshHostKeyMismatchError,
  SshInvalidArgumentError,
  SshInvalidKeyError,
  SshUnreachableError,
} from "./errors.js";
import { formatHostKey, hostKeyAlgorithms, normalizeHostKey, sameHostKey } from "./hostkey.js";
import { Ssh2Session } from "./session.js";
import type {
  HostKeyExpectation,
  SshConnectionResult,
  SshConnectOptions,
  SshConnector,
  SshConnectorDeps,
  SshSession,
  SshTarget,
} from "./types.js";

// ssh2 is CommonJS: under Node's ESM loader only its default export exists at run time.
const { Client, utils } = ssh2;

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 15_000;
const KEEPALIVE_COUNT_MAX = 4;

/** The production {@link SshConnector}. */
export function createSshConnector(deps: SshConnectorDeps = {}): SshConnector {
  return {
    connect: (target, hostKey, opts) => connect(target, hostKey, opts ?? {}, deps),
  };
}

/**
 * Connects, runs `fn` with the session and closes it, whatever happens (one connection per reconcile, reused for
 * every command of it).
 */
export async function withSshSession<T>(
  connector: SshConnector,
  target: SshTarget,
  hostKey: HostKeyExpectation,
  fn: (session: SshSession) => Promise<T>,
  opts?: SshConnectOptions,
): Promise<T> {
  const session = await connector.connect(target, hostKey, opts);
  try {
    return await fn(session);
  } finally {
    session.close();
  }
}

function checkTarget(target: SshTarget): void {
  // eslint-disable-next-line no-control-regex
  const bad = /[\x00-\x20\x7f]/;
  if (typeof target.host !== "string" || target.host === "" || target.host.length > 253 || bad.test(target.host)) {
    throw new SshInvalidArgumentError("the SSH host must be a hostname or IP address");
  }
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    throw new SshInvalidArgumentError(`the SSH port must be 1-65535, got ${target.port}`);
  }
  if (typeof target.user !== "string" || target.user === "" || target.user.length > 256 || bad.test(target.user)) {
    throw new SshInvalidArgumentError("the SSH user must be a non-empty name without spaces or control characters");
  }
}

/** Refuses keys ssh2 cannot use, with a message that names the problem but nothing of the key. */
function checkPrivateKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length === 0) throw new SshInvalidKeyError("the SSH private key is empty");
  // ssh2 returns an array for a file with several keys (it uses the first), though its types do not say so.
  const parsed: ParsedKey | Error | readonly ParsedKey[] = utils.parseKey(key);
  const first = isKeyList(parsed) ? parsed[0] : parsed;
  if (first === undefined || first instanceof Error) {
    const why = first instanceof Error ? first.message : "no key found";
    throw new SshInvalidKeyError(`the SSH private key cannot be used: ${why}`);
  }
  if (!first.isPrivateKey()) throw new SshInvalidKeyError("the SSH key is a public key, not a private key");
}

function isKeyList(k: ParsedKey | Error | readonly ParsedKey[]): k is readonly ParsedKey[] {
  return Array.isArray(k);
}

interface Attempt {
  target: SshTarget;
  expected: string | undefined;
  presented: string | undefined;
  mismatch: boolean;
  timeoutMs: number;
}

async function connect(
  target: SshTarget,
  hostKey: HostKeyExpectation,
  opts: SshConnectOptions,
  deps: SshConnectorDeps,
): Promise<SshSession> {
  checkTarget(target);
  checkPrivateKey(target.privateKey);
  const expected = hostKey.expected === undefined ? undefined : normalizeHostKey(hostKey.expected);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new RangeError(`bad connect timeout ${timeoutMs}`);
  const attempt: Attempt = { target, expected, presented: undefined, mismatch: false, timeoutMs };
  const report = (result: SshConnectionResult): void => {
    try {
      deps.onConnection?.(result);
    } catch {
      // metrics must not break connections
    }
  };
  if (opts.signal?.aborted) {
    report("error");
    throw new SshAbortedError(`connecting to ${endpoint(target.host, target.port)} was cancelled`, "", {
      cause: opts.signal.reason,
    });
  }
  return new Promise<SshSession>((resolve, reject) => {
    const client = new Client();
    let settled = false;
    const finish = (err: Error | undefined, result: SshConnectionResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      client.removeListener("ready", onReady);
      client.removeListener("close", onClose);
      report(result);
      if (err === undefined) {
        client.removeListener("error", onError);
        resolve(new Ssh2Session(client, attempt.presented ?? "", target));
        return;
      }
      client.on("error", () => undefined); // late errors of the abandoned client
      client.destroy();
      reject(err);
    };
    const onReady = (): void => finish(undefined, "success");
    const onError = (err: unknown): void => finish(...classifyConnectError(err, attempt));
    const onClose = (): void =>
      finish(
        new SshHandshakeError(`${endpoint(target.host, target.port)} closed the connection during the SSH handshake`),
        "error",
      );
    const onAbort = (): void =>
      finish(
        new SshAbortedError(`connecting to ${endpoint(target.host, target.port)} was cancelled`, "", {
          cause: opts.signal?.reason,
        }),
        "error",
      );
    // ssh2's readyTimeout covers connect, key exchange and authentication; this one only guards against it not firing.
    const timer = setTimeout(() => onError(timeoutError()), timeoutMs + 1000);
    // Nagle's algorithm holds back each small SSH packet until the previous one is acknowledged, and the peer delays
    // that acknowledgement (40 ms on Linux): every channel open, request and EOF would wait for it.
    client.once("connect", () => client.setNoDelay(true));
    client.on("ready", onReady);
    client.on("error", onError);
    client.on("close", onClose);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      client.connect(connectConfig(attempt, opts));
    } catch (err) {
      onError(err);
    }
  });
}

function timeoutError(): Error {
  return Object.assign(new Error("Timed out while waiting for handshake"), { level: "client-timeout" });
}

function connectConfig(attempt: Attempt, opts: SshConnectOptions): ConnectConfig {
  const { target, expected } = attempt;
  return {
    host: target.host,
    port: target.port,
    username: target.user,
    privateKey: target.privateKey,
    readyTimeout: attempt.timeoutMs,
    keepaliveInterval: opts.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS,
    keepaliveCountMax: KEEPALIVE_COUNT_MAX,
    // No agent, no password, no keyboard-interactive: only the given key is ever offered (and no "none" probe first).
    tryKeyboard: false,
    authHandler: ["publickey"],
    algorithms: { serverHostKey: hostKeyAlgorithms(expected) },
    // Runs during the key exchange, before authentication: returning false ends the connection there.
    hostVerifier: (key: Buffer): boolean => {
      let presented: string;
      try {
        presented = formatHostKey(key);
      } catch {
        attempt.mismatch = true;
        attempt.presented = `(malformed key of ${key.length} bytes)`;
        return false;
      }
      attempt.presented = presented;
      if (expected !== undefined && !sameHostKey(expected, presented)) {
        attempt.mismatch = true;
        return false;
      }
      return true;
    },
  };
}

interface Ssh2Error {
  level?: unknown;
  code?: unknown;
  message?: unknown;
}

const SOCKET_MESSAGES: Record<string, string> = {
  ECONNREFUSED: "connection refused (is sshd running, and on this port?)",
  EHOSTUNREACH: "no route to host",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "the hostname does not resolve",
  EAI_AGAIN: "the hostname could not be resolved (DNS temporarily failing)",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "connection timed out",
};

/** Maps an error ssh2 emitted before "ready" to a typed error and a connection result. */
function classifyConnectError(err: unknown, attempt: Attempt): [Error, SshConnectionResult] {
  const { host, port, user } = attempt.target;
  const where = endpoint(host, port);
  const e = (typeof err === "object" && err !== null ? err : {}) as Ssh2Error;
  const message = typeof e.message === "string" ? e.message : String(err);
  if (attempt.mismatch) {
    const mismatch = new SshHostKeyMismatchError(host, port, attempt.expected ?? "", attempt.presented ?? "");
    return [mismatch, "host_key_mismatch"];
  }
  if (e.level === "client-authentication") return [new SshAuthError(host, port, user, { cause: err }), "auth_failed"];
  if (e.level === "client-timeout") {
    const msg = `cannot reach ${where}: no SSH handshake within ${attempt.timeoutMs} ms`;
    return [new SshUnreachableError(host, port, "ETIMEDOUT", msg, { cause: err }), "unreachable"];
  }
  if (e.level === "client-socket" || e.level === "client-dns") {
    const code = typeof e.code === "string" ? e.code : "ESOCKET";
    const msg = `cannot reach ${where}: ${SOCKET_MESSAGES[code] ?? message}`;
    return [new SshUnreachableError(host, port, code, msg, { cause: err }), "unreachable"];
  }
  if (/Connection lost before handshake/i.test(message)) {
    const msg = `cannot reach ${where}: the connection closed before the SSH handshake`;
    return [new SshUnreachableError(host, port, "ECONNRESET", msg, { cause: err }), "unreachable"];
  }
  return [new SshHandshakeError(`SSH handshake with ${where} failed: ${message}`, { cause: err }), "error"];
}

/**
 * NIO's SSH layer: connect with a verified host key, run argv arrays (never shell strings), stream uploads, write
 * root-owned files atomically through stdin, read files. See types.ts for the interfaces and errors.ts for failures.
 */
export type {
  ExecOptions,
  ExecResult,
  HostKeyExpectation,
  OutputStream,
  ReadFileOptions,
  SshConnectionResult,
  SshConnectOptions,
  SshConnector,
  SshConnectorDeps,
  SshSession,
  SshTarget,
  TarSource,
  UploadOptions,
  WriteFileOptions,
} from "./types.js";
export {
  SshAbortedError,
  SshAuthError,
  SshCommandTimeoutError,
  SshConnectionLostError,
  SshFileNotFoundError,
  SshHandshakeError,
  SshHostKeyMismatchError,
  SshInvalidArgumentError,
  SshInvalidKeyError,
  SshRemoteCommandError,
  SshSudoError,
  SshUnreachableError,
  type PartialOutput,
  type SshErrorReason,
} from "./errors.js";
export { createSshConnector, withSshSession, DEFAULT_CONNECT_TIMEOUT_MS } from "./connector.js";
export { shellQuote, remoteCommand } from "./quote.js";
export { formatHostKey, normalizeHostKey, parseHostKey, sameHostKey } from "./hostkey.js";

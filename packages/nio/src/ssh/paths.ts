/** Checks for remote paths the session builds commands around (they are quoted anyway; this keeps them sane). */
import { SshInvalidArgumentError } from "./errors.js";

const MAX_PATH_LENGTH = 4096;

/**
 * `path` in canonical form: absolute, no "." or ".." segment, no control character, no repeated or trailing "/",
 * and not "/" itself. Throws {@link SshInvalidArgumentError}.
 */
export function remotePath(path: string, what: string): string {
  if (typeof path !== "string" || !path.startsWith("/")) {
    throw new SshInvalidArgumentError(`${what} must be an absolute path`);
  }
  if (path.length > MAX_PATH_LENGTH) throw new SshInvalidArgumentError(`${what} is longer than ${MAX_PATH_LENGTH}`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) throw new SshInvalidArgumentError(`${what} contains a control character`);
  const parts = path.split("/").filter((p) => p !== "");
  if (parts.length === 0) throw new SshInvalidArgumentError(`${what} must not be "/"`);
  if (parts.some((p) => p === "." || p === "..")) {
    throw new SshInvalidArgumentError(`${what} must not contain "." or ".." segments`);
  }
  return `/${parts.join("/")}`;
}

/** The parent of a canonical path from {@link remotePath} ("/" for a top-level entry). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

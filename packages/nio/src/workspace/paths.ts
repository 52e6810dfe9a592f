/**
 * Path rules for everything written into a workspace, and writing a file so that it cannot leave the workspace even
 * when the repository contains symbolic links (each parent is checked with lstat; the file is created with
 * O_EXCL|O_NOFOLLOW under a temporary name and renamed into place, which replaces a link instead of following it).
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { StalledError } from "@nio/runtime";

const MAX_PATH = 4096;
const MAX_SEGMENT = 255;

/**
 * A path in the spec breaks a rule. Stalled (`InvalidSpec`): retrying cannot help until the spec (or the repository)
 * changes. The message names the field and the rule, e.g. `spec.additionalFiles[2].path "../x" must not contain '..'
 * segments`.
 */
export class WorkspacePathError extends StalledError {
  override readonly name: string = "WorkspacePathError";
  readonly field: string;
  readonly rule: string;

  constructor(field: string, value: string, rule: string) {
    super("InvalidSpec", `${field} ${quote(value)} ${rule}`);
    this.field = field;
    this.rule = rule;
  }
}

function quote(value: string): string {
  const short = value.length > 120 ? `${value.slice(0, 120)}…` : value;
  return JSON.stringify(short);
}

function firstBrokenRule(p: string): string | undefined {
  if (p.length === 0) return "must not be empty";
  if (p.length > MAX_PATH) return `must be at most ${MAX_PATH} characters`;
  if (p.includes("\0")) return "must not contain NUL bytes";
  if (hasControlChar(p)) return "must not contain control characters (newlines, tabs, …)";
  if (p.startsWith("/")) return "must be a relative path (no leading '/')";
  if (p.includes("\\")) return "must not contain backslashes";
  if (p.startsWith("-")) return "must not start with '-'";
  for (const seg of p.split("/")) {
    if (seg === "") return "must not contain empty segments ('//' or a trailing '/')";
    if (seg === "..") return "must not contain '..' segments";
    if (seg === ".") return "must not contain '.' segments";
    if (seg.length > MAX_SEGMENT) return `must not have segments longer than ${MAX_SEGMENT} characters`;
  }
  return undefined;
}

function hasControlChar(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/**
 * Checks a relative path from the spec (pure: no file system access) and returns it. Refused: empty, absolute,
 * `..` / `.` / empty segments, NUL and other control characters, backslashes, a leading `-`, over-long paths.
 * Throws {@link WorkspacePathError} naming `field` and the rule.
 */
export function validateRelativePath(p: string, field: string): string {
  if (typeof p !== "string") throw new WorkspacePathError(field, String(p), "must be a string");
  const rule = firstBrokenRule(p);
  if (rule !== undefined) throw new WorkspacePathError(field, p, rule);
  return p;
}

function isNotFound(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "ENOENT";
}

/**
 * Walks `rel` (already validated) below `root`, creating missing directories (0755), and returns the directory
 * that will hold the last segment. Refuses to pass through a symbolic link or a non-directory.
 */
export async function safeParent(root: string, rel: string, field: string): Promise<string> {
  const segs = rel.split("/");
  let cur = root;
  for (let i = 0; i < segs.length - 1; i++) {
    const next = join(cur, segs[i] ?? "");
    const shown = segs.slice(0, i + 1).join("/");
    let st;
    try {
      st = await lstat(next);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await mkdir(next, { mode: 0o755 });
      cur = next;
      continue;
    }
    if (st.isSymbolicLink()) {
      throw new WorkspacePathError(field, rel, `must not pass through the symbolic link '${shown}' of the repository`);
    }
    if (!st.isDirectory()) throw new WorkspacePathError(field, rel, `needs '${shown}' to be a directory, not a file`);
    cur = next;
  }
  return cur;
}

/**
 * Writes `content` (binary-safe) to `rel` below `root` with `mode`, never outside `root`: parents are checked by
 * {@link safeParent}; an existing file or symbolic link at the path is replaced (the link itself, never its target);
 * an existing directory is refused.
 */
export async function writeFileInside(
  root: string,
  rel: string,
  content: Uint8Array,
  opts: { field: string; mode: number },
): Promise<string> {
  const parent = await safeParent(root, rel, opts.field);
  const name = rel.split("/").pop() ?? rel;
  const target = join(parent, name);
  try {
    if ((await lstat(target)).isDirectory()) {
      throw new WorkspacePathError(opts.field, rel, "names a directory of the repository, not a file");
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const tmp = join(parent, `.nio-write-${randomBytes(8).toString("hex")}`);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const fh = await open(tmp, flags, opts.mode);
  try {
    await fh.writeFile(content);
    await fh.chmod(opts.mode);
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, target);
  return target;
}

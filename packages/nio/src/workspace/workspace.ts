/**
 * The flake source of one apply: a private (0700) temporary directory with a copy of the checked-out tree (or of its
 * `configurationSubdir`) plus the `additionalFiles`, a content hash that names it on the machine
 * (`/var/lib/nio/src/<hash>`), and a deterministic tar stream of it.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, copyFile, lstat, mkdir, mkdtemp, readdir, readlink, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { constants } from "node:fs";
import { WorkspacePathError, validateRelativePath, writeFileInside } from "./paths.js";

export interface AdditionalFile {
  /** Relative to the workspace root (= configurationSubdir). */
  path: string;
  content: Buffer | Uint8Array;
  /** The spec field reported in errors (default `spec.additionalFiles[<index>].path`). */
  field?: string;
}

export interface Workspace {
  readonly dir: string;
  /** sha256 (hex) over the sorted (path, type, mode, content or link target) of everything in `dir`. */
  readonly contentHash: string;
  /**
   * `tar` of `dir` (GNU format, sorted names, owner and group 0, mtime 0: the same content gives the same bytes).
   * A tar failure is an `error` on the stream; destroying the stream stops tar.
   */
  tarStream(): Readable;
  /** Removes `dir` (idempotent). */
  cleanup(): Promise<void>;
}

export interface MaterializeOptions {
  /** Parent of the private directory (NIO_BASE_CONFIG_PATH), created 0700 when missing. */
  baseDir: string;
  /** The exported tree (not modified). */
  sourceDir: string;
  /** spec.configurationSubdir: the flake is at its root. Empty/undefined = the repository root. */
  subdir?: string;
  additionalFiles: readonly AdditionalFile[];
  /** The tar executable (default `tar` from PATH; GNU tar is required for `--sort=name`). */
  tarBin?: string;
}

const SUBDIR_FIELD = "spec.configurationSubdir";

/**
 * Builds the workspace. Every path is validated before anything is written; a failure removes the directory and
 * throws (a {@link WorkspacePathError} for a path that breaks a rule).
 */
export async function materializeWorkspace(opts: MaterializeOptions): Promise<Workspace> {
  const subdir =
    opts.subdir === undefined || opts.subdir === "" ? undefined : validateRelativePath(opts.subdir, SUBDIR_FIELD);
  const files = validateFiles(opts.additionalFiles);
  await mkdir(opts.baseDir, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(opts.baseDir, "ws-"));
  try {
    await chmod(dir, 0o700);
    const src = subdir === undefined ? opts.sourceDir : await resolveSubdir(opts.sourceDir, subdir);
    await copyTree(src, dir);
    for (const f of files) await writeFileInside(dir, f.path, f.content, { field: f.field, mode: 0o644 });
    const contentHash = await hashTree(dir);
    return new TempWorkspace(dir, contentHash, opts.tarBin ?? "tar");
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function validateFiles(files: readonly AdditionalFile[]): { path: string; content: Uint8Array; field: string }[] {
  const seen = new Map<string, string>();
  return files.map((f, i) => {
    const field = f.field ?? `spec.additionalFiles[${i}].path`;
    const path = validateRelativePath(f.path, field);
    const earlier = seen.get(path);
    if (earlier !== undefined) throw new WorkspacePathError(field, path, `is already written by ${earlier}`);
    seen.set(path, field);
    return { path, content: f.content, field };
  });
}

/** The subdirectory inside the tree: each segment must be a real directory (not a symlink) of the repository. */
async function resolveSubdir(root: string, subdir: string): Promise<string> {
  let cur = root;
  const segs = subdir.split("/");
  for (let i = 0; i < segs.length; i++) {
    cur = join(cur, segs[i] ?? "");
    const shown = segs.slice(0, i + 1).join("/");
    const st = await lstat(cur).catch(() => undefined);
    if (!st) throw new WorkspacePathError(SUBDIR_FIELD, subdir, "does not exist in the repository");
    if (st.isSymbolicLink()) {
      throw new WorkspacePathError(SUBDIR_FIELD, subdir, `must not pass through the symbolic link '${shown}'`);
    }
    if (!st.isDirectory()) throw new WorkspacePathError(SUBDIR_FIELD, subdir, `'${shown}' is not a directory`);
  }
  return cur;
}

/** Copies a tree without following symlinks: files get 0755 (any executable bit) or 0644, directories 0755. */
async function copyTree(src: string, dst: string): Promise<void> {
  for (const d of await readdir(src, { withFileTypes: true })) {
    const from = join(src, d.name);
    const to = join(dst, d.name);
    if (d.isSymbolicLink()) {
      await symlink(await readlink(from), to);
    } else if (d.isDirectory()) {
      await mkdir(to, { mode: 0o755 });
      await chmod(to, 0o755);
      await copyTree(from, to);
    } else if (d.isFile()) {
      const exec = ((await lstat(from)).mode & 0o111) !== 0;
      await copyFile(from, to, constants.COPYFILE_EXCL);
      await chmod(to, exec ? 0o755 : 0o644);
    }
    // Sockets, FIFOs and devices cannot come from a git tree; they are not copied.
  }
}

/** Byte order of UTF-8 names (what GNU tar's --sort=name uses), independent of the locale. */
function byName(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/**
 * sha256 over every entry below `root`, depth first in byte order of names. Each record is
 * `type NUL mode NUL path NUL payload NUL` with payload = sha256 of the file, the link target, or empty for a
 * directory, so any change of content, name, mode or type changes the hash.
 */
export async function hashTree(root: string): Promise<string> {
  const h = createHash("sha256");
  h.update("nio-workspace-v1\0");
  await hashDir(h, root, "");
  return h.digest("hex");
}

async function hashDir(h: ReturnType<typeof createHash>, abs: string, rel: string): Promise<void> {
  const names = (await readdir(abs)).sort(byName);
  for (const name of names) {
    const p = join(abs, name);
    const r = rel === "" ? name : `${rel}/${name}`;
    const st = await lstat(p);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) {
      h.update(`L\0${mode}\0${r}\0${await readlink(p)}\0`);
    } else if (st.isDirectory()) {
      h.update(`D\0${mode}\0${r}\0\0`);
      await hashDir(h, p, r);
    } else if (st.isFile()) {
      h.update(`F\0${mode}\0${r}\0${await fileHash(p)}\0`);
    }
  }
}

async function fileHash(p: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(p)) h.update(chunk as Buffer);
  return h.digest("hex");
}

class TempWorkspace implements Workspace {
  private removed = false;

  constructor(
    readonly dir: string,
    readonly contentHash: string,
    private readonly tarBin: string,
  ) {}

  tarStream(): Readable {
    return tarOf(this.dir, this.tarBin);
  }

  async cleanup(): Promise<void> {
    if (this.removed) return;
    await rm(this.dir, { recursive: true, force: true });
    this.removed = true;
  }
}

/** Deterministic tar of `dir` on stdout of the system tar (argv array, no shell). */
export function tarOf(dir: string, tarBin = "tar"): Readable {
  const out = new PassThrough();
  const args = [
    "-C",
    dir,
    "--format=gnu",
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mtime=@0",
    "-cf",
    "-",
    ".",
  ];
  const child = spawn(tarBin, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: process.env.PATH, LC_ALL: "C" },
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  child.stdout.pipe(out, { end: false });
  child.on("error", (err) => out.destroy(err));
  child.on("close", (code, signal) => {
    if (code === 0) out.end();
    else if (!out.destroyed) {
      out.destroy(new Error(`tar exited with ${code ?? signal}: ${stderr.trim()}`));
    }
  });
  out.on("close", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  });
  return out;
}

/**
 * Copies a flake directory to the output directory of `nico render` without ever following a symlink out of it:
 * the tree is walked with lstat, regular files are copied (mode 0644, or 0755 when executable), directories are
 * created, symlinks whose target stays inside the tree are recreated pointing at the copy, and symlinks that leave
 * it (e.g. a `result` link into /nix/store) or dangle are skipped with a warning. Nothing is ever written through a
 * symlink already present in the output: an existing entry is removed first and new files are created exclusively.
 */
import { constants } from "node:fs";
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  readdir,
  readlink,
  realpath,
  stat,
  symlink,
  unlink,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";

/** A problem with --flake or --out that the user must fix (exit code 1). */
export class FlakeCopyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlakeCopyError";
  }
}

export interface CopyResult {
  /** Absolute path of the output directory. */
  out: string;
  /** Regular files and symlinks copied. */
  entries: number;
  /** Entries skipped (symlinks leaving the tree, dangling symlinks, sockets, FIFOs, devices). */
  warnings: string[];
}

function errno(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String(err.code) : undefined;
}

async function lstatOrUndefined(path: string): Promise<Awaited<ReturnType<typeof lstat>> | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if (errno(err) === "ENOENT") return undefined;
    throw err;
  }
}

function inside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/** The flake directory, resolved (symlinks in the path given are fine); it must hold a flake.nix file. */
async function flakeRoot(flake: string): Promise<string> {
  let root: string;
  try {
    root = await realpath(resolve(flake));
  } catch (err) {
    throw new FlakeCopyError(`--flake ${flake}: ${errno(err) === "ENOENT" ? "no such directory" : String(err)}`);
  }
  if (!(await stat(root)).isDirectory()) throw new FlakeCopyError(`--flake ${flake}: not a directory`);
  const flakeNix = await lstatOrUndefined(join(root, "flake.nix"));
  if (!flakeNix?.isFile()) throw new FlakeCopyError(`--flake ${flake}: no flake.nix file in it`);
  return root;
}

/** The real path `p` would have: its nearest existing ancestor resolved, plus the rest. */
async function prospectiveRealPath(p: string): Promise<string> {
  const missing: string[] = [];
  let dir = p;
  for (;;) {
    try {
      return join(await realpath(dir), ...missing.reverse());
    } catch (err) {
      if (errno(err) !== "ENOENT" || dirname(dir) === dir) throw err;
      missing.push(basename(dir));
      dir = dirname(dir);
    }
  }
}

/** Checks --out (absent, or an empty directory, or any directory with --force; not overlapping the flake). */
async function checkOut(out: string, root: string, force: boolean): Promise<string> {
  const abs = resolve(out);
  const st = await lstatOrUndefined(abs);
  if (st?.isSymbolicLink()) throw new FlakeCopyError(`--out ${out}: is a symlink; give the real directory`);
  if (st && !st.isDirectory()) throw new FlakeCopyError(`--out ${out}: exists and is not a directory`);
  if (st && !force && (await readdir(abs)).length > 0) {
    throw new FlakeCopyError(`--out ${out}: exists and is not empty (use --force to write into it)`);
  }
  const real = await prospectiveRealPath(abs);
  if (inside(real, root)) throw new FlakeCopyError(`--out ${out}: must not be the flake directory or inside it`);
  if (inside(root, real)) throw new FlakeCopyError(`--out ${out}: must not contain the flake directory`);
  return abs;
}

/** Removes whatever non-directory entry is at `path`, so a new one can be created exclusively. */
async function clearEntry(path: string, display: string): Promise<void> {
  const st = await lstatOrUndefined(path);
  if (!st) return;
  if (st.isDirectory()) throw new FlakeCopyError(`--out: ${display} is a directory; cannot replace it with a file`);
  await unlink(path);
}

async function ensureDir(path: string): Promise<void> {
  const st = await lstatOrUndefined(path);
  if (st?.isDirectory()) return;
  if (st) await unlink(path);
  await mkdir(path, { mode: 0o755 });
  await chmod(path, 0o755);
}

interface Walk {
  root: string;
  out: string;
  result: CopyResult;
}

async function copyEntry(w: Walk, rel: string): Promise<void> {
  const src = join(w.root, rel);
  const dst = join(w.out, rel);
  const st = await lstat(src);
  if (st.isDirectory()) {
    await ensureDir(dst);
    await copyDir(w, rel);
  } else if (st.isFile()) {
    await clearEntry(dst, rel);
    await copyFile(src, dst, constants.COPYFILE_EXCL);
    await chmod(dst, st.mode & 0o111 ? 0o755 : 0o644);
    w.result.entries++;
  } else if (st.isSymbolicLink()) {
    await copyLink(w, rel);
  } else {
    w.result.warnings.push(`skipped ${rel}: not a regular file, directory or symlink`);
  }
}

async function copyLink(w: Walk, rel: string): Promise<void> {
  const src = join(w.root, rel);
  const target = await readlink(src);
  let real: string;
  try {
    real = await realpath(resolve(dirname(src), target));
  } catch {
    w.result.warnings.push(`skipped symlink ${rel} -> ${target}: its target does not exist`);
    return;
  }
  if (!inside(real, w.root)) {
    w.result.warnings.push(`skipped symlink ${rel} -> ${target}: it points outside the flake directory`);
    return;
  }
  const dst = join(w.out, rel);
  await clearEntry(dst, rel);
  await symlink(relative(dirname(dst), join(w.out, relative(w.root, real))) || ".", dst);
  w.result.entries++;
}

async function copyDir(w: Walk, rel: string): Promise<void> {
  const names = (await readdir(join(w.root, rel))).sort();
  for (const name of names) await copyEntry(w, rel === "" ? name : join(rel, name));
}

/** Copies the flake directory `flake` to `out` (see the module comment); returns what was copied and skipped. */
export async function copyFlake(flake: string, out: string, opts: { force: boolean }): Promise<CopyResult> {
  const root = await flakeRoot(flake);
  const abs = await checkOut(out, root, opts.force);
  await mkdir(abs, { recursive: true, mode: 0o755 });
  const w: Walk = { root, out: abs, result: { out: abs, entries: 0, warnings: [] } };
  await copyDir(w, "");
  return w.result;
}

/** Writes `name` (e.g. cluster.nix) into `dir` as a new regular file with mode 0644, replacing any entry there. */
export async function writeOutputFile(dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await clearEntry(path, name);
  await writeFile(path, text, { mode: 0o644, flag: "wx" });
  await chmod(path, 0o644);
  return path;
}

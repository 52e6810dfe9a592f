/**
 * Writes the tree of a commit from a (bare) git directory into a plain directory: regular files with their
 * executable bit (read-only: 0444 / 0555), symlinks as symlinks (never followed), submodules as empty directories,
 * no `.git`. Entry names are checked, so a crafted tree cannot write outside the target directory.
 */
import * as fs from "node:fs";
import { chmod, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as git from "isomorphic-git";
import type { TreeEntry } from "isomorphic-git";
import { GitError } from "./errors.js";

const PARALLEL = 16;

interface ExportCtx {
  gitdir: string;
  cache: object;
  bytes: number;
}

/** Git tree entry names that must never be written: path separators, `.`/`..`, NUL, and `.git` in any case. */
export function isSafeEntryName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 255 &&
    name !== "." &&
    name !== ".." &&
    !name.includes("/") &&
    !name.includes("\0") &&
    name.toLowerCase() !== ".git"
  );
}

/** Exports the tree of `commit` into `dest` (which must not exist yet). Returns the bytes written. */
export async function exportTree(gitdir: string, commit: string, dest: string): Promise<number> {
  const ctx: ExportCtx = { gitdir, cache: {}, bytes: 0 };
  let tree: string;
  try {
    tree = (await git.readCommit({ fs, gitdir, oid: commit, cache: ctx.cache })).commit.tree;
  } catch (err) {
    throw new GitError("GitError", `${commit} is not a commit in the fetched objects`, { cause: err });
  }
  await mkdir(dest, { mode: 0o755 });
  await writeTree(ctx, tree, dest);
  return ctx.bytes;
}

async function writeTree(ctx: ExportCtx, treeOid: string, dir: string): Promise<void> {
  const { tree } = await git.readTree({ fs, gitdir: ctx.gitdir, oid: treeOid, cache: ctx.cache });
  const names = new Set<string>();
  for (const e of tree) {
    if (!isSafeEntryName(e.path) || names.has(e.path)) {
      throw new GitError("GitError", `refusing tree entry ${JSON.stringify(e.path.slice(0, 100))} in ${treeOid}`);
    }
    names.add(e.path);
  }
  for (let i = 0; i < tree.length; i += PARALLEL) {
    await Promise.all(tree.slice(i, i + PARALLEL).map((e) => writeEntry(ctx, e, join(dir, e.path))));
  }
}

async function writeEntry(ctx: ExportCtx, e: TreeEntry, path: string): Promise<void> {
  if (e.type === "tree") {
    await mkdir(path, { mode: 0o755 });
    await writeTree(ctx, e.oid, path);
    return;
  }
  if (e.type === "commit") {
    // A submodule: git leaves an empty directory without `submodule update`; so do we.
    await mkdir(path, { mode: 0o755 });
    return;
  }
  const { blob } = await git.readBlob({ fs, gitdir: ctx.gitdir, oid: e.oid, cache: ctx.cache });
  ctx.bytes += blob.byteLength;
  if (e.mode === "120000") {
    await symlink(Buffer.from(blob).toString("utf8"), path);
    return;
  }
  const mode = (Number.parseInt(e.mode, 8) & 0o111) !== 0 ? 0o555 : 0o444;
  // `wx`: never follow or replace an existing entry.
  await writeFile(path, blob, { flag: "wx", mode });
  await chmod(path, mode);
}

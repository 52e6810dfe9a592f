/** Writing and checking crds/*.yaml (the `pnpm gen:crds` command). */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { renderCrdFiles } from "./crds.js";

function findPackageDir(start: string): string {
  for (let dir = start; dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "@nio/api") {
      return dir;
    }
  }
  throw new Error(`package @nio/api not found above ${start}`);
}

/** packages/api, found from this file (works from src/ under tsx and from dist/src/). */
export const apiPackageDir = findPackageDir(dirname(fileURLToPath(import.meta.url)));

/** The repository's crds/ directory (the repository root is two levels above packages/api). */
export const defaultCrdDir = resolve(apiPackageDir, "../../crds");

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** The generated files whose content on disk differs (or that are missing), as paths. */
export async function staleCrdFiles(dir = defaultCrdDir): Promise<string[]> {
  const stale: string[] = [];
  for (const file of renderCrdFiles()) {
    const path = join(dir, file.name);
    if ((await readOrUndefined(path)) !== file.content) stale.push(path);
  }
  return stale;
}

/** Writes the generated files; returns the paths written (only those that changed). */
export async function writeCrdFiles(dir = defaultCrdDir): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const file of renderCrdFiles()) {
    const path = join(dir, file.name);
    if ((await readOrUndefined(path)) === file.content) continue;
    await writeFile(path, file.content);
    written.push(path);
  }
  return written;
}

export interface GenResult {
  code: number;
  output: string;
}

/** `gen-crds [--check] [--out DIR]`: writes crds/*.yaml, or with --check fails naming every stale file. */
export async function genCrds(argv: readonly string[]): Promise<GenResult> {
  const outIndex = argv.indexOf("--out");
  const dir = outIndex >= 0 ? resolve(argv[outIndex + 1] ?? ".") : defaultCrdDir;
  const shown = (p: string): string => relative(process.cwd(), p) || p;
  if (argv.includes("--check")) {
    const stale = await staleCrdFiles(dir);
    if (stale.length === 0) return { code: 0, output: "crds are up to date\n" };
    const lines = stale.map((p) => `stale: ${shown(p)}\n`).join("");
    return { code: 1, output: `${lines}crds/*.yaml are out of date: run pnpm gen:crds\n` };
  }
  const written = await writeCrdFiles(dir);
  return { code: 0, output: written.map((p) => `wrote ${shown(p)}\n`).join("") || "crds are up to date\n" };
}

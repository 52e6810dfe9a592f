import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The packages/testbed directory, found by walking up from this file (works from src/ under tsx and from dist/). */
export const testbedPackageDir = findPackageDir(dirname(fileURLToPath(import.meta.url)), "@nio/testbed");

export const repoRoot = resolve(testbedPackageDir, "../..");

/** Where built binaries are cached across runs; outside the work tree so a fresh clone reuses them. */
export function cacheDir(): string {
  return process.env.NIO_TESTBED_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "nio-testbed");
}

function findPackageDir(start: string, name: string): string {
  for (let dir = start; dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === name) {
      return dir;
    }
  }
  throw new Error(`package ${name} not found above ${start}`);
}

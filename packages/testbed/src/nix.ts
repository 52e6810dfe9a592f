/**
 * TypeScript wrappers around `host-tools/nix-offline`: Debian's Nix with flakes, fully offline, with the flake inputs
 * `nixpkgs` and `disko` replaced by the stub flakes in `nix-stubs/`. All commands run with argv arrays.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { run, type RunResult } from "./util/process.js";

/**
 * packages/testbed, found from this file whether it runs from `src/` (tsx) or `dist/src/` (compiled):
 * the first ancestor that holds `host-tools/nix-offline`.
 */
function findTestbedDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, "host-tools", "nix-offline"))) return dir;
    dir = dirname(dir);
  }
  throw new Error("cannot find packages/testbed/host-tools/nix-offline from " + fileURLToPath(import.meta.url));
}

let testbedDir: string | undefined;

/** Path of the `nix-offline` script (`$NIO_TESTBED_NIX_OFFLINE` overrides it). */
export function nixOfflineScript(): string {
  const override = process.env.NIO_TESTBED_NIX_OFFLINE;
  if (override) return resolve(override);
  testbedDir ??= findTestbedDir();
  return join(testbedDir, "host-tools", "nix-offline");
}

/** Directory of the stub flakes (`$NIO_TESTBED_NIX_STUBS` overrides it). */
export function nixStubsDir(): string {
  const override = process.env.NIO_TESTBED_NIX_STUBS;
  if (override) return resolve(override);
  testbedDir ??= findTestbedDir();
  return join(testbedDir, "nix-stubs");
}

/** Environment for `nix-offline`: the caller's environment plus the stub directory. */
export function nixOfflineEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    NIO_TESTBED_NIX_STUBS: nixStubsDir(),
    ...extra,
  };
}

export interface NixOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  input?: string;
  /** Another copy of the `nix-offline` script to run (default {@link nixOfflineScript}). */
  script?: string;
}

/** Runs `nix-offline <args>` and returns its exit code and output (it does not throw on failure). */
export function nixOffline(args: readonly string[], opts: NixOptions = {}): Promise<RunResult> {
  return run(opts.script ?? nixOfflineScript(), args, {
    cwd: opts.cwd,
    env: nixOfflineEnv(opts.env),
    timeoutMs: opts.timeoutMs ?? 300_000,
    input: opts.input,
  });
}

/**
 * Drops the notes nix prints because of the input overrides (`warning: not writing modified lock file ...` with its
 * `• Updated input` lines, and "does not match any input") so that errors read well.
 */
export function cleanNixStderr(stderr: string): string {
  const out: string[] = [];
  let inLockNote = false;
  for (const line of stderr.split("\n")) {
    if (/^warning: not writing modified lock file/.test(line)) {
      inLockNote = true;
      continue;
    }
    if (inLockNote && (/^(•|\s)/.test(line) || line === "")) continue;
    inLockNote = false;
    if (/^warning: the flag '--override-input .*' does not match any input/.test(line)) continue;
    out.push(line);
  }
  return out.join("\n").trim();
}

export class NixError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly code: number,
    readonly stderr: string,
  ) {
    super(`nix ${args.join(" ")} exited ${code}: ${cleanNixStderr(stderr)}`);
    this.name = "NixError";
  }
}

/** Like {@link nixOffline} but throws a {@link NixError} (with nix's message) on failure; returns stdout. */
export async function nixOfflineChecked(args: readonly string[], opts: NixOptions = {}): Promise<string> {
  const res = await nixOffline(args, opts);
  if (res.code !== 0) throw new NixError(args, res.code, res.stderr);
  return res.stdout;
}

/**
 * A flake reference for a directory. Plain directories become `path:<absolute dir>` so that nix sees every file
 * (a `git+file` flake only sees files git tracks); references with a scheme (`git+file:...`, `path:...`) are kept.
 */
export function flakeRef(dirOrRef: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(dirOrRef)) return dirOrRef;
  return `path:${resolve(dirOrRef).replace(/[%#? ]/g, (c) => encodeURIComponent(c))}`;
}

export type FlakeShowOutput = Record<string, unknown>;

/** `nix flake show --json <dir>`, parsed. */
export async function nixFlakeShow(dir: string, opts: NixOptions = {}): Promise<FlakeShowOutput> {
  const stdout = await nixOfflineChecked(["flake", "show", "--json", flakeRef(dir)], opts);
  return JSON.parse(stdout) as FlakeShowOutput;
}

export interface NixEvalOptions extends NixOptions {
  /** `--json` (default true): the result is parsed JSON; false gives `--raw` output as a string. */
  json?: boolean;
  /** `--apply <expr>`. */
  apply?: string;
}

/** `nix eval <dir>#<attrPath>`: parsed JSON (default) or the raw string with `{ json: false }`. */
export async function nixEval(dir: string, attrPath: string, opts: NixEvalOptions = {}): Promise<unknown> {
  const args = ["eval", opts.json === false ? "--raw" : "--json", `${flakeRef(dir)}#${attrPath}`];
  if (opts.apply !== undefined) args.push("--apply", opts.apply);
  const stdout = await nixOfflineChecked(args, opts);
  return opts.json === false ? stdout : (JSON.parse(stdout) as unknown);
}

/** `nix build --no-link --json <dir>#<attrPath>`; returns the `out` store path of each built derivation. */
export async function nixBuild(dir: string, attrPath: string, opts: NixOptions = {}): Promise<string[]> {
  const stdout = await nixOfflineChecked(["build", "--no-link", "--json", `${flakeRef(dir)}#${attrPath}`], opts);
  const results = JSON.parse(stdout) as { outputs: Record<string, string> }[];
  return results.map((r) => r.outputs.out ?? Object.values(r.outputs)[0] ?? "");
}

/** Builds `nixosConfigurations.<name>.config.system.build.toplevel`; returns its store path. */
export async function nixBuildToplevel(dir: string, name: string, opts: NixOptions = {}): Promise<string> {
  const [out] = await nixBuild(dir, `nixosConfigurations.${JSON.stringify(name)}.config.system.build.toplevel`, opts);
  if (!out) throw new Error(`nix build of ${name} returned no output path`);
  return out;
}

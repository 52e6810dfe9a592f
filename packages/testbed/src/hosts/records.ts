/**
 * Records the stand-ins write, one JSON object per line, in /var/log/testbed/<tool>.jsonl inside a host
 * (nixos-rebuild, systemctl, reboot, nixos-facter, testbed-reinstall), and the operator-side nixos-anywhere log.
 */
import { readFile } from "node:fs/promises";

/** A file of the flake source nixos-rebuild was pointed at, as the stand-in found it. */
export interface FlakeFile {
  /** Relative to the flake directory. */
  path: string;
  type: "file" | "symlink";
  /** Hex sha256 of the content (files only). */
  sha256?: string;
  /** Octal permission bits, e.g. "0644". */
  mode: string;
  /** Link target (symlinks only). */
  target?: string;
}

export type RebuildAction = "switch" | "boot" | "test" | "dry-activate" | "build" | "dry-build";

export interface RebuildRecord {
  tool: "nixos-rebuild";
  /** ISO 8601 time the command started. */
  time: string;
  durationMs: number;
  argv: string[];
  /** The user the command ran as, and who invoked sudo if it ran through sudo. */
  user: string;
  sudoUser?: string;
  action?: RebuildAction;
  /** The --flake argument as given, e.g. "path:/var/lib/nio/src/abc#web1". */
  flake?: string;
  /** The flake reference without "#attr", and the local directory it names (when it names one). */
  flakeRef?: string;
  flakeDir?: string;
  attr?: string;
  files?: FlakeFile[];
  /** "success", "failed" (Nix or argument error), or "fault" (a fault switch made it fail). */
  result: "success" | "failed" | "fault";
  exitCode: number;
  /** The built system's store path (when the build succeeded). */
  systemPath?: string;
  /** The generation number created or reused (switch, boot). */
  generation?: number;
  /** Which fault switches applied: slow apply seconds, failing apply. */
  slowApplySeconds?: number;
  fault?: "failing-apply";
}

/** What systemctl, reboot and nixos-facter record. */
export interface ToolRecord {
  tool: string;
  time: string;
  argv: string[];
  user: string;
  sudoUser?: string;
  [extra: string]: unknown;
}

export interface ReinstallRecord {
  tool: "testbed-reinstall";
  time: string;
  attr: string;
  systemPath: string;
  hostPublicKey: string;
  reboot: boolean;
  extraFiles: string[];
  [extra: string]: unknown;
}

/** What the operator-side nixos-anywhere stand-in records. */
export interface AnywhereRecord {
  tool: "nixos-anywhere";
  time: string;
  durationMs: number;
  argv: string[];
  flake?: string;
  attr?: string;
  targetHost?: string;
  sshUser?: string;
  sshHost?: string;
  sshPort?: number;
  identityFile?: string;
  kexec?: string;
  buildOnRemote: boolean;
  reboot: boolean;
  extraFiles?: string;
  diskEncryptionKeys: { remotePath: string; localPath: string }[];
  options: { name: string; value: string }[];
  phases: string[];
  result: "success" | "failed";
  exitCode: number;
  systemPath?: string;
  error?: string;
}

/** Parses a JSON-lines file; a missing file is an empty list. */
export async function readJsonLines<T>(path: string): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as T);
}

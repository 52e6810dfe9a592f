/**
 * Records the stand-ins write, one JSON object per line, in /var/log/testbed/<tool>.jsonl inside a host
 * (nixos-rebuild, systemctl, reboot, nixos-facter, testbed-reinstall, and the simulated services k3s and keepalived),
 * and the operator-side nixos-anywhere log.
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
  /** The simulated activation (switch, test) of a system built by the stub nixpkgs; absent for instant applies. */
  activation?: ActivationRecord;
}

/** What activating a system did (host-tools/libexec/testbed-lib.sh, tb_simulate_activation). */
export interface ActivationRecord {
  /** system.activationScripts in the order they ran, with their exit status (non-zero: the snippet failed). */
  scripts: { name: string; exitCode: number }[];
  /** Services stopped (the old system had them, the new one does not) and started. */
  units: { unit: string; event: "start" | "stop"; result: "success" | "failed"; error?: string }[];
  /** 0, 2 (an activation script failed) or 4 (a unit failed), as switch-to-configuration returns. */
  exitCode: number;
}

/** One simulated start or stop of k3s (/var/log/testbed/k3s.jsonl): the settings the system gave it. */
export interface K3sRecord {
  tool: "k3s";
  time: string;
  event: "start" | "stop";
  /** The flake attribute (empty when activated by a reboot) and the system that was activated. */
  attr: string;
  systemPath: string;
  role?: "server" | "agent";
  clusterInit?: boolean;
  serverAddr?: string;
  tokenFile?: string | null;
  /** Whether `services.k3s.token` was set (its value is never recorded). */
  tokenSet?: boolean;
  extraFlags?: string[];
  /** start: "running", or "failed" with the error k3s would have stopped with. */
  result?: "running" | "failed";
  error?: string;
  /** The admin kubeconfig a server writes. */
  kubeconfig?: string;
  /** Written by instant-apply with k3s (no evaluation: no settings). */
  instant?: boolean;
}

/** One simulated start or stop of keepalived (/var/log/testbed/keepalived.jsonl). */
export interface KeepalivedRecord {
  tool: "keepalived";
  time: string;
  event: "start" | "stop";
  attr: string;
  systemPath: string;
  /** services.keepalived.vrrpInstances as configured (start only). */
  vrrpInstances?: Record<string, Record<string, unknown>>;
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

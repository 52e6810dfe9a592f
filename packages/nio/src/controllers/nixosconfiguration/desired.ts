import { createHash } from "node:crypto";
import { Reason, type NixosConfigurationSpec } from "@nio/api";
import { WaitingError, type Informer } from "@nio/runtime";
import type { FacterReports } from "../../facts.js";
import type { MachineObject, SecretObject } from "../../resources.js";
import { secretValue } from "../../secrets.js";

export interface FlakeRef {
  /** Directory of the flake relative to the workspace root ("" for the root). */
  dir: string;
  attr: string;
}

/** `#attr`, `.#attr` or `dir#attr` (already validated by the schema). */
export function parseFlakeRef(flake: string): FlakeRef {
  const i = flake.lastIndexOf("#");
  const dir = flake.slice(0, i).replace(/^\.\/?/, "");
  return { dir, attr: flake.slice(i + 1) };
}

export interface FileContent {
  path: string;
  content: Buffer;
}

export interface HostFileContent extends FileContent {
  mode: number;
}

/** Everything one apply needs besides the git tree, and the digest that says whether it differs from the last. */
export interface DesiredState {
  commit: string;
  flake: FlakeRef;
  subdir?: string;
  additionalFiles: FileContent[];
  hostFiles: HostFileContent[];
  /** Values that must never appear in logs or status (secret file contents), for redaction. */
  secretValues: string[];
  /** Also reflects whether additionalFiles take data from Secrets (each such file draws a Warning event). */
  secretsInFlake: string[];
  digest: string;
}

/** The Secret key of a file value: the given key, else the file name (last path segment). */
export function fileSecretKey(path: string, key: string | undefined): string {
  return key ?? path.split("/").pop() ?? path;
}

export function computeDesired(
  spec: NixosConfigurationSpec,
  flake: string,
  commit: string,
  inputs: { namespace: string; machine: MachineObject; secrets: Informer<SecretObject>; facts: FacterReports },
): DesiredState {
  const secretValues: string[] = [];
  const secretsInFlake: string[] = [];
  const fromSecret = (path: string, ref: { name: string; key?: string }): Buffer => {
    const value = secretValue(inputs.secrets, inputs.namespace, ref.name, fileSecretKey(path, ref.key));
    secretValues.push(value.toString("utf8"));
    return value;
  };
  const additionalFiles = (spec.additionalFiles ?? []).map((f) => {
    if (f.value.secretRef) secretsInFlake.push(f.path);
    return { path: f.path, content: additionalFileContent(f, inputs, fromSecret) };
  });
  const hostFiles = (spec.hostFiles ?? []).map((f) => ({
    path: f.path,
    mode: parseInt(f.mode ?? "0400", 8),
    content: f.value.secretRef ? fromSecret(f.path, f.value.secretRef) : Buffer.from(f.value.inline ?? ""),
  }));
  const parsed = parseFlakeRef(flake);
  const digest = digestOf({ commit, flake: parsed, subdir: spec.configurationSubdir, additionalFiles, hostFiles });
  return {
    commit,
    flake: parsed,
    subdir: spec.configurationSubdir,
    additionalFiles,
    hostFiles,
    secretValues: secretValues.filter((v) => v.length >= 4),
    secretsInFlake,
    digest,
  };
}

function additionalFileContent(
  f: NonNullable<NixosConfigurationSpec["additionalFiles"]>[number],
  inputs: { machine: MachineObject; facts: FacterReports },
  fromSecret: (path: string, ref: { name: string; key?: string }) => Buffer,
): Buffer {
  if (f.value.secretRef) return fromSecret(f.path, f.value.secretRef);
  if (f.value.nixosFacter) {
    const report = inputs.facts.get(inputs.machine.metadata.uid ?? "");
    if (!report) {
      throw new WaitingError(
        Reason.Progressing,
        `${f.path}: waiting for the hardware scan of Machine ${inputs.machine.metadata.name} (nixos-facter report)`,
        5_000,
      );
    }
    return report;
  }
  return Buffer.from(f.value.inline ?? "");
}

/** sha256 over a canonical encoding of the inputs; file contents enter as their own hashes. */
export function digestOf(d: {
  commit: string;
  flake: FlakeRef;
  subdir?: string;
  additionalFiles: FileContent[];
  hostFiles: HostFileContent[];
}): string {
  const h = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
  const canonical = JSON.stringify({
    commit: d.commit,
    flake: d.flake,
    subdir: d.subdir ?? "",
    additionalFiles: [...d.additionalFiles].sort(byPath).map((f) => [f.path, h(f.content)]),
    hostFiles: [...d.hostFiles].sort(byPath).map((f) => [f.path, f.mode, h(f.content)]),
  });
  return `sha256:${createHash("sha256").update(canonical).digest("hex")}`;
}

const byPath = (a: { path: string }, b: { path: string }): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** Replaces every secret value in `text` (logs, messages) before it is stored or logged. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    for (const line of s.split("\n").filter((l) => l.trim().length >= 4)) out = out.split(line).join("[REDACTED]");
  }
  return out;
}

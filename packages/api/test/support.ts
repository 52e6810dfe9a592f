/** Test helpers: the seed fixtures, path-based object edits, and the kinds' validators by name. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { apiPackageDir } from "../src/crd-files.js";
import {
  KUBERNETES_CLUSTER,
  MACHINE,
  NIXOS_CONFIGURATION,
  validateKubernetesCluster,
  validateMachine,
  validateNixosConfiguration,
  type KindNames,
  type ValidationError,
} from "../src/index.js";

export type Obj = Record<string, unknown>;
export type KindName = "Machine" | "NixosConfiguration" | "KubernetesCluster";

/** The fixtures stay in test/ (tsc does not copy them to dist/). */
const fixtureDir = join(apiPackageDir, "test", "fixtures");

export const FIXTURE_FILES = [
  "machine.yaml",
  "machine-nico.yaml",
  "nixosconfiguration.yaml",
  "nixosconfiguration-additionalfiles.yaml",
  "kubernetescluster.yaml",
] as const;
export type FixtureFile = (typeof FIXTURE_FILES)[number];

export function fixture(file: FixtureFile): Obj {
  return parse(readFileSync(join(fixtureDir, file), "utf8")) as Obj;
}

/** The base object each kind's table cases start from. */
export const BASE: Record<KindName, FixtureFile> = {
  Machine: "machine.yaml",
  NixosConfiguration: "nixosconfiguration-additionalfiles.yaml",
  KubernetesCluster: "kubernetescluster.yaml",
};

export const NAMES: Record<KindName, KindNames> = {
  Machine: MACHINE,
  NixosConfiguration: NIXOS_CONFIGURATION,
  KubernetesCluster: KUBERNETES_CLUSTER,
};

export const VALIDATORS: Record<KindName, (o: unknown) => ValidationError[]> = {
  Machine: validateMachine,
  NixosConfiguration: validateNixosConfiguration,
  KubernetesCluster: validateKubernetesCluster,
};

/** "spec.files[1].path" -> ["spec", "files", 1, "path"] */
function parsePath(path: string): (string | number)[] {
  return path
    .split(/\.|(?=\[)/u)
    .filter((s) => s !== "")
    .map((s) => (s.startsWith("[") ? Number(s.slice(1, -1)) : s));
}

/** Sets (or, with undefined, deletes) the value at `path`, creating objects on the way. */
export function setPath(o: Obj, path: string, value: unknown): void {
  const keys = parsePath(path);
  let cur: Record<string | number, unknown> = o;
  for (const [i, key] of keys.entries()) {
    if (i === keys.length - 1) {
      if (value === undefined) delete cur[key];
      else cur[key] = value;
      return;
    }
    const next = cur[key];
    if (typeof next !== "object" || next === null) cur[key] = typeof keys[i + 1] === "number" ? [] : {};
    cur = cur[key] as Record<string | number, unknown>;
  }
}

export interface Edit {
  /** Values to set, by path; undefined deletes. */
  set: Record<string, unknown>;
}

export function edited(kind: KindName, edit: Edit): Obj {
  const o = fixture(BASE[kind]);
  for (const [path, value] of Object.entries(edit.set)) setPath(o, path, structuredClone(value));
  return o;
}

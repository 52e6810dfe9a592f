/**
 * Mutation fuzzing for the differential test: strings near the edge of each format (valid examples with random
 * insertions, deletions and replacements from a hostile alphabet), deterministic for a given seed.
 */
import type { KindName } from "./support.js";

export interface FuzzTarget {
  kind: KindName;
  /** Path of the string field to set. */
  path: string;
  /** Valid examples to mutate. */
  seeds: string[];
  /** Characters mutations draw from. */
  alphabet: string;
}

export const FUZZ_TARGETS: FuzzTarget[] = [
  {
    kind: "Machine",
    path: "spec.ipAddress",
    seeds: ["192.168.1.100", "2001:db8::1", "::1", "64:ff9b::192.0.2.33", "1:2:3:4:5:6:7:8", "::ffff:1.2.3.4"],
    alphabet: "0123456789abcdefABF:.%f ",
  },
  { kind: "Machine", path: "spec.hostname", seeds: ["cp-01.local", "a", "worker-01"], alphabet: "az09-._A \n" },
  { kind: "Machine", path: "spec.sshUser", seeds: ["root", "_svc", "deploy-1"], alphabet: "az09_-A$ ." },
  {
    kind: "NixosConfiguration",
    path: "spec.flake",
    seeds: [".#worker", "#cp-01", "./hosts#web_1", "a/b#c"],
    alphabet: "az09._-/#' $",
  },
  {
    kind: "NixosConfiguration",
    path: "spec.configurationSubdir",
    seeds: ["nix", "a/b/c", "x.y/.z"],
    alphabet: "az./-_ \u0000",
  },
  {
    kind: "NixosConfiguration",
    path: "spec.additionalFiles[1].path",
    seeds: ["config/custom.nix", "a", ".env"],
    alphabet: "az./-_ ",
  },
  { kind: "NixosConfiguration", path: "spec.ref", seeds: ["main", "refs/heads/x", "v1.2.3"], alphabet: "az09./-@{~^:" },
  {
    kind: "NixosConfiguration",
    path: "spec.gitRepo",
    seeds: ["https://github.com/org/r.git", "http://10.0.0.1:8080/r", "https://[::1]/r"],
    alphabet: "az09.:/@?#%[]-~ ",
  },
  { kind: "KubernetesCluster", path: "spec.vip", seeds: ["192.168.1.100", "fd00::10"], alphabet: "0123456789af:.%" },
];

/** mulberry32: a small deterministic PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(s: string, alphabet: string, rnd: () => number): string {
  const pick = (n: number): number => Math.floor(rnd() * n);
  const chars = [...s];
  const edits = 1 + pick(3);
  for (let i = 0; i < edits; i++) {
    const at = pick(chars.length + 1);
    const c = alphabet[pick(alphabet.length)] ?? "";
    const op = pick(3);
    if (op === 0) chars.splice(at, 0, c);
    else if (op === 1) chars.splice(at, 1);
    else chars.splice(at, 1, c);
  }
  return chars.join("");
}

/** `n` distinct mutants of the target's seeds (plus the seeds themselves). */
export function fuzzValues(target: FuzzTarget, n: number, seed = 1): string[] {
  const rnd = prng(seed);
  const out = new Set(target.seeds);
  for (let tries = 0; out.size < n + target.seeds.length && tries < n * 20; tries++) {
    const base = target.seeds[Math.floor(rnd() * target.seeds.length)] ?? "";
    out.add(mutate(base, target.alphabet, rnd));
  }
  return [...out];
}

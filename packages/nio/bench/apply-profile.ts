// node dist/bench/apply-profile.js — the apply pipeline alone (no Kubernetes, no controller): N testbed hosts,
// executeApply on each with at most MAX at once, 1-second stand-in applies. Prints the wall time against
// ceil(N / MAX) × 1 s and where each apply spent its time (the executor's "apply step" debug records).
//   PROFILE_MACHINES (50), PROFILE_MAX_CONCURRENT (10), PROFILE_SLOW_APPLY (1), PROFILE_ROUNDS (2)
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { Registry } from "prom-client";
import { executeApply } from "../src/apply/executor.js";
import { ApplySlots } from "../src/apply/limits.js";
import { loadNioConfig } from "../src/config.js";
import type { GitSource } from "../src/git/index.js";
import { createNioMetrics } from "../src/metrics.js";
import { createSshConnector } from "../src/ssh/index.js";
import { configurationNix, fleetFlake } from "../test/support/env.js";
import { startHostLab } from "../test/support/hosts.js";
import { cpuFigures, hostListeners, sampleCpu } from "./cpu.js";
import { sleepStandInTools } from "./standin.js";

const N = Number(process.env.PROFILE_MACHINES ?? 50);
const MAX = Number(process.env.PROFILE_MAX_CONCURRENT ?? 10);
const SLOW = Number(process.env.PROFILE_SLOW_APPLY ?? 1);
const ROUNDS = Number(process.env.PROFILE_ROUNDS ?? 2);

const dir = await mkdtemp(join(tmpdir(), "apply-profile-"));
// PROFILE_STANDIN=sleep: hosts whose nixos-rebuild only sleeps (and links /run/current-system), to see NIO's own
// share of the hosts' CPU without the testbed stand-in's.
const toolsDir = process.env.PROFILE_STANDIN === "sleep" ? await sleepStandInTools(dir) : undefined;
const lab = await startHostLab(N, { toolsDir });
try {
  await Promise.all(lab.fleet.hosts.map((h) => h.setInstantApply(true)));
  await Promise.all(lab.fleet.hosts.map((h) => h.setSlowApply(SLOW)));
  const config = loadNioConfig({ NIO_BASE_CONFIG_PATH: join(dir, "nio"), NIO_MAX_CONCURRENT_APPLIES: String(MAX) });
  const metrics = createNioMetrics(new Registry());
  const ssh = createSshConnector();
  const records: { name: string; step: string; ms: number }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line) continue;
        const r = JSON.parse(line) as { msg?: string; step?: string; ms?: number; name?: string };
        if (r.msg === "apply step" && r.step && r.ms !== undefined)
          records.push({ name: r.name ?? "", step: r.step, ms: r.ms });
      }
      cb();
    },
  });
  const logger = pino({ level: "debug" }, sink);
  const hostKeys = await Promise.all(lab.fleet.hosts.map((h) => h.hostPublicKey()));
  const listeners = await hostListeners(lab.fleet.hosts);

  for (let round = 1; round <= ROUNDS; round++) {
    const src = join(dir, `src-${round}`);
    await mkdir(src, { recursive: true });
    await writeFile(join(src, "flake.nix"), fleetFlake());
    await writeFile(join(src, "configuration.nix"), configurationNix(`v${round}`));
    const commit = String(round).repeat(40).slice(0, 40);
    const git: GitSource = {
      resolveRef: () => Promise.reject(new Error("not used")),
      checkout: () => Promise.resolve({ dir: src, commit, source: "cache", release: () => Promise.resolve() }),
      stats: () => {
        throw new Error("not used");
      },
    };
    const slots = new ApplySlots(MAX);
    records.length = 0;
    const cpu0 = await sampleCpu({ listeners, controlPlane: [] });
    const t0 = Date.now();
    await Promise.all(
      lab.fleet.hosts.map(async (h, i) => {
        await executeApply(
          { ssh, git, config, metrics, slots },
          {
            mode: "switch",
            metricMode: "switch",
            target: lab.target(h),
            expectedHostKey: hostKeys[i],
            sudo: false,
            git: { url: "http://example.invalid/fleet" },
            desired: {
              commit,
              flake: { dir: "", attr: "worker" },
              additionalFiles: [],
              hostFiles: [],
              secretValues: [],
              secretsInFlake: [],
              digest: commit,
            },
            writeHostFiles: false,
            logger: logger.child({ name: h.name }),
          },
        );
      }),
    );
    const wall = (Date.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 500)); // the hosts' sshd reap their sessions
    const cpu1 = await sampleCpu({ listeners, controlPlane: [] });
    const ideal = Math.ceil(N / MAX) * SLOW;
    console.log(`round ${round}: wall ${wall.toFixed(2)} s, ideal ${ideal} s, ratio ${(wall / ideal).toFixed(2)}`);
    for (const [name, value] of cpuFigures("  profile", cpu0, cpu1, N)) {
      if (!name.includes("control_plane") && !name.includes("cpu_nio")) console.log(`${name}: ${value}`);
    }
    const seen = new Set(records.map((r) => r.step));
    const steps = ["checkout", "workspace", "connected", "prepared", "run-slot", "switched", "done"].filter((st) =>
      seen.has(st),
    );
    const byName = new Map<string, Map<string, number>>();
    for (const r of records) {
      const m = byName.get(r.name) ?? new Map<string, number>();
      m.set(r.step, r.ms);
      byName.set(r.name, m);
    }
    let prev: string | undefined;
    for (const step of steps) {
      const deltas = [...byName.values()].map((m) => (m.get(step) ?? 0) - (prev ? (m.get(prev) ?? 0) : 0));
      console.log(`  ${prev ?? "start"} -> ${step}: ${stats(deltas)}`);
      prev = step;
    }
    const inSlot = [...byName.values()].map((m) => (m.get("done") ?? 0) - (m.get("run-slot") ?? 0));
    console.log(`  holding a run slot: ${stats(inSlot)}`);
  }
} finally {
  await lab.destroy();
  await rm(dir, { recursive: true, force: true });
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const avg = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  return `avg ${avg.toFixed(0)} p50 ${q(0.5)} p90 ${q(0.9)} max ${s[s.length - 1] ?? 0}`;
}

// CPU accounting for the NIO benchmarks: on a small shared machine the wall time alone does not say whose work it was.
import { readFile } from "node:fs/promises";
import type { Host } from "@nio/testbed";

const TICKS_PER_SECOND = 100;

/**
 * CPU seconds of a process (user + system); with `children`, also those of its children it has reaped (a simulated
 * host's sshd listener is PID 1 of its namespace, so it ends up with the CPU time of everything that ran there).
 */
export async function processCpuSeconds(pid: number, opts: { children?: boolean } = {}): Promise<number> {
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ") ?? [];
    const idx = opts.children ? [11, 12, 13, 14] : [11, 12];
    return idx.reduce((a, i) => a + Number(fields[i] ?? 0), 0) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** Busy and total CPU seconds of the whole machine since boot (all cores). */
export async function machineCpuSeconds(): Promise<{ busy: number; total: number }> {
  const line = (await readFile("/proc/stat", "utf8")).split("\n")[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND };
}

/** The sshd listeners (namespace PID 1) of the hosts. */
export async function hostListeners(hosts: readonly Host[]): Promise<number[]> {
  return Promise.all(hosts.map(async (h) => (await h.processes()).find((p) => p.nsPid === 1)?.pid ?? 0));
}

export interface CpuSample {
  nio: number;
  hosts: number;
  controlPlane: number;
  self: number;
  machineBusy: number;
  machineTotal: number;
}

/** A snapshot of the CPU seconds used so far by NIO, the hosts, the control plane, this process and the machine. */
export async function sampleCpu(pids: {
  nio?: number;
  listeners: number[];
  controlPlane: number[];
}): Promise<CpuSample> {
  const sum = async (xs: number[], children: boolean): Promise<number> =>
    (await Promise.all(xs.map((p) => processCpuSeconds(p, { children })))).reduce((a, b) => a + b, 0);
  const machine = await machineCpuSeconds();
  const self = process.cpuUsage();
  return {
    nio: pids.nio ? await processCpuSeconds(pids.nio) : 0,
    hosts: await sum(pids.listeners, true),
    controlPlane: await sum(pids.controlPlane, false),
    self: (self.user + self.system) / 1e6,
    machineBusy: machine.busy,
    machineTotal: machine.total,
  };
}

/** `name: value` lines for the CPU used between two samples. */
export function cpuFigures(prefix: string, a: CpuSample, b: CpuSample, applies: number): [string, string][] {
  const d = (k: keyof CpuSample): number => b[k] - a[k];
  const ours = d("nio") + d("hosts") + d("controlPlane") + d("self");
  const perApply = (x: number): string => `${x.toFixed(2)} s (${((x / applies) * 1000).toFixed(0)} ms per apply)`;
  return [
    [`${prefix}_cpu_nio_seconds`, perApply(d("nio"))],
    [`${prefix}_cpu_hosts_seconds`, perApply(d("hosts"))],
    [`${prefix}_cpu_control_plane_seconds`, d("controlPlane").toFixed(2)],
    [`${prefix}_cpu_bench_seconds`, d("self").toFixed(2)],
    [`${prefix}_cpu_machine_busy_seconds`, `${d("machineBusy").toFixed(2)} of ${d("machineTotal").toFixed(2)}`],
    [`${prefix}_cpu_other_processes_seconds`, Math.max(0, d("machineBusy") - ours).toFixed(2)],
  ];
}

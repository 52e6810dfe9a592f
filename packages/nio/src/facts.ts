import type { HardwareFacts } from "@nio/api";

/**
 * nixos-facter reports per machine (kept in memory; a restart re-scans). The full report is what
 * `additionalFiles[].value.nixosFacter` writes into the flake; status carries only a summary.
 */
export class FacterReports {
  private readonly reports = new Map<string, Buffer>();
  get(machineUid: string): Buffer | undefined {
    return this.reports.get(machineUid);
  }
  set(machineUid: string, report: Buffer): void {
    this.reports.set(machineUid, report);
  }
  delete(machineUid: string): void {
    this.reports.delete(machineUid);
  }
}

interface FacterResource {
  type?: string;
  range?: number;
  address?: string;
  unit?: string;
  value_1?: number;
  value_2?: number;
}
interface FacterDevice {
  model?: string;
  model_name?: string;
  vendor_name?: string;
  family?: number;
  cores?: number;
  unix_device_name?: string;
  driver?: string;
  resources?: FacterResource[];
  sub_class?: { name?: string };
}
interface FacterReport {
  system?: string;
  virtualisation?: string;
  hardware?: {
    cpu?: FacterDevice[];
    memory?: FacterDevice[];
    disk?: FacterDevice[];
    network_interface?: FacterDevice[];
  };
}

const str = (v: unknown, max = 256): string | undefined => (typeof v === "string" && v ? v.slice(0, max) : undefined);
const basename = (dev: string | undefined): string | undefined => dev?.split("/").pop();

/** The status summary of a nixos-facter JSON report; tolerant of missing fields, never throws on odd input. */
export function summarizeFacterReport(json: string): HardwareFacts {
  const report = JSON.parse(json) as FacterReport;
  const hw = report.hardware ?? {};
  const cpus = hw.cpu ?? [];
  const first = cpus[0];
  const memoryBytes = (hw.memory ?? [])
    .flatMap((m) => m.resources ?? [])
    .filter((r) => r.type === "phys_mem" && typeof r.range === "number")
    .reduce((sum, r) => sum + (r.range ?? 0), 0);
  const disks = (hw.disk ?? []).map((d) => {
    const size = d.resources?.find((r) => r.type === "size" && r.unit === "sectors");
    return {
      name: str(basename(d.unix_device_name)),
      model: str(d.model),
      sizeBytes: size?.value_1 !== undefined ? size.value_1 * (size.value_2 ?? 512) : undefined,
    };
  });
  const nics = (hw.network_interface ?? [])
    .filter((n) => n.sub_class?.name !== "Loopback" && n.unix_device_name !== "lo")
    .map((n) => ({
      name: str(n.unix_device_name),
      macAddress: str(n.resources?.find((r) => r.type === "hwaddr")?.address, 64),
      driver: str(n.driver),
    }));
  const cpuModel =
    str(first?.model_name) ?? (first?.vendor_name ? `${first.vendor_name} family ${first.family ?? "?"}` : undefined);
  return prune({
    system: str(report.system, 64),
    virtualisation: str(report.virtualisation, 64),
    cpu: first ? prune({ model: cpuModel, cores: first.cores, threads: cpus.length }) : undefined,
    memoryBytes: memoryBytes || undefined,
    disks: disks.slice(0, 64).map(prune),
    nics: nics.slice(0, 64).map(prune),
  });
}

/**
 * For machines without nixos-facter: a read-only probe printing `key value` lines. A constant script; nothing of
 * the machine's answers is ever run.
 */
export const PROBE_SCRIPT = [
  'echo "system $(uname -m)-linux"',
  "awk -F': *' '/^model name/ {print \"cpu \" $2; exit}' /proc/cpuinfo",
  'echo "threads $(grep -c ^processor /proc/cpuinfo)"',
  "awk '/^MemTotal:/ {print \"mem \" $2 * 1024}' /proc/meminfo",
  'for d in /sys/block/*; do n=${d##*/}; case $n in loop*|ram*|dm-*|sr*) continue;; esac; echo "disk $n $(( $(cat $d/size) * 512 ))"; done',
  'for i in /sys/class/net/*; do n=${i##*/}; [ "$n" = lo ] && continue; echo "nic $n $(cat $i/address 2>/dev/null)"; done',
].join("\n");

export function parseProbe(output: string): HardwareFacts {
  const facts: { system?: string; cpu: { model?: string; threads?: number }; memoryBytes?: number } & {
    disks: { name: string; sizeBytes: number }[];
    nics: { name: string; macAddress?: string }[];
  } = { cpu: {}, disks: [], nics: [] };
  for (const line of output.split("\n")) {
    const [kind, ...rest] = line.trim().split(/\s+/);
    const value = rest.join(" ");
    if (kind === "system") facts.system = str(value, 64);
    else if (kind === "cpu") facts.cpu.model = str(value);
    else if (kind === "threads") facts.cpu.threads = Number(value) || undefined;
    else if (kind === "mem") facts.memoryBytes = Number(value) || undefined;
    else if (kind === "disk" && rest[0])
      facts.disks.push({ name: rest[0].slice(0, 256), sizeBytes: Number(rest[1]) || 0 });
    else if (kind === "nic" && rest[0]) facts.nics.push({ name: rest[0].slice(0, 256), macAddress: str(rest[1], 64) });
  }
  return prune({
    ...facts,
    cpu: prune(facts.cpu),
    disks: facts.disks.slice(0, 64),
    nics: facts.nics.slice(0, 64),
  });
}

function prune<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

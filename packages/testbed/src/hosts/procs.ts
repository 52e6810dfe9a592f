/** Finding and ending the processes that run inside one simulated host (those whose root is the host's root dir). */
import { readFile, readdir, readlink } from "node:fs/promises";

import { sleep } from "../util/process.js";

export interface HostProcess {
  pid: number;
  /** The PID inside the host's PID namespace (1 is the host's sshd). */
  nsPid: number | undefined;
  comm: string;
}

function within(root: string, path: string): boolean {
  return path === root || path.startsWith(`${root}/`);
}

async function describe(pid: number): Promise<HostProcess> {
  let nsPid: number | undefined;
  let comm = "";
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const ns = /^NSpid:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/);
    const last = ns?.[ns.length - 1];
    nsPid = last === undefined ? undefined : Number(last);
    comm = /^Name:\s*(.*)$/m.exec(status)?.[1] ?? "";
  } catch {
    // gone meanwhile
  }
  return { pid, nsPid, comm };
}

/** Every process whose root directory is `rootDir` or below it. */
export async function hostProcesses(rootDir: string): Promise<HostProcess[]> {
  const found: HostProcess[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let root: string;
    try {
      root = await readlink(`/proc/${pid}/root`);
    } catch {
      continue; // ended meanwhile, or a kernel thread
    }
    if (within(rootDir, root)) found.push(await describe(pid));
  }
  return found;
}

/** The host's sshd listener: PID 1 of the host's PID namespace. */
export async function hostInit(rootDir: string): Promise<HostProcess | undefined> {
  return (await hostProcesses(rootDir)).find((p) => p.nsPid === 1);
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Ends every process of the host: SIGTERM to its PID 1 (the kernel then ends the whole PID namespace), then SIGKILL
 * to whatever still has its root in the host, until none is left.
 */
export async function killHostProcesses(rootDir: string, graceMs = 3000): Promise<void> {
  const init = await hostInit(rootDir);
  if (init) kill(init.pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  for (;;) {
    const left = await hostProcesses(rootDir);
    if (left.length === 0) return;
    if (Date.now() > deadline) {
      for (const p of left) kill(p.pid, "SIGKILL");
    }
    if (Date.now() > deadline + 10_000) {
      throw new Error(
        `processes of host ${rootDir} did not end: ${left.map((p) => `${p.pid} (${p.comm})`).join(", ")}`,
      );
    }
    await sleep(20);
  }
}

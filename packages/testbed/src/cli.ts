#!/usr/bin/env node
// The testbed CLI: `up` / `down` / `status` for a long-lived lab in a directory (default .testbed), and `demo-lab`
// (a smoke demo of the lab alone; `make demo` is the whole stack: e2e/src/demo.ts).
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { openHosts } from "./hosts/index.js";
import { runDemo } from "./demo.js";
import { printLab } from "./cli-print.js";
import { startTestbed, type TestbedState } from "./testbed.js";
import { isAlive, stopGroup } from "./util/process.js";
import { repoRoot } from "./util/paths.js";

const usage = `usage: testbed <command> [--dir DIR] [--hosts N]
  up       start a lab that keeps running (control plane, hosts, git server); writes DIR/kubeconfig, DIR/env
  down     stop the lab in DIR and remove it
  status   show what runs in DIR
  demo-lab start a lab, show what runs and how to reach it, smoke-test each part, stop (KEEP=1 keeps it in DIR)
           (the whole stack, NIO and NICO included, is \`make demo\`: node e2e/dist/src/demo.js)`;

// Output piped into `head` and the like may close early; that is not an error of ours.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
});

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { dir: { type: "string" }, hosts: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  const command = positionals[0];
  const dir = resolve(values.dir ?? join(repoRoot, ".testbed"));
  const hosts = values.hosts === undefined ? undefined : Number(values.hosts);
  if (hosts !== undefined && (!Number.isInteger(hosts) || hosts < 0 || hosts > 200)) {
    console.error("--hosts must be a whole number from 0 to 200");
    return 2;
  }
  switch (command) {
    case "up":
      return up(dir, hosts ?? 5);
    case "down":
      return down(dir);
    case "status":
      return status(dir);
    case "demo-lab":
      return runDemo({ keepDir: process.env.KEEP === "1" ? dir : undefined, hosts: hosts ?? 5 });
    default:
      console.error(usage);
      return values.help ? 0 : 2;
  }
}

async function up(dir: string, hosts: number): Promise<number> {
  if (existsSync(join(dir, "state.json"))) {
    console.error(`a lab already runs in ${dir}; run \`make testbed-down\` first`);
    return 1;
  }
  const t0 = Date.now();
  const tb = await startTestbed({ dir, hosts, detached: true });
  printLab(tb, Date.now() - t0);
  return 0;
}

async function down(dir: string): Promise<number> {
  const statePath = join(dir, "state.json");
  if (!existsSync(statePath)) {
    console.log(`no lab runs in ${dir}`);
    return 0;
  }
  const state = JSON.parse(await readFile(statePath, "utf8")) as TestbedState;
  // The API server first: etcd waits for its clients to disconnect before it exits.
  const order = ["kube-apiserver", "git-server", "etcd"];
  const pids = [...state.pids].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  for (const p of pids) {
    // Only end processes that are still ours: a reused PID would not mention the lab's directory.
    if (isAlive(p.pid) && (await cmdline(p.pid)).includes(state.dir)) await stopGroup(p.pid, 5000);
  }
  const fleet = await openHosts({ dir: state.dir });
  await fleet.destroy();
  await rm(state.dir, { recursive: true, force: true });
  console.log(`lab in ${state.dir} stopped and removed`);
  return 0;
}

async function status(dir: string): Promise<number> {
  const statePath = join(dir, "state.json");
  if (!existsSync(statePath)) {
    console.log(`no lab runs in ${dir}`);
    return 1;
  }
  const state = JSON.parse(await readFile(statePath, "utf8")) as TestbedState;
  for (const p of state.pids) console.log(`${p.name.padEnd(15)} pid ${p.pid} ${isAlive(p.pid) ? "running" : "gone"}`);
  const fleet = await openHosts({ dir: state.dir });
  for (const h of fleet.hosts) {
    console.log(`${h.name.padEnd(15)} ${h.address}:${h.port} ${(await h.isRunning()) ? "running" : "down"}`);
  }
  return 0;
}

async function cmdline(pid: number): Promise<string> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, "utf8")).replace(/\0/g, " ");
  } catch {
    return "";
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);

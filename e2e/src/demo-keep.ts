// KEEP=1: the lab (detached testbed) and the operators stay running in .demo/ after `make demo`; `demo.js down` stops
// them. The operators the stack started are tied to the demo's process (they stop when it ends), so they are started
// again here as detached processes with the same environment, ports, identities and log files.
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import { isAlive, repoRoot, runChecked, waitFor } from "@nio/testbed";
import type { OperatorProcess, Stack } from "./stack.js";
import { httpOk } from "./stack-operator.js";

export const DEMO_DIR = join(repoRoot, ".demo");
const OPERATORS_FILE = "operators.json";

interface KeptOperator {
  name: string;
  pid: number;
  logFile: string;
  metricsUrl: string;
  healthUrl: string;
}

/** Starts `op` again as a process of its own (own session, no lifeline to this one) and waits until it is ready. */
async function detach(op: OperatorProcess): Promise<KeptOperator> {
  const main = `packages/${op.name.startsWith("nico") ? "nico" : "nio"}/dist/src/main.js`;
  const out = openSync(op.logFile, "a");
  let pid: number | undefined;
  try {
    const child = spawn(process.execPath, [main], {
      cwd: repoRoot,
      env: { ...op.env },
      stdio: ["ignore", out, out],
      detached: true,
    });
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(out);
  }
  if (pid === undefined) throw new Error(`could not start ${op.name} again`);
  await waitFor(`${op.name} ready`, async () => ((await httpOk(`${op.healthUrl}/ready`)) ? true : undefined), {
    timeoutMs: 90_000,
    intervalMs: 250,
  });
  return { name: op.name, pid, logFile: op.logFile, metricsUrl: op.metricsUrl, healthUrl: op.healthUrl };
}

/** Hands the operators over to detached processes; returns what it started (also written to .demo/operators.json). */
export async function keepOperators(stack: Stack): Promise<KeptOperator[]> {
  const ops = [...stack.nio, stack.nico];
  const kept: KeptOperator[] = [];
  for (const op of ops) {
    await op.kill("SIGTERM");
    kept.push(await detach(op));
  }
  await writeFile(join(stack.tb.dir, OPERATORS_FILE), JSON.stringify(kept, null, 2) + "\n");
  // The seed again, to recreate the cluster by hand (holds the SSH key and git token: 0600).
  const seed = (await stack.seedManifests()).map((d) => stringify(d)).join("---\n");
  await writeFile(join(stack.tb.dir, "seed.yaml"), seed, { mode: 0o600 });
  // The git token goes to a private file, never into the printed instructions (terminal scrollback, CI logs).
  await writeFile(join(stack.tb.dir, GIT_TOKEN_FILE), `${stack.gitToken}\n`, { mode: 0o600 });
  return kept;
}

const GIT_TOKEN_FILE = "git-token";

/** How to reach everything that keeps running. */
export function keepInstructions(stack: Stack, kept: readonly KeptOperator[]): string[] {
  const tb = stack.tb;
  const rel = (p: string): string => (p.startsWith(repoRoot + "/") ? p.slice(repoRoot.length + 1) : p);
  const kubectl = rel(join(tb.dir, "bin", "kubectl"));
  return [
    `The lab and the operators keep running (KEEP=1) in ${rel(tb.dir)}/:`,
    `  export KUBECONFIG=${tb.controlPlane.kubeconfigPath}    # admin (system:masters); API ${tb.controlPlane.server}`,
    `  ${kubectl} get machines,nixosconfigurations,kubernetesclusters`,
    `  ${kubectl} apply --server-side -f ${rel(join(tb.dir, "seed.yaml"))}    # the seed again: Secrets, Machines, prod-cluster`,
    `  ${kubectl} get kubernetescluster prod-cluster -w`,
    ...kept.map(
      (k) => `  ${k.name.padEnd(6)} pid ${k.pid}  log ${rel(k.logFile)}  ${k.metricsUrl}  ${k.healthUrl}/ready`,
    ),
    `  operators' identities: ${rel(stack.kubeconfigs.nio)}, ${rel(stack.kubeconfigs.nico)} (ServiceAccount tokens, 24 h)`,
    ...tb.fleet.hosts.map(
      (h) => `  ssh -i ${rel(tb.operatorKey.privateKeyPath)} -p ${h.port} root@${h.address}    # ${h.name}`,
    ),
    `  git clone ${stack.repoUrl}    # the flake repository; user git, password in ${rel(join(tb.dir, GIT_TOKEN_FILE))} (push: NICO rolls the new commit out)`,
    `  source ${rel(join(tb.dir, "env"))}    # every address, port and path as variables`,
    `Stop everything: node e2e/dist/src/demo.js down`,
  ];
}

export function demoRunning(dir = DEMO_DIR): boolean {
  return existsSync(join(dir, "state.json")) || existsSync(join(dir, OPERATORS_FILE));
}

/** Whether `pid` is still one of our operators: its environment names the demo directory. */
async function isOurOperator(pid: number, dir: string): Promise<boolean> {
  try {
    const environ = (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0");
    return environ.some((v) => v.startsWith("KUBECONFIG=") && v.includes(dir));
  } catch {
    return false;
  }
}

async function stopOperator(op: KeptOperator, dir: string): Promise<void> {
  if (!isAlive(op.pid) || !(await isOurOperator(op.pid, dir))) return;
  const signal = (s: NodeJS.Signals): void => {
    try {
      process.kill(-op.pid, s);
    } catch {
      // gone
    }
  };
  signal("SIGTERM");
  try {
    await waitFor(`${op.name} stopped`, async () => (isAlive(op.pid) ? undefined : true), {
      timeoutMs: 20_000,
      intervalMs: 200,
    });
  } catch {
    signal("SIGKILL");
  }
}

/** `demo.js down`: stops the kept operators, then the lab (testbed down), and removes the directory. */
export async function demoDown(dir = DEMO_DIR): Promise<number> {
  if (!demoRunning(dir)) {
    console.log(`no demo runs in ${dir}`);
    return 0;
  }
  const file = join(dir, OPERATORS_FILE);
  const kept = existsSync(file) ? (JSON.parse(await readFile(file, "utf8")) as KeptOperator[]) : [];
  for (const op of kept) await stopOperator(op, dir);
  if (kept.length > 0) console.log(`operators stopped: ${kept.map((k) => `${k.name} (pid ${k.pid})`).join(", ")}`);
  const out = await runChecked(process.execPath, [
    join(repoRoot, "packages/testbed/dist/src/cli.js"),
    "down",
    "--dir",
    dir,
  ]);
  console.log(out.trim());
  return 0;
}

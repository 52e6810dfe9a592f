#!/usr/bin/env node
// `make demo`: the whole stack on the local testbed, as it runs in a cluster. Starts the lab (real kube-apiserver +
// etcd, five simulated NixOS hosts behind OpenSSH, a git server with the project's nix/ flake), applies the CRDs and
// deploy/base's RBAC, runs NIO and NICO as processes under their own ServiceAccounts, creates the seed's Secrets,
// Machines and KubernetesCluster, and shows the cluster come up, roll out a new commit and go away again, with a
// live table of the nodes. Ends with the time of every phase and stops everything (KEEP=1 leaves it running).
//
//   node e2e/dist/src/demo.js          the demo (KEEP=1: keep the lab and the operators in .demo/)
//   node e2e/dist/src/demo.js down     stop what KEEP=1 left running
import { createHmac } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { secrets, type SecretObject } from "@nio/nio";
import { kubernetesClusters } from "@nio/nico";
import { flakeRef, nixOfflineChecked, repoRoot, run, runChecked, type Host } from "@nio/testbed";
import { DEMO_DIR, demoDown, demoRunning, keepInstructions, keepOperators } from "./demo-keep.js";
import {
  heading,
  inRoleOrder,
  indent,
  orderLine,
  redactKubeconfig,
  stripAnsi,
  summaryLines,
  type Timing,
} from "./demo-text.js";
import { clusterReadyAt, clusterReleased, readSnapshot, watchCluster, type WatchOptions } from "./demo-watch.js";
import { formatSeconds, nodeRows, short, type Snapshot } from "./progress.js";
import {
  DEFAULT_CLUSTER_NAME,
  OPERATOR_NAMESPACE,
  SEED_NAMESPACE,
  startStack,
  type OperatorProcess,
  type Stack,
} from "./stack.js";

const HOSTS = ["cp-01", "cp-02", "cp-03", "worker-01", "worker-02"];
const CLUSTER = DEFAULT_CLUSTER_NAME;
const NS = SEED_NAMESPACE;
const say = (text: string): void => void process.stdout.write(text + "\n");

interface NodeEvent {
  machine: string;
  role: string;
  at: number;
}

class Demo {
  readonly timings: Timing[] = [];
  readonly abort = new AbortController();
  /** When this process started (the summary's total is the wall time, module loading included). */
  readonly t0 = Date.now() - process.uptime() * 1000;
  stack: Stack | undefined;
  private pending: Promise<Stack> | undefined;
  private shutdownPromise: Promise<void> | undefined;
  private readonly tty: boolean;
  /** KEEP=1: how to reach what keeps running, printed last. */
  keepLines: string[] = [];

  constructor(readonly keep: boolean) {
    this.tty = process.stdout.isTTY === true && process.env.TERM !== "dumb";
  }

  private get s(): Stack {
    if (!this.stack) throw new Error("the stack is not up");
    return this.stack;
  }

  async phase<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t = Date.now();
    try {
      const result = await fn();
      this.timings.push({ name, ms: Date.now() - t });
      return result;
    } catch (err) {
      this.timings.push({ name, ms: Date.now() - t, failed: true });
      throw err;
    }
  }

  watch(title: string, opts: Pick<WatchOptions, "until" | "observe" | "timeoutMs">): Promise<Snapshot> {
    say(heading(title));
    return watchCluster({
      kube: this.s.kube,
      namespace: NS,
      cluster: CLUSTER,
      out: process.stdout,
      tty: this.tty,
      signal: this.abort.signal,
      ...opts,
    });
  }

  /** Phases "lab up" and "operators up": startStack does both; its progress line after the testbed splits them. */
  async start(): Promise<void> {
    say(heading("lab: kube-apiserver + etcd, 5 simulated NixOS hosts behind OpenSSH, git server, offline Nix"));
    const t = Date.now();
    let labAt: number | undefined;
    this.pending = startStack({
      hosts: HOSTS,
      ...(this.keep ? { dir: DEMO_DIR, detached: true } : {}),
      log: (line) => {
        if (labAt === undefined && line.startsWith("testbed up")) labAt = Date.now();
        say(`  · ${line}`);
      },
    });
    this.stack = await this.pending;
    const split = labAt ?? t;
    this.timings.push({ name: "lab up", ms: split - t }, { name: "operators up", ms: Date.now() - split });
    await this.describeStack();
  }

  private async describeStack(): Promise<void> {
    const s = this.s;
    say(`  API server   ${s.tb.controlPlane.server}  (lab files in ${s.tb.dir})`);
    say(`  git          ${s.repoUrl}  (the project's nix/ flake, token auth)`);
    for (const h of s.tb.fleet.hosts) say(`  host         ${h.name.padEnd(10)} ssh root@${h.address} -p ${h.port}`);
    for (const op of [...s.nio, s.nico]) {
      const account = op.name.startsWith("nico") ? "nico" : "nio";
      say(
        `  operator     ${op.name.padEnd(6)} pid ${op.pid() ?? "-"}  as system:serviceaccount:${OPERATOR_NAMESPACE}:${account}`,
      );
    }
    // Least privilege: neither identity may do everything (no cluster-admin).
    for (const account of ["nio", "nico"]) {
      const as = `system:serviceaccount:${OPERATOR_NAMESPACE}:${account}`;
      const all = await run(s.tb.binaries.kubectl, [
        "--kubeconfig",
        s.tb.controlPlane.kubeconfigPath,
        "auth",
        "can-i",
        "*",
        "*",
        "--all-namespaces",
        `--as=${as}`,
      ]);
      say(`  kubectl auth can-i '*' '*' --as=${as}: ${all.stdout.trim() || all.stderr.trim()}`);
    }
  }

  async seedAndWaitReady(): Promise<void> {
    say(heading("seed: Secrets, Machines labelled by role, the seed's KubernetesCluster"));
    const manifests = await this.s.seedManifests();
    const cluster = manifests.find((m) => m.kind === "KubernetesCluster");
    for (const m of manifests) {
      const role = m.metadata.labels?.role;
      say(`  ${m.kind}/${m.metadata.name}${role ? `  (role=${role})` : ""}`);
    }
    if (cluster) say(indent(stringify({ spec: cluster.spec }), "    "));
    await this.s.seed();
    const ready = await this.watch(`${CLUSTER}: claims, rollout in order, Ready`, {
      until: (s) => clusterReadyAt(s),
      timeoutMs: 300_000,
    });
    const st = ready.cluster?.status;
    say(
      `  Ready: control plane ${st?.controlPlaneReady}, workers ${st?.dataPlaneReady}, every node applied ${short(st?.commit)}; endpoint ${st?.endpoint}`,
    );
  }

  async showObjects(): Promise<void> {
    say(heading("kubectl get machines,nixosconfigurations,kubernetesclusters"));
    say(indent(await this.s.kubectl(["get", "-n", NS, "machines,nixosconfigurations,kubernetesclusters"])));
  }

  async flakeShow(): Promise<void> {
    say(heading(`nico render --cluster ${CLUSTER} + nix flake show (offline Nix, stub nixpkgs)`));
    const work = await mkdtemp(join(tmpdir(), "demo-flake-"));
    try {
      const out = join(work, "flake");
      const rendered = await runChecked(process.execPath, [
        join(repoRoot, "packages/nico/dist/src/main.js"),
        "render",
        "--cluster",
        CLUSTER,
        "-n",
        NS,
        "--kubeconfig",
        this.s.tb.controlPlane.kubeconfigPath,
        "--flake",
        join(repoRoot, "nix"),
        "--out",
        out,
      ]);
      say(indent(rendered));
      say(`  cluster.nix:`);
      say(indent(await readFile(join(out, "cluster.nix"), "utf8"), "    "));
      say(`  $ nix flake show ${out}`);
      const show = await nixOfflineChecked(["flake", "show", flakeRef(out)]);
      say(indent(this.tty ? show : stripAnsi(show), "    "));
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  async showKubeconfig(): Promise<void> {
    const name = `${CLUSTER}-kubeconfig`;
    say(heading(`the kubeconfig Secret ${name} (fetched by NICO over SSH from the first control-plane node)`));
    say(indent(await this.s.kubectl(["get", "secret", "-n", NS, name])));
    const secret = await this.s.kube.get<SecretObject>(secrets, { namespace: NS, name });
    const value = Buffer.from(secret.data?.value ?? "", "base64").toString("utf8");
    say(indent(redactKubeconfig(value), "    "));
  }

  async rollingUpdate(): Promise<void> {
    say(heading("rolling update: push a new commit; control plane one at a time, then the workers"));
    const common = await readFile(join(repoRoot, "nix/nodes/common.nix"), "utf8");
    const anchor = 'system.stateVersion = "25.05";';
    const changed: Record<string, string> = common.includes(anchor)
      ? { "nix/nodes/common.nix": common.replace(anchor, `${anchor}\n    users.motd = "${CLUSTER}: managed by NICO";`) }
      : { "nix/ROLLOUT.md": `${CLUSTER}: rolled out by the demo\n` };
    const commit = await this.s.push("demo: a login message on every node", changed);
    const pushed = Date.now();
    say(`  pushed ${short(commit)}: ${Object.keys(changed).join(", ")} (a login message)`);
    say(`  ${await this.notifyNico()}`);
    const switched = new Map<string, NodeEvent>();
    await this.watch(`${CLUSTER}: rolling out ${short(commit)}`, {
      until: (s) => clusterReadyAt(s, commit),
      observe: (s, at) => {
        for (const r of nodeRows(s)) {
          if (r.appliedCommit === short(commit) && r.role !== "-" && !switched.has(r.machine)) {
            switched.set(r.machine, { machine: r.machine, role: r.role, at });
          }
        }
      },
      timeoutMs: 300_000,
    });
    const events = [...switched.values()];
    say(`  switched: ${orderLine(events, pushed)}`);
    say(`  control plane first, then workers: ${inRoleOrder(events) ? "yes" : "NO"}`);
  }

  /** What a git host does after a push: a signed webhook to NICO, which resolves the ref at once. */
  private async notifyNico(): Promise<string> {
    const url = this.s.nico.webhookUrl;
    if (!url) return "NICO picks the new commit up within its interval (NICO_CLUSTER_RECONCILE_INTERVAL)";
    const body = JSON.stringify({ repository: { clone_url: this.s.repoUrl } });
    const sig = createHmac("sha256", this.s.webhookSecret).update(body).digest("hex");
    const res = await fetch(url, { method: "POST", headers: { "X-Hub-Signature-256": `sha256=${sig}` }, body });
    await res.arrayBuffer();
    return `POST ${url} (X-Hub-Signature-256, as a git host sends it): ${res.status} ${res.statusText}`;
  }

  async deletion(): Promise<void> {
    say(heading(`kubectl delete kubernetescluster ${CLUSTER}: every node gets #minimal, then its Machine is released`));
    const before = await readSnapshot(this.s.kube, NS, CLUSTER);
    const nodes = before.cluster?.status?.nodes ?? [];
    const firstCp = nodes.find((n) => n.role === "control-plane" && n.index === 0)?.machine;
    const owned = (await this.s.kube.list<SecretObject>(secrets, { namespace: NS })).items
      .map((x) => x.metadata.name ?? "")
      .filter((n) => n.startsWith(`${CLUSTER}-`));
    let releasedAt = 0;
    const start = Date.now();
    await this.s.kube.delete(kubernetesClusters, { namespace: NS, name: CLUSTER });
    await this.watch(`${CLUSTER}: deleting`, {
      until: (s) => clusterReleased(s, CLUSTER),
      observe: (_s, at) => void (releasedAt = at),
      timeoutMs: 300_000,
    });
    const events: NodeEvent[] = [];
    for (const n of nodes) {
      const host = this.s.tb.fleet.hosts.find((h) => h.name === n.machine);
      if (!host) continue;
      const m = await minimalOf(host, start);
      say(`  ${m.line}`);
      if (m.at !== undefined) events.push({ machine: n.machine, role: n.role ?? "-", at: m.at });
    }
    const last = [...events].sort((a, b) => a.at - b.at).at(-1)?.machine;
    say(`  #minimal order: ${orderLine(events, start)}`);
    say(
      `  workers first, then the control plane, the first control-plane node last: ${
        events.length === nodes.length && inRoleOrder(events, true) && last === firstCp ? "yes" : "NO"
      }`,
    );
    say(
      `  claims released (label nico.homystack.com/cluster removed) from ${nodes.length} Machines by +${(
        (releasedAt - start) /
        1000
      ).toFixed(1)} s; the KubernetesCluster is gone`,
    );
    const after = new Set(
      (await this.s.kube.list<SecretObject>(secrets, { namespace: NS })).items.map((x) => x.metadata.name),
    );
    say(
      `  Secrets ${owned.join(", ")}: ${owned.every((n) => !after.has(n)) ? "deleted with the cluster" : "STILL THERE"}`,
    );
    say(indent(await this.s.kubectl(["get", "-n", NS, "machines", "-L", "role,nico.homystack.com/cluster"])));
  }

  /** Stops everything (once), or with KEEP=1 hands the operators over to detached processes. */
  shutdown(keep: boolean): Promise<void> {
    this.shutdownPromise ??= this.doShutdown(keep);
    return this.shutdownPromise;
  }

  private async doShutdown(keep: boolean): Promise<void> {
    const stack = this.stack ?? (await this.pending?.catch(() => undefined));
    if (keep && stack) {
      const kept = await keepOperators(stack);
      await stack.stop();
      this.keepLines = keepInstructions(stack, kept);
      return;
    }
    await stack?.stop();
    // A KEEP=1 run that is interrupted stops its detached lab as well.
    if (this.keep && demoRunning()) await demoDown();
  }

  async printFailure(err: unknown): Promise<void> {
    process.stderr.write(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    const ops: OperatorProcess[] = this.stack ? [...this.stack.nio, this.stack.nico] : [];
    for (const op of ops) {
      const tail = (await op.log()).trimEnd().split("\n").slice(-15).join("\n");
      process.stderr.write(`\n--- last lines of ${op.name}'s log (${op.logFile})\n${tail}\n`);
    }
  }
}

/** The #minimal apply a host's nixos-rebuild stand-in recorded since `start` (finish time), as a line to print. */
async function minimalOf(h: Host, start: number): Promise<{ line: string; at?: number }> {
  const records = (await h.rebuildRecords()).filter((r) => Date.parse(r.time) >= start - 1000);
  const minimal = records.find((r) => r.attr === "minimal" && r.result === "success");
  if (!minimal) return { line: `${h.name.padEnd(10)} no successful #minimal recorded` };
  const at = Date.parse(minimal.time) + minimal.durationMs;
  const system = (await h.currentSystem()) ?? "-";
  return {
    line: `${h.name.padEnd(10)} nixos-rebuild ${minimal.action ?? "switch"} --flake …#minimal: ok at +${formatSeconds(at - start)}; /run/current-system → ${system}`,
    at,
  };
}

async function runDemo(demo: Demo): Promise<number> {
  let failed = false;
  try {
    await demo.start();
    await demo.phase("cluster Ready", () => demo.seedAndWaitReady());
    await demo.phase("kubectl get", () => demo.showObjects());
    await demo.phase("nico render + flake show", () => demo.flakeShow());
    await demo.phase("kubeconfig Secret", () => demo.showKubeconfig());
    await demo.phase("rolling update", () => demo.rollingUpdate());
    await demo.phase("deletion", () => demo.deletion());
  } catch (err) {
    failed = true;
    if (!demo.abort.signal.aborted) await demo.printFailure(err);
  }
  if (demo.abort.signal.aborted) {
    // The signal handler is stopping everything; wait for it (it exits the process when done).
    await demo.shutdown(false);
    return 130;
  }
  const t = Date.now();
  // KEEP=1 keeps the lab also after a failure: that is when one wants to look at it.
  await demo.shutdown(demo.keep);
  demo.timings.push({ name: demo.keep ? "hand over (KEEP=1)" : "stop everything", ms: Date.now() - t });
  say(heading("summary"));
  for (const line of summaryLines(demo.timings, Date.now() - demo.t0)) say(line);
  say(demo.keepLines.length > 0 ? "" : "\nEverything the demo started has been stopped.");
  for (const line of demo.keepLines) say(line);
  return failed ? 1 : 0;
}

function installSignalHandlers(demo: Demo): void {
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      process.stderr.write(`\n${signal} again: exiting now\n`);
      process.exit(130);
    }
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping everything the demo started (again to force)…\n`);
    demo.abort.abort();
    demo.shutdown(false).then(
      () => process.exit(130),
      (err: unknown) => {
        process.stderr.write(`while stopping: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(130);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);
}

async function main(argv: string[]): Promise<number> {
  const command = argv[0] ?? "run";
  if (command === "down") return demoDown();
  if (command !== "run") {
    process.stderr.write("usage: demo.js [run | down]   (KEEP=1 keeps the lab and the operators running in .demo/)\n");
    return 2;
  }
  const keep = process.env.KEEP === "1";
  if (keep && demoRunning()) {
    process.stderr.write(`a demo lab already runs in ${DEMO_DIR}; stop it first: node e2e/dist/src/demo.js down\n`);
    return 1;
  }
  const demo = new Demo(keep);
  installSignalHandlers(demo);
  return runDemo(demo);
}

// Output piped into `head` and the like may close early; that is not an error of ours.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
});

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);

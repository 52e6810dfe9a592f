// pnpm bench:nio — 50 testbed machines, each with a NixosConfiguration on one commit, NIO as its own process.
// Phase 1 (instant stand-in applies): time to all Ready, git fetches, SSH sessions per apply, peak RSS.
// Phase 2 (1-second stand-in applies, triggered by a signed webhook): time to all on the new commit, compared with
// ceil(N / NIO_MAX_CONCURRENT_APPLIES) × 1 s. One `name: value` line per figure.
// The CPU figures of phase 2 say whose work the time was (NIO, the hosts: sshd plus the stand-ins, the control plane,
// this process, and other processes on the machine).
// BENCH_STANDIN=sleep replaces the hosts' nixos-rebuild stand-in by one that only sleeps (see standin.ts): what NIO's
// own overhead allows (a diagnostic, not the figure).
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  GitFixture,
  freePort,
  repoRoot,
  runChecked,
  startHosts,
  startTestbed,
  waitFor,
  type Fleet,
} from "@nio/testbed";
import { Informer, createKube, loadKubeConfig, type KubeObject } from "@nio/runtime";
import { machines, nixosConfigurations, secrets, type ConfigObject } from "../src/resources.js";
import { configurationNix, fleetFlake } from "../test/support/env.js";
import { cpuFigures, hostListeners, sampleCpu } from "./cpu.js";
import { sleepStandInTools } from "./standin.js";

const N = Number(process.env.BENCH_MACHINES ?? 50);
const MAX = Number(process.env.BENCH_MAX_CONCURRENT ?? 10);
const SECRET = "bench-webhook-secret";
const out = (name: string, value: string | number): void => console.log(`${name}: ${value}`);

const dir = await mkdtemp(join(tmpdir(), "bench-nio-"));
const names = Array.from({ length: N }, (_, i) => `m-${String(i + 1).padStart(3, "0")}`);
const sleepStandIn = process.env.BENCH_STANDIN === "sleep";
const tb = await startTestbed({ hosts: sleepStandIn ? [] : names });
let ownFleet: Fleet | undefined;
if (sleepStandIn) {
  const toolsDir = await sleepStandInTools(dir);
  ownFleet = await startHosts({ dir: tb.dir, names, operatorPublicKey: tb.operatorKey.publicKey, toolsDir });
}
const hosts = ownFleet?.hosts ?? tb.fleet.hosts;
const kube = createKube(loadKubeConfig(tb.controlPlane.kubeconfigPath));
let nio: ReturnType<typeof spawn> | undefined;
// Interrupted (Ctrl-C, a timeout): stop what was started instead of leaving the testbed running.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    nio?.kill("SIGTERM");
    void Promise.allSettled([ownFleet?.destroy(), tb.stop()]).finally(() => process.exit(130));
  });
}
const configs = new Informer<ConfigObject>(kube, nixosConfigurations, { namespace: "default", resyncMs: 0 });
try {
  await runChecked(tb.binaries.kubectl, [
    "--kubeconfig",
    tb.controlPlane.kubeconfigPath,
    "apply",
    "--server-side",
    "-f",
    join(repoRoot, "crds"),
  ]);
  await runChecked(tb.binaries.kubectl, [
    "--kubeconfig",
    tb.controlPlane.kubeconfigPath,
    "wait",
    "--for=condition=Established",
    "crd",
    "--all",
  ]);
  const repo = await GitFixture.create({ server: tb.git, repo: "fleet", workDir: join(dir, "fleet") });
  const v1 = await repo.commitAndPush({ "flake.nix": fleetFlake(), "configuration.nix": configurationNix("v1") }, "v1");
  await Promise.all(hosts.map((h) => h.setInstantApply(true)));
  const key = await readFile(tb.operatorKey.privateKeyPath);
  await kube.create(secrets, secretObj("ssh", { "ssh-privatekey": key }));

  const [metricsPort, webhookPort, healthPort] = await Promise.all([freePort(), freePort(), freePort()]);
  // BENCH_NIO_NODE_ARGS (diagnostics), e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  const nodeArgs = (process.env.BENCH_NIO_NODE_ARGS ?? "").split(" ").filter(Boolean);
  nio = spawn(process.execPath, [...nodeArgs, fileURLToPath(new URL("../src/main.js", import.meta.url))], {
    stdio: ["ignore", process.env.BENCH_DEBUG ? "inherit" : "ignore", "inherit"],
    env: {
      ...process.env,
      KUBECONFIG: tb.controlPlane.kubeconfigPath,
      METRICS_PORT: String(metricsPort),
      HEALTH_CHECK_PORT: String(healthPort),
      NIO_WEBHOOK_PORT: String(webhookPort),
      NIO_WEBHOOK_SECRET: SECRET,
      ENABLE_LEADER_ELECTION: "false",
      LOG_LEVEL: process.env.BENCH_DEBUG ? "debug" : "warn",
      NIO_BASE_CONFIG_PATH: join(dir, "nio"),
      NIO_CONFIG_RECONCILE_INTERVAL: "600",
      NIO_MAX_CONCURRENT_APPLIES: String(MAX),
    },
  });
  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return text
      .split("\n")
      .filter((l) => l.startsWith(name) && !l.startsWith("#"))
      .reduce((s, l) => s + Number(l.split(" ").pop()), 0);
  };
  let peakRss = 0;
  const sampler = setInterval(() => {
    metric("nio_process_resident_memory_bytes").then(
      (v) => (peakRss = Math.max(peakRss, v)),
      () => undefined,
    );
  }, 200);
  await waitFor(
    "nio /ready",
    async () => ((await fetch(`http://127.0.0.1:${healthPort}/ready`).catch(() => undefined))?.ok ? true : undefined),
    {
      timeoutMs: 30_000,
    },
  );

  // Watched, not polled: the bench adds no list requests to the API server's load and sees the last status at once.
  configs.start();
  await configs.waitForSync();
  const t0 = Date.now();
  await Promise.all(
    hosts.map(async (h) => {
      await kube.create(machines, {
        apiVersion: "nio.homystack.com/v1alpha1",
        kind: "Machine",
        metadata: { name: h.name, namespace: "default" },
        spec: { hostname: h.name, ipAddress: h.address, sshPort: h.port, sshKeySecretRef: { name: "ssh" } },
      } as KubeObject);
      await kube.create(nixosConfigurations, {
        apiVersion: "nio.homystack.com/v1alpha1",
        kind: "NixosConfiguration",
        metadata: { name: h.name, namespace: "default" },
        spec: { gitRepo: tb.git.repoUrl("fleet"), flake: ".#worker", machineRef: { name: h.name } },
      } as KubeObject);
    }),
  );
  await waitAllOn(configs, v1, 600_000);
  const readySeconds = (Date.now() - t0) / 1000;
  const ssh = await metric("nio_ssh_connections_total");
  const fetches = await metric("nio_git_clones_total");
  out("nio_machines", N);
  out("nio_time_to_all_ready_seconds", readySeconds.toFixed(2));
  out("nio_git_fetches", fetches);
  out(
    "nio_git_upload_pack_requests_seen_by_server",
    tb.gitServer?.countRequests({ service: "git-upload-pack", method: "POST" }) ?? "n/a",
  );
  out("nio_ssh_connections_total", ssh);
  out("nio_ssh_sessions_per_apply", ((ssh - N) / N).toFixed(2) + " (one more per machine for discovery)");

  await Promise.all(hosts.map((h) => h.setSlowApply(1)));
  const v2 = await repo.commitAndPush({ "configuration.nix": configurationNix("v2") }, "v2");
  const body = JSON.stringify({ repository: { clone_url: tb.git.repoUrl("fleet") } });
  const cpuPids = { nio: nio.pid, listeners: await hostListeners(hosts), controlPlane: tb.controlPlane.pids() };
  const cpu0 = await sampleCpu(cpuPids);
  const t1 = Date.now();
  const res = await fetch(`http://127.0.0.1:${webhookPort}/hooks/git`, {
    method: "POST",
    headers: { "X-Hub-Signature-256": `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}` },
    body,
  });
  if (res.status !== 202) throw new Error(`webhook answered ${res.status}`);
  await waitAllOn(configs, v2, 600_000);
  const slowSeconds = (Date.now() - t1) / 1000;
  await new Promise((r) => setTimeout(r, 500)); // the hosts' sshd reap their sessions
  const cpu1 = await sampleCpu(cpuPids);
  const lastRebuilds = await Promise.all(hosts.map(async (h) => (await h.rebuildRecords()).pop()));
  const firstStart = Math.min(...lastRebuilds.map((r) => Date.parse(r?.time ?? "") || Infinity));
  // What the stand-in itself took per run (its 1 s sleep plus its own work: bash, jq, sha256sum, ...).
  const standIn = lastRebuilds.map((r) => (r?.durationMs ?? 0) / 1000);
  const standInMean = standIn.reduce((a, b) => a + b, 0) / Math.max(1, standIn.length);
  const ideal = Math.ceil(N / MAX) * 1;
  if (process.env.BENCH_TIMELINE === "1") {
    // Diagnostics on stderr: when each stand-in ran, relative to the webhook (ms).
    const spans = lastRebuilds
      .map((r) => [Date.parse(r?.time ?? "") - t1, r?.durationMs ?? 0] as const)
      .sort((a, b) => a[0] - b[0]);
    for (const [start, ms] of spans) process.stderr.write(`standin ${start} +${ms} -> ${start + ms}\n`);
  }
  out("nio_max_concurrent_applies", MAX);
  out("nio_webhook_to_first_apply_start_ms", firstStart - t1);
  out("nio_time_to_all_applied_1s_applies_seconds", slowSeconds.toFixed(2));
  out("nio_ideal_1s_applies_seconds", ideal);
  out("nio_ratio_to_ideal", (slowSeconds / ideal).toFixed(2));
  out("nio_standin_duration_mean_seconds", standInMean.toFixed(2));
  out("nio_standin_duration_max_seconds", Math.max(...standIn).toFixed(2));
  out("nio_ratio_to_ideal_with_measured_standin", (slowSeconds / (Math.ceil(N / MAX) * standInMean)).toFixed(2));
  for (const [name, value] of cpuFigures("nio_1s_applies", cpu0, cpu1, N)) out(name, value);
  out("nio_peak_rss_mib", (peakRss / 1024 / 1024).toFixed(1));
  clearInterval(sampler);
  await repo.cleanup();
} finally {
  nio?.kill("SIGTERM");
  await configs.stop();
  kube.close();
  await ownFleet?.destroy();
  await tb.stop();
  await rm(dir, { recursive: true, force: true });
}

function secretObj(name: string, data: Record<string, Buffer | string>): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: "default" },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
  } as KubeObject;
}

/** Resolves once the informer shows all N configurations with status.appliedCommit = commit. */
function waitAllOn(informer: Informer<ConfigObject>, commit: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): boolean => {
      const items = informer.list();
      return items.length === N && items.every((c) => c.status?.appliedCommit === commit);
    };
    if (done()) return resolve();
    const timer = setTimeout(() => {
      finished = true;
      reject(new Error(`not all ${N} configurations on ${commit} within ${timeoutMs} ms`));
    }, timeoutMs);
    let finished = false;
    informer.on(() => {
      if (finished || !done()) return;
      finished = true;
      clearTimeout(timer);
      resolve();
    });
  });
}

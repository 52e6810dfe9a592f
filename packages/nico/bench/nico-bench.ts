// pnpm bench:nico — one KubernetesCluster of 3 + 100 nodes on 103 testbed hosts with instant stand-in applies; NIO
// runs as its own process, NICO in this process (its API requests are counted by its client).
// Figures: time until all 103 NixosConfigurations exist vs the time a bare client needs to create the same 103
// objects (copies of the ones NICO made: same specs, sizes, suspended as NICO first writes them) on the same API
// server in the same run, with NIO running and reacting to them as it does to NICO's, one by one and all at once
// (target ≤ 1.5×); the same with both operators stopped; time to Ready; API writes per node (target < 10). The
// configurations are counted from a plain watch (no informer; lists would wait for the API server's watch cache to
// catch up with the write burst, seconds late). One `name: value` line per figure.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { GitFixture, freePort, repoRoot, runChecked, startTestbed, waitFor } from "@nio/testbed";
import { createKube, loadKubeConfig, type Kube, type KubeObject } from "@nio/runtime";
import { createNico } from "../src/operator.js";
import {
  kubernetesClusters,
  machines,
  nixosConfigurations,
  secrets,
  type ClusterObject,
  type ConfigObject,
} from "../src/resources.js";
import { projectFlakeFiles } from "../test/support/env.js";

const CP = Number(process.env.BENCH_CONTROL_PLANE ?? 3);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 100);
const NODES = CP + WORKERS;
const out = (name: string, value: string | number): void => console.log(`${name}: ${value}`);
const WRITE_VERBS = ["create", "update", "patch", "delete"];
const writes = (counts: Readonly<Record<string, number>>): number =>
  WRITE_VERBS.reduce((sum, v) => sum + (counts[v] ?? 0), 0);

const dir = await mkdtemp(join(tmpdir(), "bench-nico-"));
const cpNames = Array.from({ length: CP }, (_, i) => `cp-${String(i + 1).padStart(3, "0")}`);
const workerNames = Array.from({ length: WORKERS }, (_, i) => `w-${String(i + 1).padStart(3, "0")}`);
const tb = await startTestbed({ hosts: [...cpNames, ...workerNames] });
const kube = createKube(loadKubeConfig(tb.controlPlane.kubeconfigPath));
let nio: ReturnType<typeof spawn> | undefined;
// Interrupted (Ctrl-C, a timeout): stop what was started instead of leaving the testbed running.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    nio?.kill("SIGTERM");
    void Promise.allSettled([nico?.stop()])
      .then(() => tb.stop())
      .finally(() => process.exit(130));
  });
}
let nico: ReturnType<typeof createNico> | undefined;
try {
  const kubectl = (args: string[]): Promise<string> =>
    runChecked(tb.binaries.kubectl, ["--kubeconfig", tb.controlPlane.kubeconfigPath, ...args]);
  await kubectl(["apply", "--server-side", "-f", join(repoRoot, "crds")]);
  await kubectl(["wait", "--for=condition=Established", "crd", "--all"]);
  await kubectl(["create", "namespace", "baseline"]);
  const repo = await GitFixture.create({ server: tb.git, repo: "cluster", workDir: join(dir, "repo") });
  await repo.commitAndPush(await projectFlakeFiles(), "initial");
  await Promise.all(tb.fleet.hosts.map((h) => h.setInstantApply(true, { k3s: true })));

  const key = await readFile(tb.operatorKey.privateKeyPath);
  await kube.create(secrets, {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "machine-ssh-key", namespace: "default" },
    data: { "ssh-privatekey": key.toString("base64") },
  } as KubeObject);
  const hostByName = new Map(tb.fleet.hosts.map((h) => [h.name, h]));
  await Promise.all(
    [...cpNames.map((n) => [n, "control-plane"]), ...workerNames.map((n) => [n, "worker"])].map(([name, role]) => {
      const h = hostByName.get(name ?? "");
      return kube.create(machines, {
        apiVersion: "nio.homystack.com/v1alpha1",
        kind: "Machine",
        metadata: { name, namespace: "default", labels: { role } },
        spec: {
          hostname: name,
          ipAddress: h?.address,
          sshPort: h?.port,
          sshKeySecretRef: { name: "machine-ssh-key" },
        },
      } as KubeObject);
    }),
  );

  const [metricsPort, healthPort] = await Promise.all([freePort(), freePort()]);
  nio = spawn(process.execPath, [join(repoRoot, "packages/nio/dist/src/main.js")], {
    stdio: ["ignore", "ignore", "inherit"],
    env: {
      ...process.env,
      KUBECONFIG: tb.controlPlane.kubeconfigPath,
      METRICS_PORT: String(metricsPort),
      HEALTH_CHECK_PORT: String(healthPort),
      NIO_WEBHOOK_PORT: "0",
      ENABLE_LEADER_ELECTION: "false",
      LOG_LEVEL: "warn",
      NIO_BASE_CONFIG_PATH: join(dir, "nio"),
      NIO_KNOWN_HOSTS_PATH: join(dir, "known_hosts"),
      NIO_CONFIG_RECONCILE_INTERVAL: "600",
    },
  });
  await waitFor(
    "nio /ready",
    async () => ((await fetch(`http://127.0.0.1:${healthPort}/ready`).catch(() => undefined))?.ok ? true : undefined),
    { timeoutMs: 30_000 },
  );
  // Let NIO discover the machines first (host keys recorded), so the figures are NICO's fan-out and the applies.
  await waitFor(
    "machines discovered",
    async () => {
      const list = await kube.list<KubeObject & { status?: { sshHostKey?: string } }>(machines, {
        namespace: "default",
      });
      return list.items.every((m) => m.status?.sshHostKey) ? true : undefined;
    },
    { timeoutMs: 300_000, intervalMs: 250 },
  );

  nico = createNico({
    kubeconfigPath: tb.controlPlane.kubeconfigPath,
    logger: pino({ level: process.env.BENCH_DEBUG ? "debug" : "warn" }),
    env: { METRICS_PORT: "0", HEALTH_CHECK_PORT: "0", BIND_ADDRESS: "127.0.0.1", ENABLE_LEADER_ELECTION: "false" },
  });
  await nico.start();
  const since = (await kube.list(nixosConfigurations, { namespace: "default", limit: 1 })).metadata.resourceVersion;
  const allExist = countCreations(kube, NODES, since ?? "");
  const writesBefore = writes(nico.manager.kube.requestCounts());
  const t0 = Date.now();
  await kube.create(kubernetesClusters, {
    apiVersion: "nico.homystack.com/v1alpha1",
    kind: "KubernetesCluster",
    metadata: { name: "bench", namespace: "default" },
    spec: {
      gitRepo: tb.git.repoUrl("cluster"),
      configurationSubdir: "nix",
      controlPlane: { machineSelector: { matchLabels: { role: "control-plane" } }, count: CP },
      dataPlane: { machineSelector: { matchLabels: { role: "worker" } }, count: WORKERS },
      rollout: { maxUnavailable: 10 },
    },
  } as KubeObject);
  const fanOutSeconds = ((await allExist) - t0) / 1000;
  const ready = await waitFor(
    "cluster Ready",
    async () => {
      const c = await kube.get<ClusterObject>(kubernetesClusters, { namespace: "default", name: "bench" });
      return c.status?.phase === "Ready" ? c : undefined;
    },
    { timeoutMs: 900_000, intervalMs: 250 },
  );
  const readySeconds = (Date.now() - t0) / 1000;
  const claims = { claimed: 0, conflict: 0 };
  for (const v of (await nico.metrics.machineClaims.get()).values) {
    if (v.labels.result === "claimed" || v.labels.result === "conflict") claims[v.labels.result] += v.value;
  }
  const nicoWrites = writes(nico.manager.kube.requestCounts()) - writesBefore;
  const nioWrites = await nioApiWrites(metricsPort);
  // The baseline, once the cluster is Ready and NICO is stopped: a bare client creates copies of the 103 objects NICO
  // made, one by one and all at once, then removes them; first with NIO running (as during NICO's fan-out: NIO adds
  // its finalizer and status to each new configuration), then with NIO stopped too.
  const made = (await kube.list<ConfigObject>(nixosConfigurations, { namespace: "default" })).items;
  await nico.stop();
  nico = undefined;
  const baselineSequential = await createBaseline(kube, made, false);
  const baselineParallel = await createBaseline(kube, made, true);
  const nioExited = new Promise((r) => nio?.once("exit", r));
  nio.kill("SIGTERM");
  await nioExited;
  const quietSequential = await createBaseline(kube, made, false);
  const quietParallel = await createBaseline(kube, made, true);
  out("nico_nodes", NODES);
  out("nico_baseline_nio_running_sequential_seconds", baselineSequential.toFixed(3));
  out("nico_baseline_nio_running_parallel_seconds", baselineParallel.toFixed(3));
  out("nico_time_to_all_configurations_seconds", fanOutSeconds.toFixed(3));
  out("nico_fan_out_ratio_to_sequential_client", (fanOutSeconds / baselineSequential).toFixed(2));
  out("nico_fan_out_ratio_to_parallel_client", (fanOutSeconds / baselineParallel).toFixed(2));
  out("nico_baseline_operators_stopped_sequential_seconds", quietSequential.toFixed(3));
  out("nico_baseline_operators_stopped_parallel_seconds", quietParallel.toFixed(3));
  out("nico_fan_out_ratio_to_sequential_client_operators_stopped", (fanOutSeconds / quietSequential).toFixed(2));
  out("nico_time_to_ready_seconds", readySeconds.toFixed(2));
  out("nico_cluster_phase", ready.status?.phase ?? "?");
  out("nico_api_writes_per_node", (nicoWrites / NODES).toFixed(2));
  out("nico_machine_claims", claims.claimed);
  out("nico_machine_claim_conflicts", claims.conflict);
  out("nio_api_writes_per_node", (nioWrites / NODES).toFixed(2) + " (incl. Machine discovery)");
  const firstApply = async (name: string): Promise<number> => {
    const recs = (await hostByName.get(name)?.rebuildRecords()) ?? [];
    const ok = recs.find((r) => r.result === "success");
    return ok ? (Date.parse(ok.time) + ok.durationMs - t0) / 1000 : NaN;
  };
  const cpDone = await Promise.all(cpNames.map(firstApply));
  const workersDone = await Promise.all(workerNames.map(firstApply));
  out("nico_first_control_plane_applied_seconds", (cpDone[0] ?? NaN).toFixed(2));
  out("nico_control_plane_applied_seconds", Math.max(...cpDone).toFixed(2));
  out("nico_first_worker_applied_seconds", Math.min(...workersDone).toFixed(2));
  out("nico_all_workers_applied_seconds", Math.max(...workersDone).toFixed(2));
  out("nico_peak_rss_mib", (process.memoryUsage().rss / 1024 / 1024).toFixed(1) + " (bench process, NICO in-process)");
  await repo.cleanup();
} finally {
  await nico?.stop();
  nio?.kill("SIGTERM");
  kube.close();
  await tb.stop();
  await rm(dir, { recursive: true, force: true });
}

/** Resolves with the time the `count`-th NixosConfiguration created after `resourceVersion` shows in namespace default. */
async function countCreations(client: Kube, count: number, resourceVersion: string): Promise<number> {
  const seen = new Set<string>();
  const stop = new AbortController();
  try {
    for await (const ev of client.watch(
      nixosConfigurations,
      { namespace: "default", resourceVersion, timeoutSeconds: 600 },
      stop.signal,
    )) {
      if (ev.type === "ADDED") seen.add(ev.object.metadata.name ?? "");
      if (seen.size >= count) return Date.now();
    }
  } finally {
    stop.abort();
  }
  throw new Error(`the watch ended after ${seen.size} of ${count} configurations`);
}

/** A bare client creating copies of `made` (same spec, labels and annotations) in namespace baseline. */
async function createBaseline(client: Kube, made: readonly ConfigObject[], parallel: boolean): Promise<number> {
  const copies = made.map(
    (c) =>
      ({
        apiVersion: c.apiVersion,
        kind: c.kind,
        metadata: {
          name: c.metadata.name,
          namespace: "baseline",
          labels: c.metadata.labels,
          annotations: c.metadata.annotations,
        },
        spec: { ...c.spec, suspend: true },
      }) as KubeObject,
  );
  const t = Date.now();
  if (parallel) {
    await Promise.all(copies.map((c) => client.create(nixosConfigurations, c)));
  } else {
    for (const c of copies) await client.create(nixosConfigurations, c);
  }
  const seconds = (Date.now() - t) / 1000;
  await runChecked(tb.binaries.kubectl, [
    "--kubeconfig",
    tb.controlPlane.kubeconfigPath,
    "delete",
    "nixosconfigurations",
    "--all",
    "-n",
    "baseline",
    "--wait=true",
  ]);
  return seconds;
}

async function nioApiWrites(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^nio_api_requests_total\{([^}]*)\} (\d+(?:\.\d+)?)/.exec(line);
    if (m && WRITE_VERBS.some((v) => m[1]?.includes(`verb="${v}"`))) sum += Number(m[2]);
  }
  return sum;
}

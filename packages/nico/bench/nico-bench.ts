// pnpm bench:nico — one KubernetesCluster of 3 + 100 nodes on 103 testbed hosts with instant stand-in applies; NIO
// runs as its own process, NICO in this process (its API requests are counted by its client).
// Figures: time until all 103 NixosConfigurations exist vs the time a bare client needs to create the same 103
// objects (copies of the ones NICO made: same specs, sizes, suspended as NICO first writes them) on the same API
// server in the same run, with NIO running and reacting to them as it does to NICO's, one by one (the target, ≤ 1.5×)
// and all at once (NICO cannot match that: each configuration waits for its Machine's claim, a second write); the
// same with both operators stopped; time to Ready; API writes per node (target < 10).
// "Exist" is measured the same way on both sides: the write that created the last object was acknowledged (NICO's
// server-side apply answered 201, the bare client's create returned). The `_watched_` figures are when a plain watch
// saw them all, for both sides: during NICO's burst (plus NIO's two writes per new configuration) the API server's
// watch delivery lags the writes by seconds and may close watches that fall behind (counted).
// One `name: value` line per figure.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { GitFixture, freePort, repoRoot, runChecked, sleep, startTestbed, waitFor } from "@nio/testbed";
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
  // BENCH_NIO_NODE_ARGS (diagnostics), e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  const nodeArgs = (process.env.BENCH_NIO_NODE_ARGS ?? "").split(" ").filter(Boolean);
  nio = spawn(process.execPath, [...nodeArgs, join(repoRoot, "packages/nio/dist/src/main.js")], {
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
  const nicoCreated = settledLater(configurationCreationsAcknowledged(nico.manager.kube, NODES));
  const watched = settledLater(countCreations(kube, "default", NODES, await currentResourceVersion(kube, "default")));
  const writesBefore = writes(nico.manager.kube.requestCounts());
  const closedWatchesBefore = await closedConfigurationWatches();
  const t0 = Date.now();
  if (process.env.BENCH_DEBUG) console.error(`bench t0 ${t0}`);
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
  const fanOut = { acked: ((await nicoCreated) - t0) / 1000, watched: ((await watched) - t0) / 1000 };
  const closedWatches = (await closedConfigurationWatches()) - closedWatchesBefore;
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
  const ratio = (a: number, b: number): string => (a / b).toFixed(2);
  out("nico_nodes", NODES);
  out("nico_time_to_all_configurations_seconds", fanOut.acked.toFixed(3));
  out("nico_baseline_nio_running_sequential_seconds", baselineSequential.acked.toFixed(3));
  out("nico_baseline_nio_running_parallel_seconds", baselineParallel.acked.toFixed(3));
  out("nico_fan_out_ratio_to_sequential_client", ratio(fanOut.acked, baselineSequential.acked));
  out("nico_fan_out_ratio_to_parallel_client", ratio(fanOut.acked, baselineParallel.acked));
  out("nico_time_to_all_configurations_watched_seconds", fanOut.watched.toFixed(3));
  out("nico_baseline_nio_running_sequential_watched_seconds", baselineSequential.watched.toFixed(3));
  out("nico_baseline_nio_running_parallel_watched_seconds", baselineParallel.watched.toFixed(3));
  out("nico_fan_out_watched_ratio_to_sequential_client", ratio(fanOut.watched, baselineSequential.watched));
  out("nico_fan_out_watches_closed_by_api_server", closedWatches);
  out("nico_baseline_operators_stopped_sequential_seconds", quietSequential.acked.toFixed(3));
  out("nico_baseline_operators_stopped_parallel_seconds", quietParallel.acked.toFixed(3));
  out("nico_fan_out_ratio_to_sequential_client_operators_stopped", ratio(fanOut.acked, quietSequential.acked));
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
  // BENCH_KEEP_LOGS=DIR keeps the control plane's logs (kube-apiserver, etcd) for a look at a slow or failed run.
  if (process.env.BENCH_KEEP_LOGS) {
    await cp(join(tb.dir, "control-plane", "logs"), process.env.BENCH_KEEP_LOGS, { recursive: true }).catch(
      (err: unknown) => console.error(`BENCH_KEEP_LOGS: ${String(err)}`),
    );
  }
  await tb.stop();
  await rm(dir, { recursive: true, force: true });
}

/**
 * `p`, marked as handled now: it is awaited later, and a rejection meanwhile must reach that await (and the `finally`
 * that stops the testbed) instead of ending the process as an unhandled rejection.
 */
function settledLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/**
 * Resolves with the time NICO's client got the `count`-th "201 Created" for a server-side apply of a
 * NixosConfiguration: the moment the last of them exists (persisted, readable), as a bare client's create returning.
 */
function configurationCreationsAcknowledged(client: Kube, count: number): Promise<number> {
  const created = new Set<string>();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`NICO created ${created.size} of ${count} configurations in ten minutes`)),
      600_000,
    );
    timer.unref();
    client.onRequest((verb, code, path) => {
      const m = /\/nixosconfigurations\/([^/?]+)$/.exec(path.split("?")[0] ?? "");
      if (verb !== "patch" || code !== 201 || !m?.[1] || created.size >= count) return;
      created.add(m[1]);
      if (created.size < count) return;
      clearTimeout(timer);
      resolve(Date.now());
    });
  });
}

async function currentResourceVersion(client: Kube, namespace: string): Promise<string> {
  return (await client.list(nixosConfigurations, { namespace, limit: 1 })).metadata.resourceVersion ?? "";
}

/**
 * Resolves with the time a plain watch (no informer) has seen `count` NixosConfigurations created in `namespace`
 * after `resourceVersion`. Under a write burst the API server's watch delivery lags the writes by seconds (and it may
 * end a watch early: the count goes on from the last event seen). Rejects after ten minutes or when `signal` aborts.
 */
async function countCreations(
  client: Kube,
  namespace: string,
  count: number,
  resourceVersion: string,
  signal?: AbortSignal,
): Promise<number> {
  const seen = new Set<string>();
  let from = resourceVersion;
  const deadline = Date.now() + 600_000;
  for (let left = deadline - Date.now(); left > 0 && !signal?.aborted; left = deadline - Date.now()) {
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const opts = { namespace, resourceVersion: from, timeoutSeconds: Math.max(1, Math.ceil(left / 1000)) };
      for await (const ev of client.watch(nixosConfigurations, opts, stop.signal)) {
        from = ev.object.metadata.resourceVersion ?? from;
        if (ev.type === "ADDED") seen.add(ev.object.metadata.name ?? "");
        if (seen.size >= count) return Date.now();
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      stop.abort();
    }
    await sleep(100); // the server ended the watch: resume, without spinning if it keeps doing so at once
  }
  throw new Error(`a watch saw ${seen.size} of ${count} configurations being created (ten minutes, or stopped)`);
}

/**
 * A bare client creating copies of `made` (same spec, labels and annotations) in namespace baseline, one by one or
 * all at once: seconds until the last create returned, and until a watch saw them all.
 */
async function createBaseline(
  client: Kube,
  made: readonly ConfigObject[],
  parallel: boolean,
): Promise<{ acked: number; watched: number }> {
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
  const stopWatching = new AbortController();
  const rv = await currentResourceVersion(client, "baseline");
  const watched = settledLater(countCreations(client, "baseline", copies.length, rv, stopWatching.signal));
  const t = Date.now();
  try {
    if (parallel) {
      await Promise.all(copies.map((c) => client.create(nixosConfigurations, c)));
    } else {
      for (const c of copies) await client.create(nixosConfigurations, c);
    }
  } catch (err) {
    stopWatching.abort();
    throw err;
  }
  const acked = (Date.now() - t) / 1000;
  const seen = ((await watched) - t) / 1000;
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
  return { acked, watched: seen };
}

/**
 * NixosConfiguration watches the API server closed because their client fell behind (it does that to a watcher whose
 * buffer, at least 10 events, stays full; informers then resume from their last resourceVersion).
 */
async function closedConfigurationWatches(): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    const req = httpsRequest(
      `${tb.controlPlane.server}/metrics`,
      {
        ca: readFileSync(tb.controlPlane.caCertFile),
        headers: { Authorization: `Bearer ${tb.controlPlane.adminToken}` },
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET /metrics of the API server: HTTP ${res.statusCode}`));
          return;
        }
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
        res.on("error", reject);
      },
    );
    req.once("error", reject);
    req.end();
  });
  const m = /^apiserver_terminated_watchers_total\{[^}]*resource="nixosconfigurations"[^}]*\} (\d+)/m.exec(text);
  return Number(m?.[1] ?? 0);
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

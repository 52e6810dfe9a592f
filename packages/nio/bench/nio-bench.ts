// pnpm bench:nio — 50 testbed machines, each with a NixosConfiguration on one commit, NIO as its own process.
// Phase 1 (instant stand-in applies): time to all Ready, git fetches, SSH sessions per apply, peak RSS.
// Phase 2 (1-second stand-in applies, triggered by a signed webhook): time to all on the new commit, compared with
// ceil(N / NIO_MAX_CONCURRENT_APPLIES) × 1 s. One `name: value` line per figure.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GitFixture, freePort, repoRoot, runChecked, startTestbed, waitFor } from "@nio/testbed";
import { createKube, loadKubeConfig, type KubeObject } from "@nio/runtime";
import { machines, nixosConfigurations, secrets, type ConfigObject } from "../src/resources.js";
import { configurationNix, fleetFlake } from "../test/support/env.js";

const N = Number(process.env.BENCH_MACHINES ?? 50);
const MAX = Number(process.env.BENCH_MAX_CONCURRENT ?? 10);
const SECRET = "bench-webhook-secret";
const out = (name: string, value: string | number): void => console.log(`${name}: ${value}`);

const dir = await mkdtemp(join(tmpdir(), "bench-nio-"));
const names = Array.from({ length: N }, (_, i) => `m-${String(i + 1).padStart(3, "0")}`);
const tb = await startTestbed({ hosts: names });
const kube = createKube(loadKubeConfig(tb.controlPlane.kubeconfigPath));
let nio: ReturnType<typeof spawn> | undefined;
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
  await Promise.all(tb.fleet.hosts.map((h) => h.setInstantApply(true)));
  const key = await readFile(tb.operatorKey.privateKeyPath);
  await kube.create(secrets, secretObj("ssh", { "ssh-privatekey": key }));

  const [metricsPort, webhookPort, healthPort] = await Promise.all([freePort(), freePort(), freePort()]);
  nio = spawn(process.execPath, [fileURLToPath(new URL("../src/main.js", import.meta.url))], {
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

  const t0 = Date.now();
  await Promise.all(
    tb.fleet.hosts.map(async (h) => {
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
  const allOn = (commit: string) => async (): Promise<true | undefined> => {
    const list = await kube.list<ConfigObject>(nixosConfigurations, { namespace: "default" });
    return list.items.length === N && list.items.every((c) => c.status?.appliedCommit === commit) ? true : undefined;
  };
  await waitFor("all Ready", allOn(v1), { timeoutMs: 600_000, intervalMs: 200 });
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

  await Promise.all(tb.fleet.hosts.map((h) => h.setSlowApply(1)));
  const v2 = await repo.commitAndPush({ "configuration.nix": configurationNix("v2") }, "v2");
  const body = JSON.stringify({ repository: { clone_url: tb.git.repoUrl("fleet") } });
  const t1 = Date.now();
  const res = await fetch(`http://127.0.0.1:${webhookPort}/hooks/git`, {
    method: "POST",
    headers: { "X-Hub-Signature-256": `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}` },
    body,
  });
  if (res.status !== 202) throw new Error(`webhook answered ${res.status}`);
  await waitFor("all on v2", allOn(v2), { timeoutMs: 600_000, intervalMs: 100 });
  const slowSeconds = (Date.now() - t1) / 1000;
  const firstStart = Math.min(
    ...(await Promise.all(
      tb.fleet.hosts.map(async (h) => Date.parse((await h.rebuildRecords()).pop()?.time ?? "") || Infinity),
    )),
  );
  const ideal = Math.ceil(N / MAX) * 1;
  out("nio_max_concurrent_applies", MAX);
  out("nio_webhook_to_first_apply_start_ms", firstStart - t1);
  out("nio_time_to_all_applied_1s_applies_seconds", slowSeconds.toFixed(2));
  out("nio_ideal_1s_applies_seconds", ideal);
  out("nio_ratio_to_ideal", (slowSeconds / ideal).toFixed(2));
  out("nio_peak_rss_mib", (peakRss / 1024 / 1024).toFixed(1));
  clearInterval(sampler);
  await repo.cleanup();
} finally {
  nio?.kill("SIGTERM");
  kube.close();
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

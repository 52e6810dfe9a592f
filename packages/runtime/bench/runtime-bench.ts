// pnpm bench:runtime — creates N ConfigMaps on the testbed's real API server, then starts a no-op controller in
// its own process and prints how fast it reconciles them all. One `name: value` line per figure.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { controlPlaneBinaries, startControlPlane } from "@nio/testbed";
import { createKube } from "../src/kube/client.js";
import { loadKubeConfig } from "../src/kube/config.js";

const count = Number(process.env.BENCH_OBJECTS ?? 10_000);
const namespace = "bench";
const dir = await mkdtemp(join(tmpdir(), "bench-runtime-"));
const cp = await startControlPlane({ dir, binaries: await controlPlaneBinaries() });
const kube = createKube(loadKubeConfig(cp.kubeconfigPath), { maxSockets: 64 });
try {
  await kube.create(
    { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false },
    { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } },
  );
  const createStart = Date.now();
  let next = 0;
  const creator = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await kube.create({ group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true }, {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: `obj-${i}`, namespace },
        data: { i: String(i) },
      } as never);
    }
  };
  await Promise.all(Array.from({ length: 48 }, creator));
  const createSeconds = (Date.now() - createStart) / 1000;

  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL("./noop-controller.js", import.meta.url)), cp.kubeconfigPath, namespace, String(count)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once("exit", r));
  if (code !== 0) throw new Error(`controller process exited ${code}`);
  const result = JSON.parse(out.trim().split("\n")[0] ?? "{}") as {
    seconds: number;
    reconciles: number;
    requests: number;
    maxRssKiB: number;
  };
  const lines = [
    ["runtime_objects", count],
    ["runtime_create_seconds", createSeconds.toFixed(2)],
    ["runtime_reconcile_all_seconds", result.seconds.toFixed(2)],
    ["runtime_reconciles", result.reconciles],
    ["runtime_objects_per_second", (count / result.seconds).toFixed(0)],
    ["runtime_api_requests", result.requests],
    ["runtime_peak_rss_mib", (result.maxRssKiB / 1024).toFixed(1)],
  ];
  for (const [name, value] of lines) console.log(`${name}: ${value}`);
} finally {
  kube.close();
  await cp.stop();
  await rm(dir, { recursive: true, force: true });
}

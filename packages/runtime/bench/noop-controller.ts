// The benchmark's operator process: a no-op controller over ConfigMaps in one namespace. It reports, as one JSON
// line on stdout, how long it took to reconcile `expect` distinct objects and what that cost.
import pino from "pino";
import { createController } from "../src/controller.js";
import { Informer } from "../src/informer.js";
import { createKube } from "../src/kube/client.js";
import { loadKubeConfig } from "../src/kube/config.js";
import type { KubeObject } from "../src/kube/types.js";

const [kubeconfig, namespace, expectArg] = process.argv.slice(2);
const expected = Number(expectArg);
const kube = createKube(loadKubeConfig(kubeconfig));
const logger = pino({ level: "warn" });
const informer = new Informer<KubeObject>(
  kube,
  { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true },
  { namespace, logger },
);
const done = new Set<string>();
let reconciles = 0;
const started = process.hrtime.bigint();
let finish: () => void = () => undefined;
const allDone = new Promise<void>((r) => (finish = r));

const controller = createController({
  name: "noop",
  for: informer,
  concurrency: 4,
  logger,
  reconcile: async (key) => {
    reconciles++;
    done.add(key.name);
    if (done.size === expected) finish();
  },
});
informer.on(() => undefined);
informer.start();
await informer.waitForSync();
controller.start();
await allDone;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const requests = Object.values(kube.requestCounts()).reduce((a, b) => a + b, 0);
process.stdout.write(
  JSON.stringify({ seconds, reconciles, requests, maxRssKiB: process.resourceUsage().maxRSS }) + "\n",
);
await controller.stop(1000);
await informer.stop();
kube.close();

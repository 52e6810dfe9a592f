import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { runChecked } from "../util/process.js";
import { testbedPackageDir } from "../util/paths.js";

export interface ControlPlaneBinaries {
  etcd: string;
  kubeApiserver: string;
  kubectl: string;
}

/**
 * Builds (first run only) and returns the control-plane binaries. The build script caches them by version in the
 * user's cache dir; with a warm cache this only checks that the files exist.
 */
export async function controlPlaneBinaries(): Promise<ControlPlaneBinaries> {
  const script = join(testbedPackageDir, "scripts", "build-binaries.sh");
  const dir = (await runChecked("bash", [script])).trim().split("\n").pop() ?? "";
  const bins = { etcd: join(dir, "etcd"), kubeApiserver: join(dir, "kube-apiserver"), kubectl: join(dir, "kubectl") };
  await Promise.all(Object.values(bins).map((b) => access(b, constants.X_OK)));
  return bins;
}

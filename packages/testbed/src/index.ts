export { controlPlaneBinaries, type ControlPlaneBinaries } from "./control-plane/binaries.js";
export {
  startControlPlane,
  bindClusterRole,
  type ControlPlane,
  type ControlPlaneOptions,
} from "./control-plane/control-plane.js";
export { waitFor, sleep, run, runChecked, isAlive, type RunResult } from "./util/process.js";
export { freePort } from "./util/net.js";
export { repoRoot, cacheDir } from "./util/paths.js";

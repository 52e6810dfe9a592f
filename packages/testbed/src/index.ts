export { controlPlaneBinaries, type ControlPlaneBinaries } from "./control-plane/binaries.js";
export {
  startControlPlane,
  bindClusterRole,
  type ControlPlane,
  type ControlPlaneOptions,
} from "./control-plane/control-plane.js";
export { waitFor, sleep, run, runChecked, isAlive, runningProcesses, type RunResult } from "./util/process.js";
export { freePort } from "./util/net.js";
export { repoRoot, cacheDir } from "./util/paths.js";
export { startTestbed, envFile, type Testbed, type TestbedOptions, type TestbedGit } from "./testbed.js";
export * from "./hosts/index.js";
export {
  startGitServer,
  createBareRepo,
  readGitRequestLog,
  type GitServer,
  type GitRequestRecord,
} from "./git-server.js";
export { GitFixture, readTreeFiles } from "./git-fixture.js";
export * from "./nix.js";

export { startHosts, openHosts, hostAddress, type Fleet, type StartHostsOptions } from "./fleet.js";
export {
  SimulatedHost,
  testbedDir,
  type Host,
  type HostOptions,
  type HostUser,
  type FailingApply,
  type FileStat,
} from "./host.js";
export type {
  RebuildRecord,
  ReinstallRecord,
  ToolRecord,
  AnywhereRecord,
  FlakeFile,
  RebuildAction,
} from "./records.js";
export { readJsonLines } from "./records.js";
export { scanHostKey } from "./probe.js";

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
  ActivationRecord,
  K3sRecord,
  KeepalivedRecord,
  RebuildRecord,
  ReinstallRecord,
  ToolRecord,
  AnywhereRecord,
  FlakeFile,
  RebuildAction,
} from "./records.js";
export { readJsonLines } from "./records.js";
export { scanHostKey } from "./probe.js";
export { hostExec, hostExecChecked, type HostExecOptions, type HostExecResult } from "./exec.js";

export { createNio, type Nio, type NioOptions } from "./operator.js";
export { loadNioConfig, type NioConfig } from "./config.js";
export { createNioMetrics, type NioMetrics } from "./metrics.js";
export { verifySignature } from "./webhook.js";
export * as ssh from "./ssh/index.js";
export { machineAddress, expectedHostKey, usesSudo, machineTarget } from "./machine-access.js";
export { machines, nixosConfigurations, secrets } from "./resources.js";
export type { MachineObject, ConfigObject, SecretObject } from "./resources.js";
export * as git from "./git/index.js";

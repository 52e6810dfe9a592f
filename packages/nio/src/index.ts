export { createNio, type Nio, type NioOptions } from "./operator.js";
export { loadNioConfig, type NioConfig } from "./config.js";
export { createNioMetrics, type NioMetrics } from "./metrics.js";
export { verifySignature } from "./webhook.js";

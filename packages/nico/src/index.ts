export { createNico, type Nico, type NicoOptions } from "./operator.js";
export { loadNicoConfig, type NicoConfig } from "./config.js";
export { createNicoMetrics, type NicoMetrics } from "./metrics.js";
export { planSelection, type SelectionPlan } from "./selection/select.js";
export { planRollout, type RolloutDecision, type RolloutNode } from "./rollout.js";
export { names, kubernetesClusters } from "./resources.js";

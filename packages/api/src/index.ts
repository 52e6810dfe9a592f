export * from "./names.js";
export * from "./conditions.js";
export { type Condition, type ObjectMeta, type OwnerReference, type Resource, conditionSchema } from "./common.js";
export * from "./machine.js";
export * from "./nixosconfiguration.js";
export * from "./kubernetescluster.js";
export { applyDefaults, validate, formatValidationErrors, type ValidationError } from "./validate.js";
export * from "./validators.js";
export { isIP, ipFamily, parseIp, type ParsedIp } from "./net.js";
export * as formats from "./formats.js";
export {
  type Infer,
  type InferObject,
  type Mode,
  type Node,
  type Rule,
  type RuleReason,
  walkSchema,
} from "./schema.js";
export { toOpenApi, type JSONSchemaProps, type ValidationRule } from "./openapi.js";
export {
  CRDS,
  CRD_FILE_HEADER,
  machineCrd,
  nixosConfigurationCrd,
  kubernetesClusterCrd,
  renderCrdFiles,
  type CrdFile,
  type CustomResourceDefinition,
  type PrinterColumn,
} from "./crds.js";

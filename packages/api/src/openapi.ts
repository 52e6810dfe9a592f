/** Emits a schema node as a structural OpenAPI v3 schema (a CRD's `openAPIV3Schema`). */
import type { Node, Rule } from "./schema.js";

export interface ValidationRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: string;
}

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps the generator emits. */
export interface JSONSchemaProps {
  description?: string;
  type?: "object" | "array" | "string" | "integer" | "boolean";
  format?: string;
  enum?: string[];
  default?: unknown;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  items?: JSONSchemaProps;
  minItems?: number;
  maxItems?: number;
  properties?: Record<string, JSONSchemaProps>;
  required?: string[];
  additionalProperties?: JSONSchemaProps;
  maxProperties?: number;
  "x-kubernetes-list-type"?: string;
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-validations"?: ValidationRule[];
}

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function validations(rules: readonly Rule<never>[] | undefined): ValidationRule[] | undefined {
  if (!rules || rules.length === 0) return undefined;
  return rules.map((r) => defined({ rule: r.rule, message: r.message, fieldPath: r.fieldPath, reason: r.reason }));
}

/** The node's description, with its scalar default appended so that `kubectl explain` shows it. */
function describe(node: Node): string {
  const d = "default" in node ? node.default : undefined;
  if (d === undefined || typeof d === "object") return node.description;
  return `${node.description} Default: ${typeof d === "string" ? JSON.stringify(d) : String(d)}.`;
}

export function toOpenApi(node: Node): JSONSchemaProps {
  const base = { description: describe(node) };
  const rules = validations(node.rules);
  switch (node.kind) {
    case "string":
      return defined({
        ...base,
        type: "string",
        format: node.format,
        enum: node.enum ? [...node.enum] : undefined,
        default: node.default,
        pattern: node.pattern,
        minLength: node.minLength,
        maxLength: node.maxLength,
        "x-kubernetes-validations": rules,
      });
    case "integer":
      return defined({
        ...base,
        type: "integer",
        format: node.format,
        default: node.default,
        minimum: node.minimum,
        maximum: node.maximum,
        "x-kubernetes-validations": rules,
      });
    case "boolean":
      return defined({ ...base, type: "boolean", default: node.default });
    case "array":
      return defined({
        ...base,
        type: "array",
        items: toOpenApi(node.items),
        minItems: node.minItems,
        maxItems: node.maxItems,
        "x-kubernetes-list-type": node.listType,
        "x-kubernetes-list-map-keys": node.listMapKeys ? [...node.listMapKeys] : undefined,
        "x-kubernetes-validations": rules,
      });
    case "map":
      return defined({
        ...base,
        type: "object",
        additionalProperties: toOpenApi(node.values),
        maxProperties: node.maxProperties,
        "x-kubernetes-validations": rules,
      });
    case "object":
      return defined({
        ...base,
        type: "object",
        default: node.default ? {} : undefined,
        properties: Object.fromEntries(Object.entries(node.properties).map(([k, v]) => [k, toOpenApi(v)])),
        required: node.required.length > 0 ? [...node.required] : undefined,
        "x-kubernetes-validations": rules,
      });
    case "opaque":
      // The API server allows nothing but type and constraints on name/generateName here (not even a description).
      return defined({
        type: "object",
        properties: node.properties
          ? Object.fromEntries(Object.entries(node.properties).map(([k, v]) => [k, toOpenApi(v)]))
          : undefined,
      });
  }
}

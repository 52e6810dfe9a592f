/**
 * The runtime validator: the same checks as the API server, derived from the same schema nodes.
 *
 * Like the API server it (1) drops null fields and applies defaults, (2) runs the structural checks (type, required,
 * enum, bounds, patterns, list uniqueness) and (3) runs the CEL rules' TypeScript twins, but only when step 2 found
 * no "blocking" error (type, required, enum, maxLength, maxItems, maxProperties): the API server skips CEL rules then.
 * Unlike the API server it reports unknown fields (the API server prunes them, or refuses them with
 * fieldValidation=Strict).
 */
import { patternRegExp } from "./formats.js";
import type { ArrayNode, IntegerNode, MapNode, Node, ObjectNode, OpaqueNode, Rule, StringNode } from "./schema.js";

export interface ValidationError {
  /** The offending field, e.g. "spec.additionalFiles[1].path". */
  field: string;
  /** The rule broken: a CEL rule's or pattern's name, or required, type, enum, maxLength, maximum, ... */
  rule: string;
  /** "<field>: <what it must be>", e.g. "spec.configurationSubdir: must not contain '.' or '..' segments". */
  message: string;
}

const BLOCKING = new Set(["required", "type", "enum", "maxLength", "maxItems", "maxProperties"]);

interface Collector {
  readonly errors: ValidationError[];
  blocked: boolean;
}

function report(c: Collector, field: string, rule: string, message: string): void {
  c.errors.push({ field, rule, message: `${field}: ${message}` });
  if (BLOCKING.has(rule)) c.blocked = true;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function child(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function nodeDefault(node: Node): unknown {
  return "default" in node ? node.default : undefined;
}

/**
 * Returns a copy of `value` with null fields dropped and the schema's defaults applied, as the API server stores it.
 * Values of the wrong type are returned unchanged (validation reports them).
 */
export function applyDefaults(node: Node, value: unknown): unknown {
  if (node.kind === "array") return Array.isArray(value) ? value.map((v) => applyDefaults(node.items, v)) : value;
  if (node.kind === "map") {
    if (!isPlainObject(value)) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, applyDefaults(node.values, v)]));
  }
  if (node.kind === "object" && isPlainObject(value)) return defaultObject(node, value);
  return isPlainObject(value) || Array.isArray(value) ? structuredClone(value) : value;
}

function defaultObject(node: ObjectNode, value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (v !== null || !(key in node.properties)) out[key] = v;
  }
  for (const [key, prop] of Object.entries(node.properties)) {
    const d = nodeDefault(prop);
    if (out[key] === undefined && d !== undefined) out[key] = structuredClone(d);
    if (out[key] !== undefined) out[key] = applyDefaults(prop, out[key]);
  }
  return out;
}

/** Validates `value` (defaults are applied first, on a copy) against a schema. An empty list means valid. */
export function validate(node: Node, value: unknown): ValidationError[] {
  const defaulted = applyDefaults(node, value);
  const c: Collector = { errors: [], blocked: false };
  checkNode(node, defaulted, "", c);
  if (!c.blocked) checkRules(node, defaulted, "", c);
  return c.errors;
}

/** One line for a condition message: every error's message, joined by "; ". */
export function formatValidationErrors(errors: readonly ValidationError[]): string {
  return errors.map((e) => e.message).join("; ");
}

function checkNode(node: Node, value: unknown, path: string, c: Collector): void {
  switch (node.kind) {
    case "string":
      return checkString(node, value, path, c);
    case "integer":
      return checkInteger(node, value, path, c);
    case "boolean":
      if (typeof value !== "boolean") report(c, path, "type", "must be a boolean");
      return;
    case "array":
      return checkArray(node, value, path, c);
    case "map":
      return checkMap(node, value, path, c);
    case "object":
      return checkObject(node, value, path, c);
    case "opaque":
      return checkOpaque(node, value, path, c);
  }
}

function checkInteger(node: IntegerNode, value: unknown, path: string, c: Collector): void {
  if (typeof value !== "number" || !Number.isInteger(value)) return report(c, path, "type", "must be an integer");
  if (node.minimum !== undefined && value < node.minimum)
    report(c, path, "minimum", `must be at least ${node.minimum}`);
  if (node.maximum !== undefined && value > node.maximum) report(c, path, "maximum", `must be at most ${node.maximum}`);
}

function checkOpaque(node: OpaqueNode, value: unknown, path: string, c: Collector): void {
  if (!isPlainObject(value)) return report(c, path, "type", "must be an object");
  for (const [key, prop] of Object.entries(node.properties ?? {})) {
    if (value[key] !== undefined) checkNode(prop, value[key], child(path, key), c);
  }
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/u;

function checkString(node: StringNode, value: unknown, path: string, c: Collector): void {
  if (typeof value !== "string") return report(c, path, "type", "must be a string");
  if (node.enum && !node.enum.includes(value)) {
    report(c, path, "enum", `must be one of ${node.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  }
  // Like the API server's OpenAPI string validator: maxLength, then minLength, then pattern; the first failure wins.
  const failure = stringFailure(node, value);
  if (failure) report(c, path, failure[0], failure[1]);
  if (node.format === "date-time" && !DATE_TIME.test(value)) {
    report(c, path, "format", "must be an RFC 3339 date-time");
  }
}

function stringFailure(node: StringNode, value: string): [string, string] | undefined {
  const length = [...value].length;
  if (node.maxLength !== undefined && length > node.maxLength) {
    return ["maxLength", `must be at most ${node.maxLength} characters`];
  }
  if (node.minLength !== undefined && length < node.minLength) {
    return ["minLength", `must be at least ${node.minLength} characters`];
  }
  if (node.pattern !== undefined && !patternRegExp(node.pattern).test(value)) {
    return [node.patternName ?? "pattern", node.patternMessage ?? `must match ${node.pattern}`];
  }
  return undefined;
}

function checkArray(node: ArrayNode, value: unknown, path: string, c: Collector): void {
  if (!Array.isArray(value)) return report(c, path, "type", "must be a list");
  if (value.length > node.maxItems) report(c, path, "maxItems", `must have at most ${node.maxItems} items`);
  if (node.minItems !== undefined && value.length < node.minItems) {
    report(c, path, "minItems", `must have at least ${node.minItems} items`);
  }
  value.forEach((item, i) => checkNode(node.items, item, `${path}[${i}]`, c));
  if (node.listType === "set" || node.listType === "map") checkUnique(node, value, path, c);
}

function checkUnique(node: ArrayNode, items: unknown[], path: string, c: Collector): void {
  const keyOf = (item: unknown): string =>
    node.listType === "map" && isPlainObject(item)
      ? JSON.stringify((node.listMapKeys ?? []).map((k) => item[k]))
      : JSON.stringify(item);
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const key = keyOf(item);
    if (seen.has(key)) {
      const what = node.listType === "map" ? `${(node.listMapKeys ?? []).join(", ")} ` : "";
      report(c, `${path}[${i}]`, "duplicate", `duplicate ${what}value: items must be unique`);
    }
    seen.add(key);
  });
}

function checkMap(node: MapNode, value: unknown, path: string, c: Collector): void {
  if (!isPlainObject(value)) return report(c, path, "type", "must be an object");
  const entries = Object.entries(value);
  if (entries.length > node.maxProperties) {
    report(c, path, "maxProperties", `must have at most ${node.maxProperties} entries`);
  }
  for (const [key, v] of entries) checkNode(node.values, v, child(path, key), c);
}

function checkObject(node: ObjectNode, value: unknown, path: string, c: Collector): void {
  if (!isPlainObject(value)) return report(c, path, "type", "must be an object");
  for (const key of node.required) {
    if (value[key] === undefined) report(c, child(path, key), "required", "is required");
  }
  for (const [key, v] of Object.entries(value)) {
    const prop = node.properties[key];
    if (prop) checkNode(prop, v, child(path, key), c);
    else report(c, child(path, key), "unknownField", "is not a known field");
  }
}

function checkRules(node: Node, value: unknown, path: string, c: Collector): void {
  if (value === undefined) return;
  for (const rule of node.rules ?? []) runRule(rule, value, path, c);
  if (node.kind === "array" && Array.isArray(value)) {
    value.forEach((item, i) => checkRules(node.items, item, `${path}[${i}]`, c));
  } else if (node.kind === "map" && isPlainObject(value)) {
    for (const [key, v] of Object.entries(value)) checkRules(node.values, v, child(path, key), c);
  } else if (node.kind === "object" && isPlainObject(value)) {
    for (const [key, prop] of Object.entries(node.properties)) checkRules(prop, value[key], child(path, key), c);
  }
}

function runRule(rule: Rule<never>, value: unknown, path: string, c: Collector): void {
  const field = rule.fieldPath ? child(path, rule.fieldPath.slice(1)) : path;
  let ok: boolean;
  try {
    ok = rule.check(value as never);
  } catch (err) {
    report(c, field, rule.name, `rule could not be evaluated: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  if (!ok) report(c, field, rule.name, rule.message);
}

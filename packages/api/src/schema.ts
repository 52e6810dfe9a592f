/**
 * A tiny schema builder: the one source from which the CRD OpenAPI schemas (openapi.ts), the static TypeScript types
 * (`Infer`) and the runtime validator (validate.ts) are derived.
 *
 * Every node carries a description (so `kubectl explain` is useful). String and list nodes carry bounds (so the API
 * server's CEL cost estimation passes and very long values are refused). A `Rule` is a CEL `x-kubernetes-validations`
 * rule together with its TypeScript twin (`check`), written side by side so they cannot drift apart unnoticed: the
 * tests feed the same bad objects to the real API server and to the twins.
 */

/** `reason` of an `x-kubernetes-validations` rule (the API server's field error type). */
export type RuleReason = "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";

/** A CEL validation rule and its TypeScript twin. */
export interface Rule<T> {
  /** Stable identifier of the rule, reported by the runtime validator as `rule`. */
  readonly name: string;
  /** The CEL expression (`self` is the value of the node the rule is attached to). */
  readonly rule: string;
  /** What the value must be, e.g. "must be a relative path without '..' segments". */
  readonly message: string;
  /** Relative JSON path (e.g. ".count") of the field the error is reported on; default: the node itself. */
  readonly fieldPath?: string;
  readonly reason?: RuleReason;
  /** TypeScript twin of `rule`; called only with values that passed the structural checks, defaults applied. */
  readonly check: (self: T) => boolean;
}

/** A rule whose value type has been erased (what nodes store). */
export type AnyRule = Rule<never>;

interface NodeBase {
  readonly description: string;
  readonly rules?: readonly AnyRule[];
}

export interface StringOptions extends NodeBase {
  /** Maximum length in characters (Unicode code points). Required unless `enum` or `format` bounds the value. */
  readonly maxLength?: number;
  readonly minLength?: number;
  /** An anchored regular expression valid in both RE2 (API server) and JavaScript (`u` flag). */
  readonly pattern?: string;
  /** Rule name reported when `pattern` does not match. */
  readonly patternName?: string;
  /** Message reported when `pattern` does not match, e.g. "must be a POSIX user name (...)". */
  readonly patternMessage?: string;
  readonly enum?: readonly string[];
  readonly format?: "date-time";
  readonly default?: string;
  readonly rules?: readonly Rule<string>[];
}
export type StringNode = StringOptions & { readonly kind: "string" };

export interface IntegerOptions extends NodeBase {
  readonly format?: "int32" | "int64";
  readonly minimum?: number;
  readonly maximum?: number;
  readonly default?: number;
  readonly rules?: readonly Rule<number>[];
}
export type IntegerNode = IntegerOptions & { readonly kind: "integer" };

export interface BooleanOptions extends NodeBase {
  readonly default?: boolean;
}
export type BooleanNode = BooleanOptions & { readonly kind: "boolean" };

export interface ArrayNode<I extends Node = Node> extends NodeBase {
  readonly kind: "array";
  readonly items: I;
  readonly maxItems: number;
  readonly minItems?: number;
  /** `set`: items are unique scalars; `map`: items are objects unique by `listMapKeys`. */
  readonly listType?: "atomic" | "set" | "map";
  readonly listMapKeys?: readonly string[];
}

export interface MapNode<V extends Node = Node> extends NodeBase {
  readonly kind: "map";
  readonly values: V;
  readonly maxProperties: number;
}

export type Properties = Readonly<Record<string, Node>>;

export interface ObjectNode<P extends Properties = Properties, R extends string = string> extends NodeBase {
  readonly kind: "object";
  readonly properties: P;
  readonly required: readonly R[];
  /** Only `{}` is supported: it makes the API server create the object so that its fields' defaults apply. */
  readonly default?: Readonly<Record<string, never>>;
}

/**
 * An object the schema describes only partly: `properties` are checked, other fields are allowed (only `metadata` at
 * the root of a resource, where the API server accepts nothing but constraints on name and generateName).
 */
export interface OpaqueNode extends NodeBase {
  readonly kind: "opaque";
  readonly properties?: Properties;
}

export type Node = StringNode | IntegerNode | BooleanNode | ArrayNode | MapNode | ObjectNode | OpaqueNode;

/** `stored`: as read from the API server (defaulted fields present); `input`: as a user may write it. */
export type Mode = "stored" | "input";

/** The TypeScript type of the values a schema node accepts. */
export type Infer<S, M extends Mode = "stored"> = S extends {
  readonly kind: "string";
  readonly enum: readonly (infer E)[];
}
  ? E
  : S extends { readonly kind: "string" }
    ? string
    : S extends { readonly kind: "integer" }
      ? number
      : S extends { readonly kind: "boolean" }
        ? boolean
        : S extends { readonly kind: "array"; readonly items: infer I }
          ? Infer<I, M>[]
          : S extends { readonly kind: "map"; readonly values: infer V }
            ? Record<string, Infer<V, M>>
            : S extends {
                  readonly kind: "object";
                  readonly properties: infer P;
                  readonly required: readonly (infer R)[];
                }
              ? InferObject<P, R, M>
              : S extends { readonly kind: "opaque" }
                ? Record<string, unknown>
                : never;

type PresentKeys<P, R, M extends Mode> = {
  [K in keyof P]-?: K extends R
    ? K
    : M extends "stored"
      ? P[K] extends { readonly default: unknown }
        ? K
        : never
      : never;
}[keyof P];

type Simplify<T> = { [K in keyof T]: T[K] } & {};

export type InferObject<P, R, M extends Mode = "stored"> = Simplify<
  { -readonly [K in PresentKeys<P, R, M>]: Infer<P[K], M> } & {
    -readonly [K in Exclude<keyof P, PresentKeys<P, R, M>>]?: Infer<P[K], M>;
  }
>;

export function str<const O extends StringOptions>(options: O): O & { readonly kind: "string" } {
  return { kind: "string", ...options };
}

export function int<const O extends IntegerOptions>(options: O): O & { readonly kind: "integer" } {
  return { kind: "integer", ...options };
}

export function bool<const O extends BooleanOptions>(options: O): O & { readonly kind: "boolean" } {
  return { kind: "boolean", ...options };
}

export interface ArrayOptions<I extends Node> {
  readonly description: string;
  readonly maxItems: number;
  readonly minItems?: number;
  readonly listType?: "atomic" | "set" | "map";
  readonly listMapKeys?: readonly string[];
  readonly rules?: readonly Rule<Infer<I>[]>[];
}

export function arr<const I extends Node>(items: I, options: ArrayOptions<I>): ArrayNode<I> {
  return { kind: "array", items, ...options };
}

export interface MapOptions<V extends Node> {
  readonly description: string;
  readonly maxProperties: number;
  readonly rules?: readonly Rule<Record<string, Infer<V>>>[];
}

/** An object with arbitrary keys and values of one schema (`additionalProperties`). */
export function map<const V extends Node>(values: V, options: MapOptions<V>): MapNode<V> {
  return { kind: "map", values, ...options };
}

export interface ObjectOptions<P extends Properties, R extends keyof P & string> {
  readonly description: string;
  readonly properties: P;
  readonly required?: readonly R[];
  readonly rules?: readonly Rule<InferObject<P, R>>[];
}

export function obj<const P extends Properties, const R extends keyof P & string = never>(
  options: ObjectOptions<P, R>,
): ObjectNode<P, NoInfer<R>> {
  // NoInfer: R comes from `required` only, never from the context (an enclosing Properties would make it `string`).
  return { kind: "object", ...options, required: options.required ?? [] };
}

/** Defaults an optional object to `{}` so that the defaults of its fields always apply. */
export function defaultEmpty<N extends ObjectNode>(node: N): N & { readonly default: Readonly<Record<string, never>> } {
  return { ...node, default: {} };
}

export function opaque(description: string, properties?: Properties): OpaqueNode {
  return { kind: "opaque", description, ...(properties ? { properties } : {}) };
}

/** Visits every node of a schema, depth first, with its schema path (e.g. "spec.additionalFiles[].path"). */
export function walkSchema(node: Node, visit: (node: Node, path: string) => void, path = ""): void {
  visit(node, path);
  const join = (p: string, k: string): string => (p === "" ? k : `${p}.${k}`);
  switch (node.kind) {
    case "array":
      walkSchema(node.items, visit, `${path}[]`);
      return;
    case "map":
      walkSchema(node.values, visit, `${path}[*]`);
      return;
    case "object":
    case "opaque":
      for (const [key, child] of Object.entries(node.properties ?? {})) walkSchema(child, visit, join(path, key));
      return;
    default:
      return;
  }
}

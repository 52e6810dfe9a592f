/** Schema pieces shared by the kinds: references, label selectors, the git source, conditions, status basics. */
import {
  GIT_REF,
  GIT_URL,
  LABEL_KEY,
  LABEL_KEY_PATTERN,
  LABEL_VALUE,
  OBJECT_NAME,
  RELATIVE_PATH,
  SECRET_KEY,
  patternRegExp,
} from "./formats.js";
import {
  arr,
  int,
  map,
  obj,
  opaque,
  str,
  type ArrayNode,
  type Infer,
  type IntegerNode,
  type MapNode,
  type ObjectNode,
  type StringNode,
} from "./schema.js";

/** The part of metav1.ObjectMeta the controllers use; structurally compatible with client-node's V1ObjectMeta. */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: { [key: string]: string };
  annotations?: { [key: string]: string };
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  creationTimestamp?: Date;
  deletionTimestamp?: Date;
  deletionGracePeriodSeconds?: number;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** A namespaced object of one of our kinds. */
export interface Resource<Spec, Status> {
  apiVersion: string;
  kind: string;
  metadata?: ObjectMeta;
  spec: Spec;
  status?: Status;
}

export function dateTime(description: string): StringNode {
  return str({ description, format: "date-time" });
}

export type LocalObjectRefNode = ObjectNode<{ readonly name: StringNode }, "name">;

/** `{name}` of an object in the same namespace. */
export function localObjectRef(description: string, nameDescription: string): LocalObjectRefNode {
  return obj({
    description,
    properties: { name: str({ ...OBJECT_NAME, description: nameDescription }) },
    required: ["name"],
  });
}

export const conditionSchema = obj({
  description:
    "A metav1.Condition: one aspect of the object's current state. `Ready`, `Reconciling` and `Stalled` follow kstatus.",
  properties: {
    type: str({
      description: "Type of the condition in CamelCase, e.g. Ready.",
      maxLength: 316,
      pattern:
        "^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
      patternName: "conditionType",
      patternMessage: "must be a condition type such as Ready",
    }),
    status: str({ description: "Status of the condition.", enum: ["True", "False", "Unknown"] }),
    observedGeneration: int({
      description: "The .metadata.generation the condition was set for.",
      format: "int64",
      minimum: 0,
    }),
    lastTransitionTime: dateTime("When the condition last changed from one status to another."),
    reason: str({
      description: "Programmatic identifier of the condition's last transition, in CamelCase.",
      minLength: 1,
      maxLength: 1024,
      pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
      patternName: "conditionReason",
      patternMessage: "must be a CamelCase reason",
    }),
    message: str({ description: "Human readable details of the transition (may be empty).", maxLength: 32768 }),
  },
  required: ["type", "status", "lastTransitionTime", "reason", "message"],
});
export type Condition = Infer<typeof conditionSchema>;

export interface StatusBasics {
  readonly observedGeneration: IntegerNode;
  readonly lastHandledReconcileAt: StringNode;
  readonly conditions: ArrayNode<typeof conditionSchema>;
}

/** Status fields every kind has: observedGeneration, lastHandledReconcileAt and conditions. */
export function statusBasics(conditionsDescription: string): StatusBasics {
  return {
    observedGeneration: int({
      description: "The .metadata.generation the controller last reconciled completely (without an error).",
      format: "int64",
      minimum: 0,
    }),
    lastHandledReconcileAt: str({
      description: "The value of the nio.homystack.com/reconcile-requested-at annotation the controller last handled.",
      maxLength: 256,
    }),
    conditions: arr(conditionSchema, {
      description: conditionsDescription,
      maxItems: 32,
      listType: "map",
      listMapKeys: ["type"],
    }),
  } as const;
}

const labelKeyRe = patternRegExp(LABEL_KEY_PATTERN);

const labelSelectorRequirement = obj({
  description: "A label selector requirement: a key, an operator and values.",
  properties: {
    key: str({ ...LABEL_KEY, description: "The label key the requirement applies to." }),
    operator: str({
      description: "How the key relates to the values: In, NotIn, Exists or DoesNotExist.",
      enum: ["In", "NotIn", "Exists", "DoesNotExist"],
    }),
    values: arr(str({ ...LABEL_VALUE, description: "A label value." }), {
      description: "Label values: non-empty for In and NotIn, empty for Exists and DoesNotExist.",
      maxItems: 64,
    }),
  },
  required: ["key", "operator"],
  rules: [
    {
      name: "selectorValues",
      rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
      message: "must be non-empty for operators In and NotIn and empty for Exists and DoesNotExist",
      fieldPath: ".values",
      check: (r) => {
        const n = r.values?.length ?? 0;
        return r.operator === "In" || r.operator === "NotIn" ? n > 0 : n === 0;
      },
    },
  ],
});

export type LabelSelectorNode = ObjectNode<
  { readonly matchLabels: MapNode<StringNode>; readonly matchExpressions: ArrayNode<typeof labelSelectorRequirement> },
  never
>;

/** A metav1.LabelSelector over Machines; an empty selector would select every Machine and is refused. */
export function labelSelector(description: string): LabelSelectorNode {
  return obj({
    description,
    properties: {
      matchLabels: map(str({ ...LABEL_VALUE, description: "A label value." }), {
        description: "Labels a Machine must have, as key: value pairs.",
        maxProperties: 32,
        rules: [
          {
            name: "labelKeys",
            rule: `self.all(k, k.size() <= 317 && k.matches('${LABEL_KEY_PATTERN}'))`,
            message: LABEL_KEY.patternMessage.replace("must be a label key", "keys must be label keys"),
            check: (m) => Object.keys(m).every((k) => k.length <= 317 && labelKeyRe.test(k)),
          },
        ],
      }),
      matchExpressions: arr(labelSelectorRequirement, {
        description: "Requirements on a Machine's labels; all must hold.",
        maxItems: 16,
      }),
    },
    rules: [
      {
        name: "nonEmptySelector",
        rule: "(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",
        message:
          "must not be empty: set matchLabels or matchExpressions (an empty selector would select every Machine)",
        check: (s) => Object.keys(s.matchLabels ?? {}).length > 0 || (s.matchExpressions?.length ?? 0) > 0,
      },
    ],
  });
}

export interface GitSourceProperties {
  readonly gitRepo: StringNode;
  readonly ref: StringNode;
  readonly credentialsRef: LocalObjectRefNode;
  readonly configurationSubdir: StringNode;
}

/** Where a flake comes from: gitRepo, ref, credentialsRef and configurationSubdir. */
export function gitSourceProperties(subdirDescription: string): GitSourceProperties {
  return {
    gitRepo: str({
      ...GIT_URL,
      description:
        "URL of the git repository holding the flake: http:// or https://, never with credentials (use credentialsRef).",
    }),
    ref: str({
      ...GIT_REF,
      description:
        "Branch, tag or commit to apply (e.g. main, v1.2.0, refs/heads/main or a full commit id). Default: the remote HEAD.",
    }),
    credentialsRef: localObjectRef(
      "Secret in the same namespace with git credentials: key `token` and optional key `username`.",
      "Name of the Secret.",
    ),
    configurationSubdir: str({ ...RELATIVE_PATH, description: subdirDescription }),
  } as const;
}

export type SecretKeyRefNode = ObjectNode<{ readonly name: StringNode; readonly key: StringNode }, "name">;

/** `{name, key}` of a Secret in the same namespace. */
export function secretKeyRef(description: string, keyDescription: string): SecretKeyRefNode {
  return obj({
    description,
    properties: {
      name: str({ ...OBJECT_NAME, description: "Name of the Secret (same namespace)." }),
      key: str({ ...SECRET_KEY, description: keyDescription }),
    },
    required: ["name"],
  });
}

/** The root schema of a kind: apiVersion, kind, metadata, spec (required) and status. */
export function resourceSchema(
  description: string,
  spec: ObjectNode,
  status: ObjectNode,
  maxNameLength?: number,
): ObjectNode {
  return {
    kind: "object",
    description,
    properties: {
      apiVersion: str({
        description:
          "APIVersion defines the versioned schema of this representation of an object. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
        maxLength: 253,
      }),
      kind: str({
        description:
          "Kind is a string value representing the REST resource this object represents. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
        maxLength: 63,
      }),
      metadata: opaque(
        "Standard object metadata.",
        maxNameLength
          ? {
              name: str({
                description: `Name of the object, at most ${maxNameLength} characters.`,
                maxLength: maxNameLength,
              }),
            }
          : undefined,
      ),
      spec,
      status,
    },
    required: ["spec"],
  };
}

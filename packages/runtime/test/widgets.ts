import { waitFor } from "@nio/testbed";
import type { Condition } from "../src/conditions.js";
import type { Kube } from "../src/kube/client.js";
import { isAlreadyExists } from "../src/kube/errors.js";
import type { KubeObject, ResourceType } from "../src/kube/types.js";

/** A small test CRD with a status subresource, for the runtime's integration tests. */
export const WIDGET_GROUP = "runtime.test.example.com";

export const widgets: ResourceType = {
  group: WIDGET_GROUP,
  version: "v1",
  plural: "widgets",
  kind: "Widget",
  namespaced: true,
};

export interface WidgetStatus {
  phase?: string;
  observedGeneration?: number;
  note?: string;
  conditions?: Condition[];
}

export interface Widget extends KubeObject {
  spec?: { size?: number; color?: string; tags?: string[] };
  status?: WidgetStatus;
}

const crds: ResourceType = {
  group: "apiextensions.k8s.io",
  version: "v1",
  plural: "customresourcedefinitions",
  kind: "CustomResourceDefinition",
  namespaced: false,
};

const conditionSchema = {
  type: "object",
  required: ["type", "status", "lastTransitionTime", "reason", "message"],
  properties: {
    type: { type: "string", maxLength: 316 },
    status: { type: "string", enum: ["True", "False", "Unknown"] },
    observedGeneration: { type: "integer", format: "int64", minimum: 0 },
    lastTransitionTime: { type: "string", format: "date-time" },
    reason: { type: "string", minLength: 1, maxLength: 1024 },
    message: { type: "string", maxLength: 32768 },
  },
};

const widgetCrd = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `widgets.${WIDGET_GROUP}` },
  spec: {
    group: WIDGET_GROUP,
    scope: "Namespaced",
    names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: {
                type: "object",
                properties: {
                  size: { type: "integer", minimum: 1 },
                  color: { type: "string" },
                  tags: { type: "array", items: { type: "string" } },
                },
              },
              status: {
                type: "object",
                properties: {
                  phase: { type: "string" },
                  note: { type: "string" },
                  observedGeneration: { type: "integer" },
                  conditions: {
                    type: "array",
                    items: conditionSchema,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                  },
                },
              },
            },
          },
        },
      },
    ],
  },
};

/** Installs the Widget CRD (idempotent) and waits until the API serves it. */
export async function installWidgetCrd(kube: Kube): Promise<void> {
  try {
    await kube.create(crds, widgetCrd);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
  await waitFor("widget CRD served", async () => {
    await kube.list(widgets, { namespace: "default", limit: 1 });
    return true;
  });
}

export function widget(name: string, spec: Widget["spec"] = { size: 1 }, namespace = "default"): Widget {
  return { apiVersion: `${WIDGET_GROUP}/v1`, kind: "Widget", metadata: { name, namespace }, spec };
}

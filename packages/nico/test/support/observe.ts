import type { Registry } from "prom-client";
import type { Kube, KubeObject, ResourceType } from "@nio/runtime";
import { NS } from "./env.js";

/** One sample of the Prometheus text exposition: `name{labels} value`. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Every sample the registry exposes now (what /metrics would serve). */
export async function metricSamples(registry: Registry): Promise<MetricSample[]> {
  const text = await registry.metrics();
  const out: MetricSample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) labels[l[1] ?? ""] = (l[2] ?? "").replace(/\\(.)/g, "$1");
    out.push({ name: m[1] ?? "", labels, value: Number(m[3]) });
  }
  return out;
}

/** Samples named `name` whose labels include `labels`. */
export function matching(samples: MetricSample[], name: string, labels: Record<string, string> = {}): MetricSample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** Sum of the matching samples (0 when there is none). */
export function metricValue(samples: MetricSample[], name: string, labels: Record<string, string> = {}): number {
  return matching(samples, name, labels).reduce((sum, s) => sum + s.value, 0);
}

export const events: ResourceType = { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true };

export interface EventObject extends KubeObject {
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  involvedObject?: { kind?: string; name?: string; uid?: string; namespace?: string };
}

/** core/v1 Events about the KubernetesCluster `name` (of one incarnation when `uid` is given), oldest first. */
export async function clusterEvents(kube: Kube, name: string, uid?: string): Promise<EventObject[]> {
  const list = await kube.list<EventObject>(events, {
    namespace: NS,
    fieldSelector: `involvedObject.kind=KubernetesCluster,involvedObject.name=${name}`,
  });
  return list.items
    .filter((e) => uid === undefined || e.involvedObject?.uid === uid)
    .sort((a, b) => (a.metadata.creationTimestamp ?? "").localeCompare(b.metadata.creationTimestamp ?? ""));
}

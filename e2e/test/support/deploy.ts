// Helpers for the tests of deploy/: building the kustomizations, reading the monitoring manifests, and the list of
// every metric the alert rules and the Grafana dashboard name (for checks against the operators' live /metrics).
import { access, constants, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, isAbsolute, join, relative } from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { cacheDir, repoRoot, run } from "@nio/testbed";

export const deployDir = join(repoRoot, "deploy");
export const OPERATOR_NAMESPACE = "nixos-operator-system";

/** One object of a built kustomization, loosely typed: tests read the fields they check. */
export interface KubeDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** `deploy/<overlay>`, or an absolute kustomization directory as it is. */
export function overlayDir(overlay: string): string {
  return isAbsolute(overlay) ? overlay : join(deployDir, overlay);
}

/** `kubectl kustomize deploy/<overlay>`, parsed. */
export async function kustomize(kubectl: string, overlay: string): Promise<KubeDoc[]> {
  const res = await run(kubectl, ["kustomize", overlayDir(overlay)]);
  if (res.code !== 0) throw new Error(`kubectl kustomize ${overlay} failed: ${res.stderr}`);
  return parseDocs(res.stdout);
}

/**
 * A temporary kustomization (absolute path) of `deploy/<overlay>` with `deploy/components/<component>`, as a user adds
 * a component to their overlay. Kustomize wants relative paths, so they are relative to the temporary directory.
 */
export async function overlayWithComponent(overlay: string, component: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "deploy-overlay-"));
  const rel = (p: string): string => relative(dir, join(deployDir, p));
  await writeFile(
    join(dir, "kustomization.yaml"),
    [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      "resources:",
      `  - ${rel(overlay)}`,
      "components:",
      `  - ${rel(`components/${component}`)}`,
      "",
    ].join("\n"),
  );
  return dir;
}

export function parseDocs(text: string): KubeDoc[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as KubeDoc | null)
    .filter((d): d is KubeDoc => d !== null);
}

export interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

/** The rule groups of deploy/monitoring/prometheus-rules.yaml: the `spec` promtool reads as a rules file. */
export async function prometheusRuleGroups(): Promise<RuleGroup[]> {
  const doc = parseYaml(await readFile(join(deployDir, "monitoring/prometheus-rules.yaml"), "utf8")) as {
    spec: { groups: RuleGroup[] };
  };
  return doc.spec.groups;
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  targets?: { expr: string; refId: string }[];
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: DashboardPanel[];
}

export async function grafanaDashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(join(deployDir, "monitoring/grafana/nio-nico-dashboard.json"), "utf8")) as Dashboard;
}

/** Every PromQL expression of the alert rules and the dashboard, with where it comes from. */
export async function monitoringExpressions(): Promise<{ where: string; expr: string }[]> {
  const out: { where: string; expr: string }[] = [];
  for (const g of await prometheusRuleGroups()) {
    for (const r of g.rules) out.push({ where: `rule ${r.alert ?? r.record ?? "?"}`, expr: r.expr });
  }
  for (const p of (await grafanaDashboard()).panels) {
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
  }
  return out;
}

const OPERATOR_METRIC = /\b(nio|nico)_[a-z0-9_]*[a-z0-9]\b/g;

/** The operator metric names (`nio_…`, `nico_…`) in a PromQL expression or text; quoted label values are skipped. */
export function metricNamesIn(text: string): string[] {
  const unquoted = text.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...unquoted.matchAll(OPERATOR_METRIC)].map((m) => m[0]);
}

export interface MonitoringMetrics {
  /** Series names as written (histograms as `…_bucket`, `…_sum`, `…_count`), sorted. */
  nio: string[];
  nico: string[];
  /** Names Prometheus itself provides (`up`), which no operator emits. */
  prometheus: string[];
}

/**
 * Every metric named by the alert rules (expressions and annotations) and the dashboard. A later e2e test checks each
 * against the operators' live /metrics (use {@link metricFamily} to compare with `# TYPE` lines).
 */
export async function monitoringMetrics(): Promise<MonitoringMetrics> {
  const texts = (await monitoringExpressions()).map((e) => e.expr);
  for (const g of await prometheusRuleGroups()) {
    for (const r of g.rules) texts.push(...Object.values(r.annotations ?? {}));
  }
  const names = new Set(texts.flatMap(metricNamesIn));
  const sorted = (prefix: string): string[] => [...names].filter((n) => n.startsWith(`${prefix}_`)).sort();
  const prometheus = texts.some((t) => /\bup\s*\{/.test(t)) ? ["up"] : [];
  return { nio: sorted("nio"), nico: sorted("nico"), prometheus };
}

/** The metric family a series name belongs to: histogram series lose `_bucket`, `_sum` and `_count`. */
export function metricFamily(name: string, histograms: ReadonlySet<string>): string {
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m?.[1] !== undefined && histograms.has(m[1]) ? m[1] : name;
}

/** promtool from PATH, else the copy scripts/install-deps.sh unpacks into the testbed cache; undefined if neither. */
export async function findPromtool(): Promise<string | undefined> {
  const candidates = [
    ...(process.env.PATH ?? "")
      .split(delimiter)
      .filter((d) => d !== "")
      .map((d) => join(d, "promtool")),
    join(cacheDir(), "promtool", "promtool"),
  ];
  for (const c of candidates) {
    try {
      await access(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return undefined;
}

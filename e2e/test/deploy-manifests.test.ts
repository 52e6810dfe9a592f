// deploy/: the kustomizations build, a real API server accepts every object, the RBAC grants exactly what the
// operators need, and the alert rules and dashboard use only metrics the operators register (and parse with promtool).
import { expect } from "chai";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { createNicoMetrics } from "@nio/nico";
import { createNioMetrics } from "@nio/nio";
import { createRuntimeMetrics } from "@nio/runtime";
import {
  controlPlaneBinaries,
  freePort,
  repoRoot,
  run,
  startTestbed,
  waitFor,
  type RunResult,
  type Testbed,
} from "@nio/testbed";
import {
  OPERATOR_NAMESPACE,
  deployDir,
  findPromtool,
  grafanaDashboard,
  kustomize,
  metricFamily,
  monitoringExpressions,
  monitoringMetrics,
  overlayDir,
  overlayWithComponent,
  prometheusRuleGroups,
  type KubeDoc,
} from "./support/deploy.js";

const OVERLAYS = ["base", "monitoring", "production"] as const;
/** deploy/production with deploy/components/nixos-anywhere, built in a temporary kustomization. */
const WITH_NIX = "production + components/nixos-anywhere";

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  ports?: { name: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

interface PodSpec {
  serviceAccountName: string;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  containers: Container[];
  volumes?: { name: string; emptyDir?: unknown; secret?: { secretName: string; defaultMode?: number } }[];
}

interface DeploymentDoc extends KubeDoc {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    strategy?: { type: string; rollingUpdate?: { maxUnavailable: number | string; maxSurge: number | string } };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}

interface RuleDoc {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

const byKind = <T extends KubeDoc = KubeDoc>(docs: KubeDoc[], kind: string): T[] =>
  docs.filter((d) => d.kind === kind) as T[];

function one<T extends KubeDoc = KubeDoc>(docs: KubeDoc[], kind: string, name: string): T {
  const found = docs.filter((d) => d.kind === kind && d.metadata.name === name);
  expect(found, `${kind}/${name}`).to.have.length(1);
  return found[0] as T;
}

function container(d: DeploymentDoc): Container {
  expect(d.spec.template.spec.containers, `containers of ${d.metadata.name}`).to.have.length(1);
  return d.spec.template.spec.containers[0] as Container;
}

/** `group|resource|verb` for every permission a rule list grants. */
function grants(rules: RuleDoc[]): string[] {
  return rules
    .flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}|${res}|${v}`))))
    .sort();
}

function expand(table: Record<string, string[]>): string[] {
  return Object.entries(table)
    .flatMap(([groupResource, verbs]) => verbs.map((v) => `${groupResource}|${v}`))
    .sort();
}

const READ = ["get", "list", "watch"];
const WRITE = ["update", "patch"];
const CRUD = [...READ, "create", "update", "patch", "delete"];

/** The API access each operator needs, and nothing more (see deploy/base/rbac/). */
const EXPECTED_CLUSTER_RULES: Record<string, Record<string, string[]>> = {
  nio: {
    "nio.homystack.com|machines": [...READ, ...WRITE],
    "nio.homystack.com|nixosconfigurations": [...READ, ...WRITE],
    "nio.homystack.com|machines/status": ["get", ...WRITE],
    "nio.homystack.com|nixosconfigurations/status": ["get", ...WRITE],
    "nio.homystack.com|machines/finalizers": ["update"],
    "nio.homystack.com|nixosconfigurations/finalizers": ["update"],
    "|secrets": READ,
    "|events": ["create", "patch"],
    "events.k8s.io|events": ["create", "patch"],
  },
  nico: {
    "nico.homystack.com|kubernetesclusters": [...READ, ...WRITE],
    "nico.homystack.com|kubernetesclusters/status": ["get", ...WRITE],
    "nico.homystack.com|kubernetesclusters/finalizers": ["update"],
    "nio.homystack.com|nixosconfigurations": CRUD,
    "nio.homystack.com|machines": [...READ, ...WRITE],
    "|secrets": CRUD,
    "|configmaps": CRUD,
    "|events": ["create", "patch"],
    "events.k8s.io|events": ["create", "patch"],
  },
};
const EXPECTED_LEASE_RULES = { "coordination.k8s.io|leases": ["get", "create", "update"] };

/** Environment variable names a config source reads (every quoted UPPER_CASE literal). */
async function variablesReadBy(...files: string[]): Promise<Set<string>> {
  const names = new Set<string>();
  for (const f of files) {
    for (const m of (await readFile(join(repoRoot, f), "utf8")).matchAll(/"([A-Z][A-Z0-9_]+)"/g)) {
      names.add(m[1] as string);
    }
  }
  return names;
}

/** The NIO variables of the production guide's configuration table (seed 000). */
const SEED_NIO_VARIABLES = [
  "METRICS_PORT",
  "HEALTH_CHECK_PORT",
  "NIO_BASE_CONFIG_PATH",
  "NIO_KNOWN_HOSTS_PATH",
  "NIO_MACHINE_DISCOVERY_INTERVAL",
  "NIO_HARDWARE_SCAN_INTERVAL",
  "NIO_CONFIG_RECONCILE_INTERVAL",
  "NIO_NIXOS_APPLY_TIMEOUT",
  "NIO_RETRY_MAX_ATTEMPTS",
  "NIO_RETRY_INITIAL_DELAY",
  "NIO_RETRY_MAX_DELAY",
  "NIO_RETRY_EXPONENTIAL_BASE",
];

/** NICO's own metrics (packages/nico/src/metrics.ts); the dashboard shows each. */
const NICO_OWN_METRICS = ["nico_clusters_total", "nico_cluster_nodes", "nico_machine_claims_total"];

/** Metric families (name → type) a registry declares. */
async function registered(prefix: "nio" | "nico"): Promise<Map<string, string>> {
  const runtime = createRuntimeMetrics(prefix);
  if (prefix === "nio") createNioMetrics(runtime.registry);
  else createNicoMetrics(runtime.registry);
  const families = await runtime.registry.getMetricsAsJSON();
  return new Map(families.map((m) => [m.name, String(m.type)]));
}

function seriesNames(families: Map<string, string>): Set<string> {
  const out = new Set<string>();
  for (const [name, type] of families) {
    out.add(name);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) out.add(`${name}${s}`);
  }
  return out;
}

describe("deploy/: manifests as built", function () {
  this.timeout(60_000);
  let kubectl: string;
  const built: Record<string, KubeDoc[]> = {};

  let withNixDir: string;

  before(async () => {
    kubectl = (await controlPlaneBinaries()).kubectl;
    for (const o of OVERLAYS) built[o] = await kustomize(kubectl, o);
    withNixDir = await overlayWithComponent("production", "nixos-anywhere");
    built[WITH_NIX] = await kustomize(kubectl, withNixDir);
  });
  after(async () => {
    if (withNixDir) await rm(withNixDir, { recursive: true, force: true });
  });

  it("keeps deploy/base/crds identical to the generated crds/ (deploy/scripts/sync-crds.sh)", async () => {
    const generated = (await readdir(join(repoRoot, "crds"))).filter((f) => f.endsWith(".yaml")).sort();
    const copies = (await readdir(join(deployDir, "base/crds")))
      .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
      .sort();
    expect(copies, "run deploy/scripts/sync-crds.sh").to.deep.equal(generated);
    for (const f of generated) {
      const [a, b] = await Promise.all([
        readFile(join(repoRoot, "crds", f), "utf8"),
        readFile(join(deployDir, "base/crds", f), "utf8"),
      ]);
      expect(b === a, `deploy/base/crds/${f} differs from crds/${f}: run deploy/scripts/sync-crds.sh`).to.equal(true);
    }
    const crds = byKind(built.base ?? [], "CustomResourceDefinition").map((d) => `${d.metadata.name}.yaml`);
    expect(crds.sort()).to.deep.equal(generated);
  });

  it("base holds the namespace, CRDs, RBAC, both Deployments and their Services", () => {
    const docs = built.base ?? [];
    const kinds = docs.map((d) => d.kind).sort();
    expect(kinds).to.deep.equal(
      [
        "Namespace",
        ...Array<string>(3).fill("CustomResourceDefinition"),
        ...Array<string>(2).fill("ServiceAccount"),
        ...Array<string>(2).fill("ClusterRole"),
        ...Array<string>(2).fill("ClusterRoleBinding"),
        ...Array<string>(2).fill("Role"),
        ...Array<string>(2).fill("RoleBinding"),
        ...Array<string>(2).fill("Deployment"),
        ...Array<string>(6).fill("Service"),
      ].sort(),
    );
    for (const d of docs) {
      const clusterScoped = ["Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"];
      if (!clusterScoped.includes(d.kind)) expect(d.metadata.namespace, d.metadata.name).to.equal(OPERATOR_NAMESPACE);
    }
    for (const [svc, port] of [
      ["nio-metrics", 8000],
      ["nio-health", 8080],
      ["nio-webhook", 8081],
      ["nico-metrics", 8000],
      ["nico-health", 8080],
      ["nico-webhook", 8082],
    ] as const) {
      const s = one<KubeDoc & { spec: { ports: { name: string; port: number }[] } }>(docs, "Service", svc);
      expect(s.spec.ports.map((p) => p.port)).to.deep.equal([port]);
    }
    expect(one(docs, "Service", "nio-metrics").metadata.labels).to.include({
      "app.kubernetes.io/component": "metrics",
    });
  });

  it("runs both operators non-root on a read-only root filesystem with probes, resources and the image", async () => {
    for (const overlay of ["base", "production", WITH_NIX]) {
      for (const d of byKind<DeploymentDoc>(built[overlay] ?? [], "Deployment")) {
        const what = `${overlay} ${d.metadata.name}`;
        const pod = d.spec.template.spec;
        const c = container(d);
        expect(pod.serviceAccountName, what).to.equal(d.metadata.name);
        expect(pod.securityContext, what).to.deep.include({ runAsNonRoot: true, runAsUser: 65532 });
        expect(pod.securityContext?.seccompProfile?.type, what).to.equal("RuntimeDefault");
        expect(c.securityContext, what).to.deep.include({
          runAsNonRoot: true,
          runAsUser: 65532,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
        });
        expect(c.securityContext?.capabilities, what).to.deep.equal({ drop: ["ALL"] });
        expect(c.securityContext?.seccompProfile?.type, what).to.equal("RuntimeDefault");
        expect(c.image, what).to.match(/^ghcr\.io\/homystack\/nio-nico(-nix)?:v\d+\.\d+\.\d+/);
        expect(c.livenessProbe?.httpGet, what).to.deep.equal({ path: "/live", port: "health" });
        expect(c.readinessProbe?.httpGet, what).to.deep.equal({ path: "/ready", port: "health" });
        const ports = Object.fromEntries((c.ports ?? []).map((p) => [p.name, p.containerPort]));
        expect(ports, what).to.include({ metrics: 8000, health: 8080 });
        expect(c.resources?.requests, what).to.have.keys("cpu", "memory");
        expect(c.resources?.limits, what).to.have.keys("cpu", "memory");
        const tmp = c.volumeMounts?.find((m) => m.mountPath === "/tmp");
        expect(pod.volumes?.find((v) => v.name === tmp?.name)?.emptyDir, `${what}: /tmp is an emptyDir`).to.not.equal(
          undefined,
        );
        // The package's own start script, run from the image's /app; the image's entrypoint (tini) stays in place.
        const pkg = JSON.parse(await readFile(join(repoRoot, "packages", d.metadata.name, "package.json"), "utf8")) as {
          scripts: { start: string };
        };
        expect(c.command, what).to.equal(undefined);
        expect(c.args, what).to.deep.equal([
          "node",
          pkg.scripts.start.replace(/^node /, `packages/${d.metadata.name}/`),
        ]);
      }
    }
    const prod = one<DeploymentDoc>(built.production ?? [], "Deployment", "nio");
    expect(container(prod).resources).to.deep.equal({
      requests: { cpu: "250m", memory: "256Mi" },
      limits: { cpu: "1000m", memory: "1Gi" },
    });
  });

  it("gives NIO the seed's configuration, its data dir on an emptyDir and the SSH key Secret as in the guide", () => {
    const nio = one<DeploymentDoc>(built.base ?? [], "Deployment", "nio");
    const c = container(nio);
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    expect(Object.keys(env)).to.include.members(SEED_NIO_VARIABLES);
    expect(env).to.include({ METRICS_PORT: "8000", HEALTH_CHECK_PORT: "8080", ENABLE_LEADER_ELECTION: "true" });
    expect(env).to.include({ SSH_KEY_PATH: "/etc/ssh-key/ssh-privatekey" });
    const data = c.volumeMounts?.find((m) => (env.NIO_BASE_CONFIG_PATH ?? "").startsWith(`${m.mountPath}/`));
    expect(data, "NIO_BASE_CONFIG_PATH is on a mounted volume").to.not.equal(undefined);
    const volumes = nio.spec.template.spec.volumes ?? [];
    expect(volumes.find((v) => v.name === data?.name)?.emptyDir).to.not.equal(undefined);
    const key = c.volumeMounts?.find((m) => m.mountPath === "/etc/ssh-key");
    expect(key?.readOnly).to.equal(true);
    expect(volumes.find((v) => v.name === key?.name)?.secret).to.deep.include({
      secretName: "nixos-ssh-key",
      defaultMode: 0o600,
    });
  });

  it("sets only environment variables the operators read", async () => {
    const runtimeVars = await variablesReadBy("packages/runtime/src/config.ts");
    const known: Record<string, Set<string>> = {
      nio: new Set([...runtimeVars, ...(await variablesReadBy("packages/nio/src/config.ts"))]),
      nico: new Set([...runtimeVars, ...(await variablesReadBy("packages/nico/src/config.ts"))]),
    };
    for (const d of byKind<DeploymentDoc>(built.production ?? [], "Deployment")) {
      for (const e of container(d).env ?? []) {
        if (["NODE_ENV", "HOME"].includes(e.name)) continue;
        expect(known[d.metadata.name]?.has(e.name), `${d.metadata.name}: ${e.name} is read by the operator`).to.equal(
          true,
        );
      }
    }
  });

  it("grants each operator exactly the API access it needs: no wildcards, no cluster-admin", () => {
    const docs = built.base ?? [];
    for (const op of ["nio", "nico"]) {
      const role = one<KubeDoc & { rules: RuleDoc[] }>(docs, "ClusterRole", op);
      expect(grants(role.rules), `ClusterRole ${op}`).to.deep.equal(expand(EXPECTED_CLUSTER_RULES[op] ?? {}));
      const lease = one<KubeDoc & { rules: RuleDoc[] }>(docs, "Role", `${op}-leader-election`);
      expect(lease.metadata.namespace).to.equal(OPERATOR_NAMESPACE);
      expect(grants(lease.rules), `Role ${op}-leader-election`).to.deep.equal(expand(EXPECTED_LEASE_RULES));
    }
    for (const r of [...byKind(docs, "ClusterRole"), ...byKind(docs, "Role")]) {
      const rules = (r as KubeDoc & { rules: RuleDoc[] }).rules;
      expect(JSON.stringify(rules), `${r.kind}/${r.metadata.name}`).to.not.include('"*"');
    }
    for (const b of [...byKind(docs, "ClusterRoleBinding"), ...byKind(docs, "RoleBinding")]) {
      const binding = b as KubeDoc & {
        roleRef: { kind: string; name: string };
        subjects: { kind: string; name: string; namespace: string }[];
      };
      expect(binding.roleRef.name).to.not.match(/admin|edit/);
      expect(binding.subjects).to.have.length(1);
      expect(binding.subjects[0]).to.include({ kind: "ServiceAccount", namespace: OPERATOR_NAMESPACE });
      expect(binding.roleRef.name.startsWith(binding.subjects[0]?.name ?? "?"), binding.metadata.name).to.equal(true);
    }
  });

  it("production: two replicas, leader election, maxUnavailable 0, PDB minAvailable 1, NetworkPolicies", () => {
    const docs = built.production ?? [];
    for (const op of ["nio", "nico"]) {
      const d = one<DeploymentDoc>(docs, "Deployment", op);
      expect(d.spec.replicas, op).to.equal(2);
      expect(d.spec.strategy).to.deep.equal({
        type: "RollingUpdate",
        rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
      });
      const env = container(d).env ?? [];
      expect(env.filter((e) => e.name === "ENABLE_LEADER_ELECTION").map((e) => e.value)).to.deep.equal(["true"]);
      expect(env.find((e) => e.name === "LEADER_ELECTION_NAMESPACE")?.valueFrom).to.deep.equal({
        fieldRef: { fieldPath: "metadata.namespace" },
      });

      const pdb = one<KubeDoc & { spec: { minAvailable: number; selector: { matchLabels: object } } }>(
        docs,
        "PodDisruptionBudget",
        op,
      );
      expect(pdb.spec.minAvailable).to.equal(1);
      expect(pdb.spec.selector.matchLabels).to.deep.equal(d.spec.selector.matchLabels);

      interface Peer {
        namespaceSelector?: { matchLabels: Record<string, string> };
      }
      interface NpRule {
        from?: Peer[];
        to?: Peer[];
        ports?: { protocol: string; port: number }[];
      }
      const np = one<
        KubeDoc & {
          spec: { podSelector: { matchLabels: object }; policyTypes: string[]; ingress: NpRule[]; egress: NpRule[] };
        }
      >(docs, "NetworkPolicy", op);
      expect(np.spec.podSelector.matchLabels).to.deep.equal(d.spec.selector.matchLabels);
      expect(np.spec.policyTypes).to.have.members(["Ingress", "Egress"]);
      const egress = np.spec.egress.flatMap((r) => (r.ports ?? []).map((p) => `${p.protocol}/${p.port}`));
      expect(egress).to.include.members(["UDP/53", "TCP/53", "TCP/443", "TCP/6443", "TCP/22"]);
      const fromMonitoring = np.spec.ingress.find((r) =>
        r.from?.some((p) => p.namespaceSelector?.matchLabels["kubernetes.io/metadata.name"] === "monitoring"),
      );
      expect(fromMonitoring?.ports?.map((p) => p.port)).to.have.members([8000, 8080]);
    }
  });

  it("the nixos-anywhere component runs NIO from the Nix image variant with a writable /nix", () => {
    const docs = built[WITH_NIX] ?? [];
    const nio = one<DeploymentDoc>(docs, "Deployment", "nio");
    const c = container(nio);
    expect(c.image).to.match(/^ghcr\.io\/homystack\/nio-nico-nix:/);
    const mount = c.volumeMounts?.find((m) => m.mountPath === "/nix");
    expect(nio.spec.template.spec.volumes?.find((v) => v.name === mount?.name)?.emptyDir).to.not.equal(undefined);
    expect(c.securityContext?.readOnlyRootFilesystem).to.equal(true);
    const nicoImage = container(one<DeploymentDoc>(docs, "Deployment", "nico")).image;
    expect(nicoImage).to.match(/^ghcr\.io\/homystack\/nio-nico:/);
    expect(c.image.split(":")[1], "the Nix variant has the release tag of the main image").to.equal(
      nicoImage.split(":")[1],
    );
    // Everything else is production's.
    expect(docs.length).to.equal(built.production?.length);
  });

  it("monitoring: a ServiceMonitor for both metrics Services, the rules, and the dashboard ConfigMap", async () => {
    const docs = built.monitoring ?? [];
    expect(docs.map((d) => d.kind).sort()).to.deep.equal(["ConfigMap", "PrometheusRule", "ServiceMonitor"]);
    const sm = one<KubeDoc & { spec: { selector: { matchLabels: Record<string, string> }; jobLabel: string } }>(
      docs,
      "ServiceMonitor",
      "nio-nico",
    );
    const services = byKind(built.base ?? [], "Service").filter((s) =>
      Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v),
    );
    expect(services.map((s) => s.metadata.name).sort()).to.deep.equal(["nico-metrics", "nio-metrics"]);
    expect(services.map((s) => s.metadata.labels?.[sm.spec.jobLabel]).sort()).to.deep.equal(["nico", "nio"]);

    const cm = one<KubeDoc & { data: Record<string, string> }>(docs, "ConfigMap", "nio-nico-grafana-dashboard");
    expect(cm.metadata.labels).to.include({ grafana_dashboard: "1" });
    const dashboard = JSON.parse(cm.data["nio-nico-dashboard.json"] ?? "") as { panels: { id: number }[] };
    expect(dashboard).to.deep.equal(await grafanaDashboard());
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size, "panel ids are unique").to.equal(ids.length);

    const alerts = (await prometheusRuleGroups()).flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts).to.include.members([
      "NixOSOperatorDown",
      "HighReconciliationFailureRate",
      "SSHConnectionsCompletelyFailing",
      "NixOSBuildFailures",
      "NIOKubernetesAPIErrors",
    ]);
    expect(new Set(alerts).size, "alert names are unique").to.equal(alerts.length);
    for (const g of await prometheusRuleGroups()) {
      for (const r of g.rules) {
        expect(r.labels, r.alert).to.include({ component: "operator" });
        expect(r.labels?.severity, r.alert).to.be.oneOf(["critical", "warning", "info"]);
        expect(r.annotations, r.alert).to.have.keys("summary", "description");
      }
    }
  });

  it("Containerfile: copies every workspace manifest before the frozen install; the ignore files agree", async () => {
    const containerfile = await readFile(join(repoRoot, "Containerfile"), "utf8");
    const manifests = [
      ...(await readdir(join(repoRoot, "packages"))).map((p) => `packages/${p}/package.json`),
      "e2e/package.json",
    ];
    for (const m of manifests) {
      expect(containerfile, `Containerfile copies ${m} (pnpm install --frozen-lockfile needs every workspace project)`)
        .to.include(`COPY ${m} `)
        .and.include(`COPY --from=build /src/${m} `);
    }
    const body = async (f: string): Promise<string[]> =>
      (await readFile(join(repoRoot, f), "utf8")).split("\n").filter((l) => !l.startsWith("#"));
    expect(await body(".dockerignore")).to.deep.equal(await body(".containerignore"));
  });

  it("alerts and dashboard use only metrics the operators register", async () => {
    const used = await monitoringMetrics();
    expect(used.prometheus).to.deep.equal(["up"]);
    const nio = await registered("nio");
    const nioSeries = seriesNames(nio);
    const unknownNio = used.nio.filter((m) => !nioSeries.has(m));
    expect(unknownNio, "nio metrics named in deploy/monitoring but not registered by NIO").to.deep.equal([]);
    const nico = await registered("nico");
    const nicoSeries = seriesNames(nico);
    const unknownNico = used.nico.filter((m) => !nicoSeries.has(m));
    expect(unknownNico, "nico metrics named in deploy/monitoring but not emitted by NICO").to.deep.equal([]);

    // Every NIO metric of the seeds is on the dashboard.
    const nioFamilies = new Set(used.nio.map((m) => metricFamily(m, new Set(nio.keys()))));
    expect([...nioFamilies]).to.include.members([
      "nio_machines_total",
      "nio_machines_discoverable",
      "nio_configurations_applied_total",
      "nio_configurations_failed_total",
      "nio_reconcile_duration_seconds",
      "nio_reconcile_errors_total",
    ]);
    expect(used.nico).to.include.members(NICO_OWN_METRICS);
  });
});

describe("deploy/: on a real API server", function () {
  this.timeout(180_000);
  let tb: Testbed;
  let kubectl: string;
  let env: NodeJS.ProcessEnv;

  const k = (args: string[], input?: string): Promise<RunResult> =>
    run(kubectl, args, { env, ...(input !== undefined ? { input } : {}), timeoutMs: 120_000 });
  const kOk = async (args: string[]): Promise<string> => {
    const res = await k(args);
    expect(res.code, `kubectl ${args.join(" ")}:\n${res.stderr}${res.stdout}`).to.equal(0);
    return res.stdout;
  };

  before(async () => {
    tb = await startTestbed({ hosts: 1 });
    kubectl = tb.binaries.kubectl;
    env = { ...process.env, KUBECONFIG: tb.controlPlane.kubeconfigPath };
    // CRDs must exist for real before custom resources can be dry-run, and namespaced objects need their namespace.
    await kOk(["apply", "-f", join(deployDir, "test-crds/monitoring.coreos.com.yaml")]);
    await kOk(["apply", "-f", join(deployDir, "base/namespace.yaml")]);
    await kOk([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/servicemonitors.monitoring.coreos.com",
      "crd/prometheusrules.monitoring.coreos.com",
    ]);
  });
  after(async () => tb?.stop());

  const dryRun = async (overlay: string): Promise<void> => {
    const objects = await kustomize(kubectl, overlay);
    for (const mode of [[], ["--server-side", "--field-manager=deploy-test"]]) {
      const out = await kOk(["apply", "--dry-run=server", ...mode, "-k", overlayDir(overlay), "-o", "name"]);
      const names = out.trim().split("\n").filter(Boolean);
      expect(names, `${mode.join(" ") || "client-side"} apply of ${overlay}`).to.have.length(objects.length);
    }
  };

  for (const overlay of OVERLAYS) {
    it(`accepts every object of deploy/${overlay} (server-side dry run, client- and server-side apply)`, async () => {
      await dryRun(overlay);
    });
  }

  it(`accepts every object of deploy/${WITH_NIX} (server-side dry run)`, async () => {
    const dir = await overlayWithComponent("production", "nixos-anywhere");
    try {
      await dryRun(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("parses every alert rule with promtool, and the alerts fire on the failures they describe", async function () {
    const promtool = await findPromtool();
    if (!promtool) {
      console.log(
        "    (skipped: promtool is not on PATH nor in the testbed cache; scripts/install-deps.sh fetches it)",
      );
      this.skip();
    }
    const dir = await mkdtemp(join(tmpdir(), "deploy-rules-"));
    try {
      const groups = await prometheusRuleGroups();
      await writeFile(join(dir, "rules.yaml"), stringify({ groups }));
      const check = await run(promtool, ["check", "rules", join(dir, "rules.yaml")]);
      expect(check.code, check.stderr + check.stdout).to.equal(0);
      const count = groups.reduce((n, g) => n + g.rules.length, 0);
      expect(check.stdout).to.include(`SUCCESS: ${count} rules found`);

      // Every dashboard query parses too: as a recording rule each.
      const queries = (await monitoringExpressions()).filter((e) => e.where.startsWith("panel"));
      const dashGroups = [
        { name: "dashboard", rules: queries.map((q, i) => ({ record: `dashboard:q${i}`, expr: q.expr })) },
      ];
      await writeFile(join(dir, "dashboard.yaml"), stringify({ groups: dashGroups }));
      const dash = await run(promtool, ["check", "rules", join(dir, "dashboard.yaml")]);
      expect(dash.code, dash.stderr + dash.stdout).to.equal(0);

      await writeFile(join(dir, "alerts.test.yaml"), stringify(alertScenarios(groups)));
      const test = await run(promtool, ["test", "rules", join(dir, "alerts.test.yaml")]);
      expect(test.code, test.stderr + test.stdout).to.equal(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe("RBAC applied for real", () => {
    const nio = `system:serviceaccount:${OPERATOR_NAMESPACE}:nio`;
    const nico = `system:serviceaccount:${OPERATOR_NAMESPACE}:nico`;

    before(async () => {
      await kOk(["apply", "-k", join(deployDir, "base")]);
    });

    /** `kubectl auth can-i` as the ServiceAccount (the admin impersonates it). */
    async function canI(as: string, verb: string, resource: string, where = "-A"): Promise<boolean> {
      const [res, sub] = resource.split("/");
      const args = ["auth", "can-i", verb, res ?? resource, `--as=${as}`, ...where.split(" ")];
      if (sub) args.push(`--subresource=${sub}`);
      const out = await k(args);
      expect(out.stdout.trim(), `can-i ${args.join(" ")}: ${out.stderr}`).to.be.oneOf(["yes", "no"]);
      return out.stdout.trim() === "yes";
    }

    const own = `-n ${OPERATOR_NAMESPACE}`;
    const cases: [string, string, string, string, boolean][] = [
      ["nio", "list", "machines.nio.homystack.com", "-A", true],
      ["nio", "watch", "nixosconfigurations.nio.homystack.com", "-A", true],
      ["nio", "patch", "machines.nio.homystack.com", "-n default", true],
      ["nio", "update", "nixosconfigurations.nio.homystack.com/status", "-n default", true],
      ["nio", "update", "machines.nio.homystack.com/finalizers", "-n default", true],
      ["nio", "list", "secrets", "-A", true],
      ["nio", "create", "events", "-n default", true],
      ["nio", "create", "events.events.k8s.io", "-n default", true],
      ["nio", "update", "leases.coordination.k8s.io", own, true],
      ["nio", "create", "leases.coordination.k8s.io", own, true],
      ["nio", "delete", "secrets", "-n default", false],
      ["nio", "create", "secrets", "-n default", false],
      ["nio", "create", "machines.nio.homystack.com", "-n default", false],
      ["nio", "delete", "nixosconfigurations.nio.homystack.com", "-n default", false],
      ["nio", "get", "kubernetesclusters.nico.homystack.com", "-A", false],
      ["nio", "list", "configmaps", "-A", false],
      ["nio", "update", "leases.coordination.k8s.io", "-n default", false],
      ["nio", "create", "clusterrolebindings.rbac.authorization.k8s.io", "-A", false],
      ["nio", "create", "pods", "-n default", false],
      ["nio", "*", "*", "-A", false],
      ["nico", "create", "nixosconfigurations.nio.homystack.com", "-n default", true],
      ["nico", "delete", "nixosconfigurations.nio.homystack.com", "-n default", true],
      ["nico", "update", "kubernetesclusters.nico.homystack.com/status", "-n default", true],
      ["nico", "update", "kubernetesclusters.nico.homystack.com/finalizers", "-n default", true],
      ["nico", "patch", "machines.nio.homystack.com", "-n default", true],
      ["nico", "create", "secrets", "-n default", true],
      ["nico", "create", "configmaps", "-n default", true],
      ["nico", "get", "leases.coordination.k8s.io", own, true],
      ["nico", "update", "machines.nio.homystack.com/status", "-n default", false],
      ["nico", "update", "nixosconfigurations.nio.homystack.com/status", "-n default", false],
      ["nico", "delete", "machines.nio.homystack.com", "-n default", false],
      ["nico", "create", "kubernetesclusters.nico.homystack.com", "-n default", false],
      ["nico", "create", "clusterrolebindings.rbac.authorization.k8s.io", "-A", false],
      ["nico", "bind", "clusterroles.rbac.authorization.k8s.io", "-A", false],
      ["nico", "impersonate", "serviceaccounts", "-A", false],
      ["nico", "*", "*", "-A", false],
    ];

    it(`answers ${cases.length} can-i questions as the RBAC intends`, async () => {
      const wrong: string[] = [];
      for (const [op, verb, resource, where, allowed] of cases) {
        const got = await canI(op === "nio" ? nio : nico, verb, resource, where);
        if (got !== allowed) wrong.push(`${op} ${verb} ${resource} ${where}: ${got ? "allowed" : "denied"}`);
      }
      expect(wrong).to.deep.equal([]);
    });

    it("holds for a real token of the nio ServiceAccount", async () => {
      const token = await tb.controlPlane.mintServiceAccountToken(OPERATOR_NAMESPACE, "nio", 600);
      const kubeconfig = join(tb.dir, "nio-sa.kubeconfig");
      await tb.controlPlane.writeKubeconfig(kubeconfig, "nio-sa", token);
      const asNio = (args: string[]): Promise<RunResult> => run(kubectl, [`--kubeconfig=${kubeconfig}`, ...args]);

      const whoami = await asNio(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
      expect(whoami.stdout).to.equal(nio);
      for (const args of [
        ["get", "machines.nio.homystack.com", "-A"],
        ["get", "nixosconfigurations.nio.homystack.com", "-A"],
        ["get", "secrets", "-A"],
        ["get", "leases.coordination.k8s.io", "nio-leader", "-n", OPERATOR_NAMESPACE, "--ignore-not-found"],
      ]) {
        const res = await asNio(args);
        expect(res.code, `${args.join(" ")}: ${res.stderr}`).to.equal(0);
      }
      for (const args of [
        ["delete", "secret", "anything", "-n", "default"],
        ["create", "secret", "generic", "stolen", "-n", "default", "--from-literal=a=b"],
        [
          "create",
          "clusterrolebinding",
          "escalate",
          "--clusterrole=cluster-admin",
          `--serviceaccount=${OPERATOR_NAMESPACE}:nio`,
        ],
        ["get", "configmaps", "-A"],
        ["get", "leases.coordination.k8s.io", "-n", "default"],
      ]) {
        const res = await asNio(args);
        expect(res.code, args.join(" ")).to.not.equal(0);
        expect(res.stderr, args.join(" ")).to.match(/forbidden/i);
      }
    });

    /** An operator process running from the repository's build, as its ServiceAccount (a minted token). */
    interface Running {
      metricsPort: number;
      healthPort: number;
      log(): string;
      /** Waits for `check`, failing with the operator's log. */
      until<T>(what: string, check: () => Promise<T | undefined>): Promise<T>;
      stop(): Promise<void>;
    }

    async function runOperator(op: "nio" | "nico", extraEnv: Record<string, string>): Promise<Running> {
      const token = await tb.controlPlane.mintServiceAccountToken(OPERATOR_NAMESPACE, op, 600);
      const kubeconfig = join(tb.dir, `${op}-run.kubeconfig`);
      await tb.controlPlane.writeKubeconfig(kubeconfig, `${op}-run`, token);
      const [metricsPort, healthPort] = [await freePort(), await freePort()];
      const proc = spawn(process.execPath, [`packages/${op}/dist/src/main.js`], {
        cwd: repoRoot,
        env: {
          PATH: process.env.PATH,
          KUBECONFIG: kubeconfig,
          POD_NAME: `${op}-deploy-test`,
          POD_NAMESPACE: OPERATOR_NAMESPACE,
          LEADER_ELECTION_NAMESPACE: OPERATOR_NAMESPACE,
          METRICS_PORT: String(metricsPort),
          HEALTH_CHECK_PORT: String(healthPort),
          BIND_ADDRESS: "127.0.0.1",
          LOG_LEVEL: "debug",
          ...extraEnv,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let log = "";
      proc.stdout.on("data", (d: Buffer) => (log += d.toString("utf8")));
      proc.stderr.on("data", (d: Buffer) => (log += d.toString("utf8")));
      const exited = new Promise((resolve) => proc.once("exit", resolve));
      return {
        metricsPort,
        healthPort,
        log: () => log,
        until: (what, check) =>
          waitFor(what, check, { timeoutMs: 60_000, intervalMs: 250 }).catch((err: Error) =>
            Promise.reject(new Error(`${err.message}\n${op} log:\n${log}`)),
          ),
        stop: async () => {
          if (proc.exitCode === null) proc.kill("SIGTERM");
          await exited;
        },
      };
    }

    const output = async (args: string[]): Promise<string | undefined> => {
      const res = await k(["get", ...args]);
      return res.code === 0 && res.stdout.trim() !== "" ? res.stdout.trim() : undefined;
    };

    /** Leads, turns ready, exposes every metric deploy/monitoring names, and was never refused by the API server. */
    async function checkRunning(op: "nio" | "nico", r: Running): Promise<string> {
      const holder = await r.until(`the Lease ${op}-leader`, () =>
        output(["lease", `${op}-leader`, "-n", OPERATOR_NAMESPACE, "-o", "jsonpath={.spec.holderIdentity}"]),
      );
      expect(holder).to.match(new RegExp(`^${op}-deploy-test_`));
      await r.until("/ready", async () =>
        (await fetch(`http://127.0.0.1:${r.healthPort}/ready`)).ok ? true : undefined,
      );
      const exposition = await (await fetch(`http://127.0.0.1:${r.metricsPort}/metrics`)).text();
      const types = new Map(
        [...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]),
      );
      const histograms = new Set([...types].filter(([, t]) => t === "histogram").map(([n]) => n));
      const missing = (await monitoringMetrics())[op].filter((m) => !types.has(metricFamily(m, histograms)));
      expect(missing, `metrics named in deploy/monitoring missing from ${op}'s /metrics`).to.deep.equal([]);
      expect(r.log(), `no request of ${op} was refused by RBAC`).to.not.match(/forbidden|"code":403/i);
      return exposition;
    }

    it("runs NIO under the nio ServiceAccount: it leads, reconciles a Machine, records an Event, nothing is forbidden", async () => {
      await kOk([
        "create",
        "secret",
        "generic",
        "deploy-test-key",
        "-n",
        "default",
        `--from-file=ssh-privatekey=${tb.operatorKey.privateKeyPath}`,
      ]);
      // A Machine on the testbed's simulated host: NIO connects, records its host key (a status write and an Event).
      const host = tb.fleet.hosts[0];
      if (!host) throw new Error("the testbed has no host");
      const machine = {
        apiVersion: "nio.homystack.com/v1alpha1",
        kind: "Machine",
        metadata: { name: "deploy-test", namespace: "default" },
        spec: {
          hostname: "deploy-test",
          ipAddress: host.address,
          sshPort: host.port,
          sshKeySecretRef: { name: "deploy-test-key" },
        },
      };
      const created = await k(["apply", "-f", "-"], JSON.stringify(machine));
      expect(created.code, created.stderr).to.equal(0);

      const dataDir = await mkdtemp(join(tmpdir(), "deploy-nio-"));
      const nio = await runOperator("nio", {
        NIO_WEBHOOK_PORT: "0",
        NIO_BASE_CONFIG_PATH: dataDir,
        NIO_SSH_CONNECT_TIMEOUT: "2",
      });
      try {
        const reachable = await nio.until("the Machine's Reachable condition", () =>
          output([
            "machine.nio.homystack.com",
            "deploy-test",
            "-n",
            "default",
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Reachable")].status}',
          ]),
        );
        expect(reachable).to.equal("True");
        await nio.until("an Event about the Machine", () =>
          output(["events", "-n", "default", "--field-selector=involvedObject.name=deploy-test", "-o", "name"]),
        );
        const exposition = await checkRunning("nio", nio);
        expect(exposition).to.match(/^nio_ssh_connections_total\{result="success"\} [1-9]/m);
      } finally {
        await nio.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    });

    it("runs NICO under the nico ServiceAccount: its informers sync, it leads, nothing is forbidden", async () => {
      const nico = await runOperator("nico", {});
      try {
        await checkRunning("nico", nico);
      } finally {
        await nico.stop();
      }
    });
  });
});

interface PromSeries {
  series: string;
  values: string;
}

/**
 * promtool unit tests for the alert expressions: for each scenario, how many series the expression yields at `at`
 * (count(expr); 0 means it does not fire). `for:` durations are Prometheus' own business and are not re-tested.
 */
function alertScenarios(groups: { rules: { alert?: string; expr: string }[] }[]): object {
  const exprOf = (alert: string): string => {
    const r = groups.flatMap((g) => g.rules).find((x) => x.alert === alert);
    if (!r) throw new Error(`no alert ${alert}`);
    return r.expr;
  };
  const up = (job: string, values: string): PromSeries => ({
    series: `up{job="${job}", namespace="${OPERATOR_NAMESPACE}", pod="${job}-0"}`,
    values,
  });
  const s = (series: string, values: string): PromSeries => ({ series, values });
  const scenarios: { alert: string; series: PromSeries[]; fires: number; at?: string }[] = [
    { alert: "NixOSOperatorDown", series: [up("nio", "0x20")], fires: 1 },
    { alert: "NixOSOperatorDown", series: [up("nico", "1x20")], fires: 1 },
    { alert: "NixOSOperatorDown", series: [up("nio", "1x20")], fires: 0 },
    { alert: "NICOOperatorDown", series: [up("nio", "1x20")], fires: 1 },
    {
      alert: "NIONoLeader",
      series: [up("nio", "1x20"), s('nio_leader_election_status{job="nio", name="nio-leader"}', "0x20")],
      fires: 1,
    },
    { alert: "NIONoLeader", series: [up("nio", "1x20")], fires: 1 },
    {
      alert: "NIONoLeader",
      series: [up("nio", "1x20"), s('nio_leader_election_status{job="nio", name="nio-leader"}', "1x20")],
      fires: 0,
    },
    {
      alert: "HighReconciliationFailureRate",
      series: [
        s('nio_reconcile_total{job="nio", controller="machine", result="error"}', "0+5x20"),
        s('nio_reconcile_total{job="nio", controller="machine", result="success"}', "0+5x20"),
        s('nio_reconcile_errors_total{job="nio", controller="machine", reason="Unreachable"}', "0+5x20"),
        s('nio_reconcile_total{job="nio", controller="nixosconfiguration", result="success"}', "0+10x20"),
      ],
      fires: 1,
    },
    {
      alert: "HighReconciliationFailureRate",
      series: [s('nio_reconcile_total{job="nio", controller="machine", result="success"}', "0+10x20")],
      fires: 0,
    },
    {
      alert: "SSHConnectionsCompletelyFailing",
      series: [s('nio_ssh_connections_total{job="nio", result="unreachable"}', "0+3x20")],
      fires: 1,
    },
    {
      alert: "SSHConnectionsCompletelyFailing",
      series: [
        s('nio_ssh_connections_total{job="nio", result="unreachable"}', "0+3x20"),
        s('nio_ssh_connections_total{job="nio", result="success"}', "0+1x20"),
      ],
      fires: 0,
    },
    {
      alert: "SSHConnectionsCompletelyFailing",
      series: [s('nio_ssh_connections_total{job="nio", result="success"}', "5x20")],
      fires: 0,
    },
    {
      alert: "NixOSBuildFailures",
      series: [
        s('nio_nixos_builds_total{job="nio", mode="switch", result="failure"}', "0+2x20"),
        s('nio_nixos_builds_total{job="nio", mode="switch", result="success"}', "0+1x20"),
        s('nio_nixos_builds_total{job="nio", mode="install", result="success"}', "0+1x20"),
      ],
      fires: 1,
    },
    {
      alert: "NixOSConfigurationApplyFailures",
      series: [
        s('nio_configurations_applied_total{job="nio"}', "0x40"),
        s('nio_configurations_failed_total{job="nio", reason="ApplyFailed"}', "0+1x40"),
      ],
      fires: 1,
      at: "35m",
    },
    {
      alert: "NIOMachinesUnreachable",
      series: [s('nio_machines_total{job="nio"}', "5x20"), s('nio_machines_discoverable{job="nio"}', "3x20")],
      fires: 1,
    },
    {
      alert: "NIOMachinesUnreachable",
      series: [s('nio_machines_total{job="nio"}', "5x20"), s('nio_machines_discoverable{job="nio"}', "5x20")],
      fires: 0,
    },
    {
      alert: "NICOClustersNotHealthy",
      series: [
        s('nico_clusters_total{job="nico", phase="Ready"}', "3x20"),
        s('nico_clusters_total{job="nico", phase="Degraded"}', "1x20"),
        s('nico_clusters_total{job="nico", phase="Failed"}', "0x20"),
      ],
      fires: 1,
    },
    {
      alert: "NICOClusterNodesNotReady",
      series: [
        s('nico_cluster_nodes{job="nico", cluster="prod", role="worker", state="ready"}', "2x20"),
        s('nico_cluster_nodes{job="nico", cluster="prod", role="worker", state="notready"}', "1x20"),
        s('nico_cluster_nodes{job="nico", cluster="lab", role="worker", state="ready"}', "3x20"),
        s('nico_cluster_nodes{job="nico", cluster="lab", role="worker", state="notready"}', "0x20"),
      ],
      fires: 1,
    },
  ];
  return {
    rule_files: [],
    evaluation_interval: "1m",
    tests: scenarios.map((sc) => ({
      interval: "1m",
      input_series: sc.series,
      promql_expr_test: [
        {
          expr: `count((${exprOf(sc.alert)}))`,
          eval_time: sc.at ?? "15m",
          exp_samples: sc.fires > 0 ? [{ labels: "{}", value: sc.fires }] : [],
        },
      ],
    })),
  };
}

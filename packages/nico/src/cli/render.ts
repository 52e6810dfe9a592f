/**
 * `nico render`: renders the cluster.nix NICO would render for a KubernetesCluster into a copy of a flake directory.
 * Reads the cluster, its namespace's Machines and their SSH key Secrets (API or YAML file), selects the nodes as the
 * operator does (planSelection, buildTopology), validates the topology, and only then touches the filesystem.
 *
 * A short control plane is an error (the operator provisions nothing then); a short data plane is a warning and the
 * workers available are rendered (what the operator would render now).
 */
import { DEFAULT_SSH_KEY_SECRET_KEY } from "@nio/api";
import { createKube, loadKubeConfig } from "@nio/runtime";
import {
  CLUSTER_NIX,
  describeTopologyErrors,
  publicKeyFromPrivate,
  renderClusterNix,
  validateTopology,
  type ClusterTopology,
} from "../render/index.js";
import type { MachineObject } from "../resources.js";
import { planSelection, type SelectionPlan } from "../selection/select.js";
import { buildTopology } from "../topology.js";
import { RENDER_USAGE, UsageError, parseRenderArgs, type RenderOptions, type RenderSource } from "./args.js";
import { copyFlake, writeOutputFile } from "./flake-copy.js";
import { loadFromApi, loadFromFile, type RenderInputs } from "./inputs.js";

/** Where the command writes; `process.stdout`/`process.stderr` fit. */
export interface CliIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
}

/** A problem with the cluster's objects that stops rendering (exit code 1); the message names the field. */
export class RenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RenderError";
  }
}

export interface RenderResult {
  /** `namespace/name` of the cluster. */
  cluster: string;
  origin: string;
  topology: ClusterTopology;
  /** Absolute path of the written cluster.nix. */
  path: string;
  /** Entries copied from the flake directory. */
  copied: number;
}

/** Runs `nico render <argv>` (the arguments after `render`); returns the exit code: 0 ok, 1 error, 2 usage. */
export async function runRenderCommand(argv: string[], io: CliIo): Promise<number> {
  let opts: RenderOptions;
  try {
    const parsed = parseRenderArgs(argv);
    if (parsed.help) {
      io.stdout.write(RENDER_USAGE);
      return 0;
    }
    opts = parsed;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`nico render: ${err.message}\n\n${RENDER_USAGE}`);
    return 2;
  }
  const warnings: string[] = [];
  try {
    const result = await renderToDirectory(opts, warnings);
    flushWarnings(io, warnings);
    io.stdout.write(summary(result));
    return 0;
  } catch (err) {
    flushWarnings(io, warnings);
    io.stderr.write(`nico render: error: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

function flushWarnings(io: CliIo, warnings: string[]): void {
  for (const w of warnings.splice(0)) io.stderr.write(`nico render: warning: ${w}\n`);
}

async function loadInputs(source: RenderSource, warnings: string[]): Promise<RenderInputs & { close(): void }> {
  if (source.kind === "file") {
    const inputs = await loadFromFile(source.file, source.cluster, source.namespace);
    warnings.push(...inputs.warnings);
    return { ...inputs, close: () => undefined };
  }
  const kube = createKube(loadKubeConfig(source.kubeconfig), { userAgent: "nico-render" });
  try {
    const inputs = await loadFromApi(kube, source.namespace, source.cluster);
    warnings.push(...inputs.warnings);
    return { ...inputs, close: () => kube.close() };
  } catch (err) {
    kube.close();
    throw err;
  }
}

/**
 * Renders the cluster described by `opts.source` into `opts.out`. Warnings (skipped symlinks, machines without a
 * key, a short data plane) are appended to `warnings`. Throws on any error, before writing anything when the problem
 * is in the objects.
 */
export async function renderToDirectory(opts: RenderOptions, warnings: string[]): Promise<RenderResult> {
  const inputs = await loadInputs(opts.source, warnings);
  let topology: ClusterTopology;
  try {
    topology = await topologyOf(inputs, warnings);
  } finally {
    inputs.close();
  }
  const text = renderClusterNix(topology);
  const copy = await copyFlake(opts.flake, opts.out, { force: opts.force });
  warnings.push(...copy.warnings);
  const path = await writeOutputFile(copy.out, CLUSTER_NIX, text);
  const { namespace, name } = inputs.cluster.metadata;
  return { cluster: `${namespace ?? ""}/${name ?? ""}`, origin: inputs.origin, topology, path, copied: copy.entries };
}

async function topologyOf(inputs: RenderInputs, warnings: string[]): Promise<ClusterTopology> {
  const plan = planSelection(inputs.cluster, inputs.machines);
  checkShortages(plan, warnings);
  const nodes = [...plan.controlPlane, ...plan.workers];
  const keys = await privateKeys(inputs, nodes, warnings);
  const initialized = inputs.cluster.status?.initialized ?? false;
  const topology = buildTopology(inputs.cluster, plan, initialized, (m) => keys.get(m.metadata.name ?? ""));
  const errors = validateTopology(topology);
  if (errors.length > 0) {
    throw new RenderError(
      `cluster.nix cannot be rendered:\n  ${describeTopologyErrors(errors, topology).join("\n  ")}`,
    );
  }
  return topology;
}

/** The spec field a shortage message of planSelection is about (control plane first, when it is short). */
function shortageFields(plan: SelectionPlan): [string, string][] {
  return plan.shortages.map((s, i) => [i === 0 && plan.controlPlaneShort ? "spec.controlPlane" : "spec.dataPlane", s]);
}

function checkShortages(plan: SelectionPlan, warnings: string[]): void {
  const lines = shortageFields(plan).map(([field, s]) => `${field}: ${s}`);
  if (plan.controlPlaneShort) throw new RenderError(lines.join("\n"));
  for (const line of lines) warnings.push(`${line} (rendering the ${plan.workers.length} available)`);
}

/**
 * The SSH private key of every node that has one. A missing Secret or key is a warning (one per Secret, naming its
 * Machines); a key that gives no public key is an error.
 */
async function privateKeys(
  inputs: RenderInputs,
  nodes: readonly MachineObject[],
  warnings: string[],
): Promise<Map<string, Buffer>> {
  const keys = new Map<string, Buffer>();
  const missing = new Map<string, string[]>();
  const namespace = inputs.cluster.metadata.namespace ?? "";
  const without = nodes.filter((m) => !m.spec.sshKeySecretRef).map((m) => m.metadata.name ?? "");
  if (without.length > 0) {
    warnings.push(`no spec.sshKeySecretRef on Machine ${without.join(", ")}: no authorized key from them`);
  }
  for (const m of nodes) {
    const ref = m.spec.sshKeySecretRef;
    if (!ref) continue;
    const name = m.metadata.name ?? "";
    const key = ref.key ?? DEFAULT_SSH_KEY_SECRET_KEY;
    const secret = await inputs.secret(ref.name);
    const value = secret?.data?.[key];
    if (value === undefined) {
      const problem = secret
        ? `Secret ${namespace}/${ref.name} has no key ${key}`
        : `Secret ${namespace}/${ref.name} not found`;
      missing.set(problem, [...(missing.get(problem) ?? []), name]);
      continue;
    }
    const buf = Buffer.from(value, "base64");
    try {
      publicKeyFromPrivate(buf);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new RenderError(
        `Machine ${name} spec.sshKeySecretRef: Secret ${namespace}/${ref.name} key ${key}: ${message}`,
      );
    }
    keys.set(name, buf);
  }
  for (const [problem, machines] of missing) {
    warnings.push(`${problem} (spec.sshKeySecretRef of Machine ${machines.join(", ")}): no authorized key from them`);
  }
  return keys;
}

function nodeLines(role: string, nodes: ClusterTopology["controlPlane"]): string[] {
  if (nodes.length === 0) return [`  ${role}: none`];
  const width = Math.max(...nodes.map((n) => n.name.length));
  return [`  ${role}:`, ...nodes.map((n) => `    ${n.name.padEnd(width)}  ${n.ip}`)];
}

function summary(r: RenderResult): string {
  const t = r.topology;
  const lines = [
    `KubernetesCluster ${r.cluster} (from ${r.origin}):`,
    ...nodeLines("control plane (first node bootstraps the cluster)", t.controlPlane),
    ...nodeLines("workers", t.workers),
    `  vip: ${t.vip ?? "none"}; initialized: ${String(t.initialized)}; authorized keys: ${new Set(t.authorizedKeys).size}`,
    `Wrote ${r.path} (flake copied: ${r.copied} entries)`,
  ];
  return `${lines.join("\n")}\n`;
}

/**
 * The demo's live view of a cluster: pure functions that turn what the API server holds (the KubernetesCluster, its
 * NixosConfigurations and the namespace's Machines) into table rows and text, and a writer that shows them.
 *
 * On a terminal the writer redraws the table in place with a spinner; anywhere else (CI logs, a pipe) it prints a new
 * table only when something in it changed, without escape codes.
 */
import { LABELS, type KubernetesCluster } from "@nio/api";
import type { ConfigObject, MachineObject } from "@nio/nio";
import type { KubeObject } from "@nio/runtime";

export type ClusterObject = KubernetesCluster & KubeObject;

/** What the view is computed from: one consistent read of the cluster's world. */
export interface Snapshot {
  /** Undefined once the cluster is gone (or before it exists). */
  cluster?: ClusterObject;
  /** The cluster's NixosConfigurations (label nico.homystack.com/cluster). */
  configurations: readonly ConfigObject[];
  /** Every Machine of the namespace: claimed ones are nodes, the others show as free. */
  machines: readonly MachineObject[];
}

export interface NodeRow {
  machine: string;
  /** control-plane, worker, or "-" for a machine no cluster claims. */
  role: string;
  /** The node's NixosConfiguration and the flake attribute it applies, or "-". */
  configuration: string;
  phase: string;
  /** Short (7 hex digits) commit the node last applied completely, or "-". */
  appliedCommit: string;
}

export const COLUMNS: readonly { key: keyof NodeRow; title: string }[] = [
  { key: "machine", title: "MACHINE" },
  { key: "role", title: "ROLE" },
  { key: "configuration", title: "CONFIGURATION" },
  { key: "phase", title: "PHASE" },
  { key: "appliedCommit", title: "APPLIED" },
];

export const short = (commit: string | undefined): string => (commit ? commit.slice(0, 7) : "-");

function readyCondition(c: ConfigObject): { status: string; reason: string; observedGeneration?: number } | undefined {
  return c.status?.conditions?.find((x) => x.type === "Ready");
}

/** The phase of a node whose NixosConfiguration exists, in words a person reads at a glance. */
export function configurationPhase(c: ConfigObject): string {
  const attempt = c.status?.lastAttempt;
  if (c.metadata.deletionTimestamp) return c.spec.onRemoveFlake ? `removing (${c.spec.onRemoveFlake})` : "removing";
  if (attempt?.result === "InProgress") return `applying ${short(attempt.commit)}`;
  if (c.spec.suspend) return "waiting (rollout order)";
  const ready = readyCondition(c);
  const current = ready?.observedGeneration === undefined || ready.observedGeneration === c.metadata.generation;
  if (ready?.status === "True" && current && c.status?.appliedCommit === c.spec.ref) return "Ready";
  if (ready?.status === "False" && current && ready.reason !== "Progressing") return `not ready: ${ready.reason}`;
  return "pending";
}

/** The phase of a Machine without a configuration: free, claimed, or (while its cluster is deleted) cleaned up. */
function machinePhase(m: MachineObject, cluster: ClusterObject | undefined): string {
  const owner = m.metadata.labels?.[LABELS.cluster];
  if (owner === undefined) return "free";
  if (cluster === undefined || owner !== cluster.metadata.name) return `claimed by ${owner}`;
  // A node's configuration goes only after its onRemoveFlake was applied; the claim goes last.
  return cluster.metadata.deletionTimestamp ? "cleaned up, claim held" : "claimed";
}

const ROLE_ORDER: Record<string, number> = { "control-plane": 0, worker: 1 };

interface Ordered extends NodeRow {
  order: [number, number, string];
}

/**
 * One row per Machine of the namespace, and one per configuration whose Machine is missing: the cluster's nodes
 * first in rollout order (control plane by index, then workers), then the other machines by name.
 */
export function nodeRows(s: Snapshot): NodeRow[] {
  const nodes = new Map((s.cluster?.status?.nodes ?? []).map((n) => [n.machine, n]));
  const configs = new Map(s.configurations.map((c) => [c.spec.machineRef.name, c]));
  const names = new Set([...s.machines.map((m) => m.metadata.name ?? ""), ...configs.keys()]);
  const machines = new Map(s.machines.map((m) => [m.metadata.name ?? "", m]));
  const rows: Ordered[] = [];
  for (const name of names) {
    const node = nodes.get(name);
    const config = configs.get(name);
    const machine = machines.get(name);
    const claimed = machine?.metadata.labels?.[LABELS.cluster] !== undefined;
    const role =
      node?.role ??
      config?.metadata.labels?.[LABELS.role] ??
      (claimed ? machine?.metadata.labels?.[LABELS.role] : undefined) ??
      "-";
    rows.push({
      machine: name,
      role,
      configuration: config ? `${config.metadata.name ?? ""} ${config.spec.flake}` : "-",
      phase: config ? configurationPhase(config) : machine ? machinePhase(machine, s.cluster) : "-",
      appliedCommit: short(config?.status?.appliedCommit ?? (claimed ? machine?.status?.appliedCommit : undefined)),
      order: [ROLE_ORDER[role] ?? 2, node?.index ?? Number.MAX_SAFE_INTEGER, name],
    });
  }
  rows.sort((a, b) => a.order[0] - b.order[0] || a.order[1] - b.order[1] || a.order[2].localeCompare(b.order[2]));
  return rows.map(({ order: _order, ...row }) => row);
}

/** One line about the cluster: phase, ready counts, the commit it rolls out. */
export function clusterLine(s: Snapshot, name: string): string {
  const c = s.cluster;
  if (!c) return `KubernetesCluster ${name}: gone`;
  const st = c.status ?? {};
  const parts = [
    `KubernetesCluster ${c.metadata.name ?? name}: ${c.metadata.deletionTimestamp ? "Deleting" : (st.phase ?? "-")}`,
    `control plane ${st.controlPlaneReady ?? "-"}`,
    `workers ${st.dataPlaneReady ?? "-"}`,
    `commit ${short(st.commit)}`,
  ];
  return parts.join("  ");
}

/** Rows as an aligned text table (header first). */
export function formatTable(rows: readonly NodeRow[], indent = "  "): string[] {
  const widths = COLUMNS.map(({ key, title }) => Math.max(title.length, ...rows.map((r) => r[key].length)));
  const line = (cells: string[]): string =>
    indent +
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(COLUMNS.map((c) => c.title)), ...rows.map((r) => line(COLUMNS.map((c) => r[c.key])))];
}

/** What a view shows: a title line and body lines (the table). */
export interface Frame {
  title: string;
  lines: string[];
}

export function snapshotFrame(s: Snapshot, name: string): Frame {
  return { title: clusterLine(s, name), lines: formatTable(nodeRows(s)) };
}

export const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

export const formatSeconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The text of a frame for a terminal: spinner and elapsed time on the title line. */
export function ttyFrameText(frame: Frame, tick: number, elapsedMs: number): string[] {
  const spin = SPINNER[tick % SPINNER.length] ?? "*";
  return [`${spin} ${frame.title}  (${formatSeconds(elapsedMs)})`, ...frame.lines];
}

/** The text of a frame for a log: a timestamp relative to the start instead of a spinner. */
export function plainFrameText(frame: Frame, elapsedMs: number): string[] {
  return [`[${formatSeconds(elapsedMs).padStart(7)}] ${frame.title}`, ...frame.lines];
}

/** Where the view goes: `process.stdout` fits. */
export interface Output {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface LiveViewOptions {
  /** Redraw in place with a spinner (default: `out.isTTY`). */
  tty?: boolean;
  /** Milliseconds between spinner frames on a terminal (default 100; 0 leaves the spinner still). */
  spinIntervalMs?: number;
  now?: () => number;
}

/**
 * Shows frames: in place on a terminal (the previous frame is erased with ANSI cursor movements and the spinner turns
 * on a timer), or as plain blocks of text when the content changed (nothing is printed for an identical frame).
 */
export class LiveView {
  readonly tty: boolean;
  private readonly now: () => number;
  private readonly started: number;
  private frame: Frame | undefined;
  private lastKey: string | undefined;
  private drawnLines = 0;
  private tick = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: Output,
    opts: LiveViewOptions = {},
  ) {
    this.tty = opts.tty ?? out.isTTY === true;
    this.now = opts.now ?? Date.now;
    this.started = this.now();
    const interval = opts.spinIntervalMs ?? 100;
    if (this.tty && interval > 0) {
      this.timer = setInterval(() => {
        this.tick++;
        this.draw();
      }, interval);
      this.timer.unref();
    }
  }

  /** Shows a new frame (on a terminal at once; in a log only when it differs from the last one printed). */
  update(frame: Frame): void {
    this.frame = frame;
    if (this.tty) {
      this.draw();
      return;
    }
    const key = JSON.stringify(frame);
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.out.write(plainFrameText(frame, this.now() - this.started).join("\n") + "\n\n");
  }

  /** Stops the spinner and leaves the last frame on screen (with a tick mark on a terminal). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty && this.frame) this.draw("✔");
  }

  private draw(mark?: string): void {
    if (!this.frame) return;
    const text = ttyFrameText(this.frame, this.tick, this.now() - this.started);
    if (mark) text[0] = mark + (text[0] ?? "").slice(1);
    const up = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A` : "";
    // Clear each line as it is rewritten, then anything below left over from a longer previous frame.
    this.out.write(up + text.map((l) => `\x1b[2K${l}`).join("\n") + "\n\x1b[J");
    this.drawnLines = text.length;
  }
}

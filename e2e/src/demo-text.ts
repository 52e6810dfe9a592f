// Pure text helpers of `make demo`: section headings, the redacted kubeconfig, the order nodes switched in, the
// summary of phase durations.
import { formatSeconds } from "./progress.js";

export const heading = (title: string): string => `\n== ${title}`;

/** Indents every line of `text` (trailing blank lines dropped). */
export const indent = (text: string, by = "  "): string =>
  text
    .trimEnd()
    .split("\n")
    .map((l) => (l === "" ? l : by + l))
    .join("\n");

// eslint-disable-next-line no-control-regex
const ANSI_ESCAPE = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** Text without ANSI escape sequences (colours), for logs. */
export const stripAnsi = (text: string): string => text.replace(ANSI_ESCAPE, "");

const SECRET_FIELDS = /^(\s*)(client-key-data|client-certificate-data|token|password):\s*(\S+)\s*$/;
const CA_FIELD = /^(\s*)(certificate-authority-data):\s*(\S+)\s*$/;

/**
 * A kubeconfig fit to print: client keys, certificates, tokens and passwords replaced by their size; the CA (public)
 * shortened. Everything else (server, names) is kept.
 */
export function redactKubeconfig(text: string): string {
  return text
    .split("\n")
    .map((line) => {
      const secret = SECRET_FIELDS.exec(line);
      if (secret) return `${secret[1]}${secret[2]}: <redacted, ${secret[3]?.length ?? 0} characters>`;
      const ca = CA_FIELD.exec(line);
      if (ca) return `${ca[1]}${ca[2]}: ${(ca[3] ?? "").slice(0, 16)}… (public CA, ${ca[3]?.length ?? 0} characters)`;
      return line;
    })
    .join("\n");
}

export interface Timing {
  name: string;
  ms: number;
  failed?: boolean;
}

/** The summary: one line per phase with its duration, then the total. */
export function summaryLines(timings: readonly Timing[], totalMs: number): string[] {
  const width = Math.max(5, ...timings.map((t) => t.name.length));
  return [
    ...timings.map((t) => `  ${t.name.padEnd(width)}  ${formatSeconds(t.ms).padStart(8)}${t.failed ? "  FAILED" : ""}`),
    `  ${"-".repeat(width)}  ${"-".repeat(8)}`,
    `  ${"total".padEnd(width)}  ${formatSeconds(totalMs).padStart(8)}`,
  ];
}

/** When each node reached a state, relative to a start time: "cp-01 +4.2 s → cp-02 +8.0 s". */
export function orderLine(events: readonly { machine: string; at: number }[], start: number): string {
  return [...events]
    .sort((a, b) => a.at - b.at)
    .map((e) => `${e.machine} +${formatSeconds(e.at - start)}`)
    .join(" → ");
}

/**
 * Whether the nodes went in rollout order: every control-plane node before any worker (with `workersFirst`, the
 * reverse, as a deletion goes).
 */
export function inRoleOrder(
  events: readonly { machine: string; at: number; role: string }[],
  workersFirst = false,
): boolean {
  const cp = events.filter((e) => e.role === "control-plane").map((e) => e.at);
  const workers = events.filter((e) => e.role === "worker").map((e) => e.at);
  if (cp.length === 0 || workers.length === 0) return true;
  return workersFirst ? Math.max(...workers) <= Math.min(...cp) : Math.max(...cp) <= Math.min(...workers);
}

import { pino, stdTimeFunctions, type DestinationStream, type Logger as PinoLogger } from "pino";
import pretty from "pino-pretty";
import type { KubeObject } from "./kube/types.js";

export type Logger = PinoLogger;
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
export type LogFormat = "json" | "pretty";

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** The process's component name, e.g. `nio`; every line carries it as `component`. */
  name: string;
  /** Where lines go; stdout when omitted. Tests pass a stream that collects lines. */
  destination?: DestinationStream | NodeJS.WritableStream;
}

/**
 * Fields never logged in clear. Secrets must not be passed to the logger at all; this is the safety net for the
 * usual names (a Secret's `data`, tokens, passwords, private keys, Authorization headers).
 */
export const REDACT_PATHS = [
  "password",
  "token",
  "privateKey",
  "authorization",
  "*.password",
  "*.token",
  "*.privateKey",
  "*.authorization",
  "*.headers.authorization",
  "secret.data",
  "*.secret.data",
];

/**
 * A pino logger. `json` (default): one JSON object per line on stdout, ISO time, level as its name (`"level":
 * "info"`), `component` on every line; context goes into fields (`log.info({ namespace, name, machine, commit },
 * "applied")`), never into the message. `pretty`: human-readable lines through pino-pretty, used as a plain stream
 * in this thread (no worker-thread transport), so it also works in tests and exits flush.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const options = {
    level: opts.level ?? "info",
    base: { component: opts.name },
    timestamp: stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
  };
  if (opts.format === "pretty") {
    const stream = pretty({
      colorize: false,
      sync: true,
      translateTime: "SYS:standard",
      ignore: "pid,hostname",
      destination: opts.destination ?? 1,
    });
    return pino(options, stream);
  }
  return pino(options, opts.destination ?? pino.destination({ dest: 1, sync: true }));
}

/** A child logger for one object: adds `namespace`, `name` and `kind` (plus `extra`) to every line. */
export function childFor(logger: Logger, obj: KubeObject, extra: Record<string, unknown> = {}): Logger {
  const m = obj.metadata;
  return logger.child({
    ...(m.namespace ? { namespace: m.namespace } : {}),
    name: m.name,
    ...(obj.kind ? { kind: obj.kind } : {}),
    ...extra,
  });
}

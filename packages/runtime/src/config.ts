import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { LogFormat, LogLevel } from "./log.js";

/**
 * Typed configuration from environment variables. Every helper takes `(env, name, default, rules)`; a value that
 * is missing or empty gives the default, a bad value throws a {@link ConfigError} naming the variable, the value
 * and the rule. {@link EnvReader} collects problems instead, so a process can report all of them at once.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export interface ConfigProblem {
  variable: string;
  value: string;
  /** What a valid value looks like, e.g. "an integer between 1 and 65535". */
  rule: string;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(
      problems.length === 1
        ? `invalid configuration: ${describe(problems[0] as ConfigProblem)}`
        : `invalid configuration (${problems.length} problems): ${problems.map(describe).join("; ")}`,
    );
    this.problems = problems;
  }
}

function describe(p: ConfigProblem): string {
  return `${p.variable}=${JSON.stringify(p.value)} is invalid: expected ${p.rule}`;
}

export interface RangeRule {
  min?: number;
  max?: number;
}

function raw(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

function fail(name: string, value: string, rule: string): never {
  throw new ConfigError([{ variable: name, value, rule }]);
}

function rangeText(kind: string, r: RangeRule): string {
  if (r.min !== undefined && r.max !== undefined) return `${kind} between ${r.min} and ${r.max}`;
  if (r.min !== undefined) return `${kind} >= ${r.min}`;
  if (r.max !== undefined) return `${kind} <= ${r.max}`;
  return kind;
}

function inRange(n: number, r: RangeRule): boolean {
  return (r.min === undefined || n >= r.min) && (r.max === undefined || n <= r.max);
}

export function envString(env: Env, name: string, def: string, rule: { pattern?: RegExp } = {}): string {
  const v = raw(env, name);
  if (v === undefined) return def;
  if (rule.pattern && !rule.pattern.test(v)) fail(name, v, `a value matching ${String(rule.pattern)}`);
  return v;
}

/** Like {@link envString} without a default: `undefined` when unset. */
export function envOptionalString(env: Env, name: string, rule: { pattern?: RegExp } = {}): string | undefined {
  const v = raw(env, name);
  if (v === undefined) return undefined;
  return envString(env, name, v, rule);
}

const INT = /^[+-]?\d+$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function envInt(env: Env, name: string, def: number, rule: RangeRule = {}): number {
  const v = raw(env, name);
  if (v === undefined) return def;
  const text = rangeText("an integer", rule);
  if (!INT.test(v)) fail(name, v, text);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || !inRange(n, rule)) fail(name, v, text);
  return n;
}

/** A decimal number, e.g. seconds as the seeds write them (`"60.0"`). */
export function envNumber(env: Env, name: string, def: number, rule: RangeRule = {}): number {
  const v = raw(env, name);
  if (v === undefined) return def;
  const text = rangeText("a number", rule);
  if (!NUMBER.test(v)) fail(name, v, text);
  const n = Number(v);
  if (!Number.isFinite(n) || !inRange(n, rule)) fail(name, v, text);
  return n;
}

const TRUE = new Set(["true", "1", "yes", "on"]);
const FALSE = new Set(["false", "0", "no", "off"]);

export function envBool(env: Env, name: string, def: boolean): boolean {
  const v = raw(env, name);
  if (v === undefined) return def;
  const l = v.toLowerCase();
  if (TRUE.has(l)) return true;
  if (FALSE.has(l)) return false;
  return fail(name, v, "true or false (also 1/0, yes/no, on/off)");
}

/** One of `allowed`, compared case-insensitively; `aliases` map other spellings (lower case) to allowed values. */
export function envEnum<T extends string>(
  env: Env,
  name: string,
  def: T,
  allowed: readonly T[],
  aliases: Readonly<Record<string, T>> = {},
): T {
  const v = raw(env, name);
  if (v === undefined) return def;
  const l = v.toLowerCase();
  const hit = allowed.find((a) => a.toLowerCase() === l) ?? aliases[l];
  if (hit === undefined) return fail(name, v, `one of ${allowed.join(", ")}`);
  return hit;
}

const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)/g;
const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/**
 * A duration in seconds: a plain number of seconds (`"60"`, `"60.0"`, as the seeds use) or a Go-style duration
 * (`"90s"`, `"5m"`, `"1h30m"`, `"500ms"`). Returns seconds (may be fractional).
 */
export function envDurationSeconds(env: Env, name: string, def: number, rule: RangeRule = {}): number {
  const v = raw(env, name);
  if (v === undefined) return def;
  const text = `${rangeText("a duration in seconds", rule)} (e.g. 60, 60.0, 90s, 5m, 1h30m)`;
  const n = parseDuration(v);
  if (n === undefined || !inRange(n, rule)) fail(name, v, text);
  return n;
}

function parseDuration(v: string): number | undefined {
  if (NUMBER.test(v)) {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  const matched = [...v.matchAll(DURATION_PART)];
  if (matched.length === 0 || matched.map((m) => m[0]).join("") !== v) return undefined;
  return matched.reduce((sum, m) => sum + Number(m[1]) * (UNIT_SECONDS[m[2] as string] ?? NaN), 0);
}

/**
 * Reads many variables and collects every problem; `done()` throws one {@link ConfigError} listing all of them.
 * Each method returns the default for a bad value so reading can go on.
 */
export class EnvReader {
  private readonly problems: ConfigProblem[] = [];
  constructor(readonly env: Env) {}

  private collect<T>(def: T, read: () => T): T {
    try {
      return read();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.problems.push(...err.problems);
      return def;
    }
  }

  string(name: string, def: string, rule: { pattern?: RegExp } = {}): string {
    return this.collect(def, () => envString(this.env, name, def, rule));
  }
  optionalString(name: string, rule: { pattern?: RegExp } = {}): string | undefined {
    return this.collect(undefined, () => envOptionalString(this.env, name, rule));
  }
  int(name: string, def: number, rule: RangeRule = {}): number {
    return this.collect(def, () => envInt(this.env, name, def, rule));
  }
  number(name: string, def: number, rule: RangeRule = {}): number {
    return this.collect(def, () => envNumber(this.env, name, def, rule));
  }
  bool(name: string, def: boolean): boolean {
    return this.collect(def, () => envBool(this.env, name, def));
  }
  enum<T extends string>(name: string, def: T, allowed: readonly T[], aliases: Readonly<Record<string, T>> = {}): T {
    return this.collect(def, () => envEnum(this.env, name, def, allowed, aliases));
  }
  durationSeconds(name: string, def: number, rule: RangeRule = {}): number {
    return this.collect(def, () => envDurationSeconds(this.env, name, def, rule));
  }
  /** Records a cross-variable problem (e.g. one value must be below another). */
  problem(variable: string, value: string, rule: string): void {
    this.problems.push({ variable, value, rule });
  }
  /** Throws a ConfigError with every problem collected so far. */
  done(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }
}

export const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];
/** Python-style names the seeds' operator accepted (`LOG_LEVEL=DEBUG`, `WARNING`, `CRITICAL`). */
const LOG_LEVEL_ALIASES: Record<string, LogLevel> = { warning: "warn", critical: "fatal" };

export interface RuntimeConfig {
  /** METRICS_PORT (default 8000): Prometheus `/metrics`. */
  metricsPort: number;
  /** HEALTH_CHECK_PORT (default 8080): `/health`, `/ready`, `/live`. */
  healthPort: number;
  /** BIND_ADDRESS (default 0.0.0.0): address both servers listen on. */
  bindAddress: string;
  /** LOG_LEVEL (default info): trace, debug, info, warn(ing), error, fatal/critical, silent; any case. */
  logLevel: LogLevel;
  /** LOG_FORMAT (default json): json or pretty. */
  logFormat: LogFormat;
  /** ENABLE_LEADER_ELECTION (default true). */
  enableLeaderElection: boolean;
  /** LEADER_ELECTION_NAMESPACE (default: the pod's namespace, else POD_NAMESPACE, else "default"). */
  leaderElectionNamespace: string;
  /** LEADER_ELECTION_ID: the Lease name; the operator picks its own when unset. */
  leaderElectionId?: string;
  /** LEADER_ELECTION_LEASE_DURATION (default 15 s). */
  leaseDurationSeconds: number;
  /** LEADER_ELECTION_RENEW_DEADLINE (default 10 s; below the lease duration). */
  renewDeadlineSeconds: number;
  /** LEADER_ELECTION_RETRY_PERIOD (default 2 s; below the renew deadline). */
  retryPeriodSeconds: number;
  /** POD_NAME (default the host name): leader identity, event reportingInstance. */
  podName: string;
  /** SHUTDOWN_GRACE_PERIOD (default 30 s): how long running reconciles may finish on SIGTERM. */
  shutdownGraceSeconds: number;
  /** RESYNC_PERIOD (default 600 s): informers re-deliver every object this often. */
  resyncSeconds: number;
}

export const SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

export interface LoadConfigOptions {
  /** Where the pod's namespace is mounted (tests point this elsewhere). */
  namespaceFile?: string;
  hostname?: () => string;
}

const PORT: RangeRule = { min: 0, max: 65535 };
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** The settings every operator process shares. Throws one ConfigError listing every bad variable. */
export function loadRuntimeConfig(env: Env = process.env, opts: LoadConfigOptions = {}): RuntimeConfig {
  const r = new EnvReader(env);
  const leaderElectionId = r.optionalString("LEADER_ELECTION_ID", { pattern: DNS_SUBDOMAIN });
  const config: RuntimeConfig = {
    metricsPort: r.int("METRICS_PORT", 8000, PORT),
    healthPort: r.int("HEALTH_CHECK_PORT", 8080, PORT),
    bindAddress: r.string("BIND_ADDRESS", "0.0.0.0"),
    logLevel: r.enum("LOG_LEVEL", "info", LOG_LEVELS, LOG_LEVEL_ALIASES),
    logFormat: r.enum<LogFormat>("LOG_FORMAT", "json", ["json", "pretty"]),
    enableLeaderElection: r.bool("ENABLE_LEADER_ELECTION", true),
    leaderElectionNamespace: r.string("LEADER_ELECTION_NAMESPACE", podNamespace(env, opts), { pattern: DNS_LABEL }),
    ...(leaderElectionId !== undefined ? { leaderElectionId } : {}),
    leaseDurationSeconds: r.durationSeconds("LEADER_ELECTION_LEASE_DURATION", 15, { min: 1 }),
    renewDeadlineSeconds: r.durationSeconds("LEADER_ELECTION_RENEW_DEADLINE", 10, { min: 1 }),
    retryPeriodSeconds: r.durationSeconds("LEADER_ELECTION_RETRY_PERIOD", 2, { min: 0.1 }),
    podName: r.string("POD_NAME", (opts.hostname ?? hostname)()),
    shutdownGraceSeconds: r.durationSeconds("SHUTDOWN_GRACE_PERIOD", 30, { min: 0 }),
    resyncSeconds: r.durationSeconds("RESYNC_PERIOD", 600, { min: 0 }),
  };
  if (config.renewDeadlineSeconds >= config.leaseDurationSeconds) {
    r.problem(
      "LEADER_ELECTION_RENEW_DEADLINE",
      String(config.renewDeadlineSeconds),
      `less than LEADER_ELECTION_LEASE_DURATION (${config.leaseDurationSeconds})`,
    );
  }
  if (config.retryPeriodSeconds >= config.renewDeadlineSeconds) {
    r.problem(
      "LEADER_ELECTION_RETRY_PERIOD",
      String(config.retryPeriodSeconds),
      `less than LEADER_ELECTION_RENEW_DEADLINE (${config.renewDeadlineSeconds})`,
    );
  }
  r.done();
  return config;
}

/** The namespace this pod runs in: the service-account mount, else POD_NAMESPACE, else "default". */
export function podNamespace(env: Env = process.env, opts: LoadConfigOptions = {}): string {
  try {
    const ns = readFileSync(opts.namespaceFile ?? SERVICE_ACCOUNT_NAMESPACE_FILE, "utf8").trim();
    if (ns) return ns;
  } catch {
    // not in a pod
  }
  return raw(env, "POD_NAMESPACE") ?? "default";
}

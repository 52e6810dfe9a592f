import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** NIO's own metrics (the reconcile/work-queue/API ones come from the runtime with the `nio` prefix). */
export interface NioMetrics {
  machinesTotal: Gauge;
  machinesDiscoverable: Gauge;
  configurationsApplied: Counter;
  configurationsFailed: Counter<"reason">;
  sshConnections: Counter<"result">;
  gitClones: Counter;
  gitRefChecks: Counter<"result">;
  nixosBuilds: Counter<"mode" | "result">;
  nixosBuildDuration: Histogram<"mode">;
  appliesInFlight: Gauge;
  webhookRequests: Counter<"result">;
}

export function createNioMetrics(registry: Registry): NioMetrics {
  const registers = [registry];
  return {
    machinesTotal: new Gauge({ name: "nio_machines_total", help: "Machines managed by NIO.", registers }),
    machinesDiscoverable: new Gauge({
      name: "nio_machines_discoverable",
      help: "Machines whose last SSH connection attempt succeeded.",
      registers,
    }),
    configurationsApplied: new Counter({
      name: "nio_configurations_applied_total",
      help: "NixosConfiguration applies that completed (appliedCommit recorded).",
      registers,
    }),
    configurationsFailed: new Counter({
      name: "nio_configurations_failed_total",
      help: "NixosConfiguration applies that failed, by reason.",
      labelNames: ["reason"],
      registers,
    }),
    sshConnections: new Counter({
      name: "nio_ssh_connections_total",
      help: "SSH connections opened to machines, by result (success, unreachable, auth_failed, host_key_mismatch, error).",
      labelNames: ["result"],
      registers,
    }),
    gitClones: new Counter({
      name: "nio_git_clones_total",
      help: "Git fetches of a commit into the shared cache (one per repository commit, however many configurations use it).",
      registers,
    }),
    gitRefChecks: new Counter({
      name: "nio_git_ref_checks_total",
      help: "Ref listings made to resolve a configuration's ref to a commit, by result.",
      labelNames: ["result"],
      registers,
    }),
    nixosBuilds: new Counter({
      name: "nio_nixos_builds_total",
      help: "nixos-rebuild / nixos-anywhere runs, by mode (switch, install, remove) and result (success, failure, unknown).",
      labelNames: ["mode", "result"],
      registers,
    }),
    nixosBuildDuration: new Histogram({
      name: "nio_nixos_build_duration_seconds",
      help: "Duration of nixos-rebuild / nixos-anywhere runs, by mode.",
      labelNames: ["mode"],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600],
      registers,
    }),
    appliesInFlight: new Gauge({ name: "nio_applies_in_flight", help: "Applies running now.", registers }),
    webhookRequests: new Counter({
      name: "nio_webhook_requests_total",
      help: "Git webhook requests, by result (accepted, bad_signature, rate_limited, bad_request).",
      labelNames: ["result"],
      registers,
    }),
  };
}

import { EnvReader, type Env } from "@nio/runtime";

/** NIO's own settings: every `NIO_*` variable of the production guide, plus the few the apply pipeline adds. */
export interface NioConfig {
  /** NIO_BASE_CONFIG_PATH (default /tmp/nixos-config): private workspaces and the git cache live below it. */
  baseConfigPath: string;
  /** NIO_KNOWN_HOSTS_PATH (default /tmp/nio-ssh-known-hosts): known_hosts written for nixos-anywhere runs. */
  knownHostsPath: string;
  /** NIO_MACHINE_DISCOVERY_INTERVAL (default 60 s): how often each Machine's SSH reachability is checked. */
  machineDiscoveryIntervalSeconds: number;
  /** NIO_HARDWARE_SCAN_INTERVAL (default 300 s): how often nixos-facter runs on each Machine. */
  hardwareScanIntervalSeconds: number;
  /** NIO_CONFIG_RECONCILE_INTERVAL (default 120 s): how often each configuration's git ref is checked. */
  configReconcileIntervalSeconds: number;
  /** NIO_NIXOS_APPLY_TIMEOUT (default 3600 s): an apply running longer is stopped and reported as Timeout. */
  applyTimeoutSeconds: number;
  /** NIO_RETRY_MAX_ATTEMPTS (default 3): attempts of one SSH or git operation before the reconcile fails. */
  retryMaxAttempts: number;
  /** NIO_RETRY_INITIAL_DELAY (default 2 s), NIO_RETRY_MAX_DELAY (default 30 s), NIO_RETRY_EXPONENTIAL_BASE (2). */
  retryInitialDelaySeconds: number;
  retryMaxDelaySeconds: number;
  retryExponentialBase: number;
  /** NIO_MAX_CONCURRENT_APPLIES (default 10): applies running at once across all machines. */
  maxConcurrentApplies: number;
  /** NIO_SSH_CONNECT_TIMEOUT (default 10 s). */
  sshConnectTimeoutSeconds: number;
  /** SSH_KEY_PATH: the operator's default SSH key, for Machines without spec.sshKeySecretRef. */
  defaultSshKeyPath?: string;
  /** NIO_WEBHOOK_PORT (default 8081; 0 disables): the git webhook `POST /hooks/git`. */
  webhookPort: number;
  /** NIO_WEBHOOK_SECRET_FILE or NIO_WEBHOOK_SECRET: the HMAC key webhook signatures are checked against. */
  webhookSecretFile?: string;
  webhookSecret?: string;
  /** NIO_WATCH_NAMESPACE: only this namespace (default: all). */
  watchNamespace?: string;
}

export function loadNioConfig(env: Env = process.env): NioConfig {
  const r = new EnvReader(env);
  const seconds = (name: string, def: number, min = 0.001): number => r.durationSeconds(name, def, { min });
  const config: NioConfig = {
    baseConfigPath: r.string("NIO_BASE_CONFIG_PATH", "/tmp/nixos-config", { pattern: /^\/[^\0]*$/ }),
    knownHostsPath: r.string("NIO_KNOWN_HOSTS_PATH", "/tmp/nio-ssh-known-hosts", { pattern: /^\/[^\0]*$/ }),
    machineDiscoveryIntervalSeconds: seconds("NIO_MACHINE_DISCOVERY_INTERVAL", 60, 1),
    hardwareScanIntervalSeconds: seconds("NIO_HARDWARE_SCAN_INTERVAL", 300, 1),
    configReconcileIntervalSeconds: seconds("NIO_CONFIG_RECONCILE_INTERVAL", 120, 1),
    applyTimeoutSeconds: seconds("NIO_NIXOS_APPLY_TIMEOUT", 3600, 1),
    retryMaxAttempts: r.int("NIO_RETRY_MAX_ATTEMPTS", 3, { min: 1, max: 100 }),
    retryInitialDelaySeconds: seconds("NIO_RETRY_INITIAL_DELAY", 2),
    retryMaxDelaySeconds: seconds("NIO_RETRY_MAX_DELAY", 30),
    retryExponentialBase: r.number("NIO_RETRY_EXPONENTIAL_BASE", 2, { min: 1, max: 10 }),
    maxConcurrentApplies: r.int("NIO_MAX_CONCURRENT_APPLIES", 10, { min: 1, max: 1000 }),
    sshConnectTimeoutSeconds: seconds("NIO_SSH_CONNECT_TIMEOUT", 10, 0.1),
    defaultSshKeyPath: r.optionalString("SSH_KEY_PATH", { pattern: /^\/[^\0]*$/ }),
    webhookPort: r.int("NIO_WEBHOOK_PORT", 8081, { min: 0, max: 65535 }),
    webhookSecretFile: r.optionalString("NIO_WEBHOOK_SECRET_FILE", { pattern: /^\/[^\0]*$/ }),
    webhookSecret: r.optionalString("NIO_WEBHOOK_SECRET"),
    watchNamespace: r.optionalString("NIO_WATCH_NAMESPACE", { pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/ }),
  };
  if (config.retryInitialDelaySeconds > config.retryMaxDelaySeconds) {
    r.problem("NIO_RETRY_INITIAL_DELAY", String(config.retryInitialDelaySeconds), "not above NIO_RETRY_MAX_DELAY");
  }
  r.done();
  return config;
}

/** Delay before retry `attempt` (0-based) of an SSH or git operation, per the NIO_RETRY_* settings. */
export function retryDelayMs(config: NioConfig, attempt: number): number {
  const s = config.retryInitialDelaySeconds * config.retryExponentialBase ** attempt;
  return Math.min(s, config.retryMaxDelaySeconds) * 1000;
}

import { EnvReader, type Env } from "@nio/runtime";

/** NICO's own settings (the shared ones — ports, log level, leader election — come from the runtime). */
export interface NicoConfig {
  /** NICO_CLUSTER_RECONCILE_INTERVAL (default 120 s): how often each cluster's git ref is resolved again. */
  clusterReconcileIntervalSeconds: number;
  /** NICO_KUBECONFIG_REFRESH_INTERVAL (default 300 s): how often the admin kubeconfig is read again. */
  kubeconfigRefreshIntervalSeconds: number;
  /** NICO_SSH_CONNECT_TIMEOUT (default 10 s): SSH to the first control-plane node for its kubeconfig. */
  sshConnectTimeoutSeconds: number;
  /** NICO_WATCH_NAMESPACE: only this namespace (default: all). */
  watchNamespace?: string;
  /**
   * NICO_WEBHOOK_PORT (default 8082; 0 disables): `POST /hooks/git` resolves the ref of every cluster on the pushed
   * repository at once (NICO pins commits, so NIO's own webhook cannot start a cluster's rollout).
   */
  webhookPort: number;
  /** NICO_WEBHOOK_SECRET_FILE or NICO_WEBHOOK_SECRET: the HMAC key webhook signatures are checked against. */
  webhookSecretFile?: string;
  webhookSecret?: string;
}

export function loadNicoConfig(env: Env = process.env): NicoConfig {
  const r = new EnvReader(env);
  const config: NicoConfig = {
    clusterReconcileIntervalSeconds: r.durationSeconds("NICO_CLUSTER_RECONCILE_INTERVAL", 120, { min: 1 }),
    kubeconfigRefreshIntervalSeconds: r.durationSeconds("NICO_KUBECONFIG_REFRESH_INTERVAL", 300, { min: 1 }),
    sshConnectTimeoutSeconds: r.durationSeconds("NICO_SSH_CONNECT_TIMEOUT", 10, { min: 0.1 }),
    watchNamespace: r.optionalString("NICO_WATCH_NAMESPACE", { pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/ }),
    webhookPort: r.int("NICO_WEBHOOK_PORT", 8082, { min: 0, max: 65535 }),
    webhookSecretFile: r.optionalString("NICO_WEBHOOK_SECRET_FILE", { pattern: /^\/[^\0]*$/ }),
    webhookSecret: r.optionalString("NICO_WEBHOOK_SECRET"),
  };
  r.done();
  return config;
}

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
}

export function loadNicoConfig(env: Env = process.env): NicoConfig {
  const r = new EnvReader(env);
  const config: NicoConfig = {
    clusterReconcileIntervalSeconds: r.durationSeconds("NICO_CLUSTER_RECONCILE_INTERVAL", 120, { min: 1 }),
    kubeconfigRefreshIntervalSeconds: r.durationSeconds("NICO_KUBECONFIG_REFRESH_INTERVAL", 300, { min: 1 }),
    sshConnectTimeoutSeconds: r.durationSeconds("NICO_SSH_CONNECT_TIMEOUT", 10, { min: 0.1 }),
    watchNamespace: r.optionalString("NICO_WATCH_NAMESPACE", { pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/ }),
  };
  r.done();
  return config;
}

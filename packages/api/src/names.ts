/** API groups, kinds, resource names, label and annotation keys and finalizers of NIO and NICO. */

export const NIO_GROUP = "nio.homystack.com";
export const NICO_GROUP = "nico.homystack.com";
export const VERSION = "v1alpha1";

/** The category every kind belongs to: `kubectl get nixos` lists Machines, NixosConfigurations and clusters. */
export const CATEGORY = "nixos";

export interface KindNames {
  readonly group: string;
  readonly version: string;
  /** `group/version`, the objects' `apiVersion`. */
  readonly apiVersion: string;
  readonly kind: string;
  readonly listKind: string;
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  /** `plural.group`, the CustomResourceDefinition's name. */
  readonly crdName: string;
}

function kindNames(group: string, kind: string, plural: string, shortNames: readonly string[]): KindNames {
  return {
    group,
    version: VERSION,
    apiVersion: `${group}/${VERSION}`,
    kind,
    listKind: `${kind}List`,
    plural,
    singular: kind.toLowerCase(),
    shortNames,
    crdName: `${plural}.${group}`,
  };
}

export const MACHINE = kindNames(NIO_GROUP, "Machine", "machines", ["mach"]);
export const NIXOS_CONFIGURATION = kindNames(NIO_GROUP, "NixosConfiguration", "nixosconfigurations", [
  "nixoscfg",
  "nc",
]);
export const KUBERNETES_CLUSTER = kindNames(NICO_GROUP, "KubernetesCluster", "kubernetesclusters", ["kc", "kcluster"]);

export const KINDS = [MACHINE, NIXOS_CONFIGURATION, KUBERNETES_CLUSTER] as const;

/** Label keys. */
export const LABELS = {
  /** On a claimed Machine (and on the NixosConfigurations NICO creates): the name of the owning KubernetesCluster. */
  cluster: "nico.homystack.com/cluster",
  /** On the NixosConfigurations NICO creates: the node's role, one of `NODE_ROLES`. */
  role: "nico.homystack.com/role",
} as const;

/** Annotation keys. */
export const ANNOTATIONS = {
  /** Any new value triggers an immediate reconcile; echoed into `status.lastHandledReconcileAt`. */
  reconcileRequestedAt: "nio.homystack.com/reconcile-requested-at",
  /** On a Machine: set to the new host key (the full public key line) to accept a changed SSH host key. */
  acceptHostKey: "nio.homystack.com/accept-host-key",
  /** On a NixosConfiguration: any new value runs the full install (nixos-anywhere) again. */
  reinstallRequestedAt: "nio.homystack.com/reinstall-requested-at",
  /** On a NixosConfiguration or KubernetesCluster: "true" skips applying `onRemoveFlake`/`#minimal` on deletion. */
  skipCleanup: "nio.homystack.com/skip-cleanup",
} as const;

/** Finalizers. */
export const FINALIZERS = {
  /** Set by NIO on Machines and NixosConfigurations (the latter applies `onRemoveFlake` before it goes). */
  nio: "nio.homystack.com/finalizer",
  /** Set by NICO on KubernetesClusters (nodes are cleaned up and claims released before it goes). */
  nico: "nico.homystack.com/finalizer",
} as const;

/** Node roles (value of `LABELS.role` and of `status.nodes[].role`). */
export const NODE_ROLES = ["control-plane", "worker"] as const;
export type NodeRole = (typeof NODE_ROLES)[number];

/** `KubernetesCluster.status.phase` values. */
export const CLUSTER_PHASES = ["Pending", "Provisioning", "Ready", "Degraded", "Deleting", "Failed"] as const;
export type ClusterPhase = (typeof CLUSTER_PHASES)[number];

/** `NixosConfiguration.status.lastAttempt.result` values. */
export const ATTEMPT_RESULTS = ["Succeeded", "Failed", "Unknown", "InProgress"] as const;
export type AttemptResult = (typeof ATTEMPT_RESULTS)[number];

/** Default Secret key of `Machine.spec.sshKeySecretRef.key`. */
export const DEFAULT_SSH_KEY_SECRET_KEY = "ssh-privatekey";

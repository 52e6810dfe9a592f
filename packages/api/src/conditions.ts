/**
 * Condition types and reasons (metav1.Condition). `Ready`, `Reconciling` and `Stalled` are the kstatus conditions,
 * so `kubectl wait --for=condition=Ready` and GitOps health checks work. Reasons are CamelCase as metav1.Condition
 * requires; an Event about a transition uses the same reason as the condition.
 */

export const ConditionType = {
  /** The object is fully reconciled and its desired state is in effect. */
  Ready: "Ready",
  /** The controller is working towards the desired state (kstatus: in progress). */
  Reconciling: "Reconciling",
  /** The controller cannot make progress without a change by a person (kstatus: failed), e.g. an invalid spec. */
  Stalled: "Stalled",
  /** `spec.suspend` is true: the controller does nothing but deletion. */
  Suspended: "Suspended",
  /** Machine: the last SSH connection succeeded. */
  Reachable: "Reachable",
  /** Machine: the host key presented matches the pinned or recorded one. */
  HostKeyVerified: "HostKeyVerified",
  /** KubernetesCluster: every node's Machine is claimed (labelled) for this cluster. */
  MachinesClaimed: "MachinesClaimed",
  /** KubernetesCluster: every control-plane node has applied its configuration. */
  ControlPlaneReady: "ControlPlaneReady",
  /** KubernetesCluster: every worker has applied its configuration. */
  DataPlaneReady: "DataPlaneReady",
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export const Reason = {
  // Progress and success.
  Succeeded: "Succeeded",
  Progressing: "Progressing",
  Suspended: "Suspended",
  Deleting: "Deleting",
  // Spec and references.
  /** The spec breaks a validation rule; the message names the field and the rule. */
  InvalidSpec: "InvalidSpec",
  /** A referenced Secret or one of its keys does not exist. */
  SecretNotFound: "SecretNotFound",
  // Git.
  /** The ref could not be resolved or the commit not fetched. */
  GitError: "GitError",
  /** The git server refused the credentials. */
  GitAuthenticationFailed: "GitAuthenticationFailed",
  // SSH and machines.
  Unreachable: "Unreachable",
  /** The SSH server refused the key or user. */
  SshAuthenticationFailed: "SshAuthenticationFailed",
  /** The host key differs from the pinned or recorded one; accept it with the accept-host-key annotation. */
  HostKeyMismatch: "HostKeyMismatch",
  /** First contact: the host key was recorded in status.sshHostKey. */
  HostKeyRecorded: "HostKeyRecorded",
  /** The host key matches `spec.sshHostKey`. */
  HostKeyPinned: "HostKeyPinned",
  /** The host key matches the recorded one. */
  HostKeyMatches: "HostKeyMatches",
  // Applying.
  /** nixos-rebuild failed to evaluate, build or switch. */
  BuildFailed: "BuildFailed",
  /** nixos-anywhere failed. */
  InstallFailed: "InstallFailed",
  Timeout: "Timeout",
  /** onRemoveFlake could not be applied during deletion. */
  CleanupFailed: "CleanupFailed",
  // Machines and clusters.
  MachineNotFound: "MachineNotFound",
  /** The Machine is targeted by another NixosConfiguration, or claimed by another cluster. */
  MachineConflict: "MachineConflict",
  /** Not enough matching, unclaimed Machines (yet). */
  WaitingForMachines: "WaitingForMachines",
  /** Workers wait until the control plane is ready. */
  WaitingForControlPlane: "WaitingForControlPlane",
  /** The admin kubeconfig could not be read from the first control-plane node (yet). */
  KubeconfigUnavailable: "KubeconfigUnavailable",
  /** Nodes are being removed (scale down or deletion): their configurations apply #minimal first. */
  CleaningUp: "CleaningUp",
  /** Some nodes have not applied their configuration yet. */
  NodesNotReady: "NodesNotReady",
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export type ConditionStatus = "True" | "False" | "Unknown";

/** The conditions each controller owns (sets and summarizes). */
export const OWNED_CONDITIONS = {
  Machine: [
    ConditionType.Ready,
    ConditionType.Reconciling,
    ConditionType.Stalled,
    ConditionType.Reachable,
    ConditionType.HostKeyVerified,
  ],
  NixosConfiguration: [ConditionType.Ready, ConditionType.Reconciling, ConditionType.Stalled, ConditionType.Suspended],
  KubernetesCluster: [
    ConditionType.Ready,
    ConditionType.Reconciling,
    ConditionType.Stalled,
    ConditionType.Suspended,
    ConditionType.MachinesClaimed,
    ConditionType.ControlPlaneReady,
    ConditionType.DataPlaneReady,
  ],
} as const satisfies Record<string, readonly ConditionType[]>;

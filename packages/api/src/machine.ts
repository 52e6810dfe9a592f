/** Machine (nio.homystack.com/v1alpha1): a host NIO reaches over SSH. */
import { dateTime, resourceSchema, statusBasics, type Resource } from "./common.js";
import { HOSTNAME, IP_ADDRESS, OBJECT_NAME, SECRET_KEY, SSH_PUBLIC_KEY, SSH_USER } from "./formats.js";
import { DEFAULT_SSH_KEY_SECRET_KEY } from "./names.js";
import { arr, bool, int, obj, str, type Infer } from "./schema.js";

export const machineSpecSchema = obj({
  description: "How NIO reaches the machine over SSH.",
  properties: {
    hostname: str({
      ...HOSTNAME,
      description:
        "Host name of the machine (DNS-1123, dots allowed, e.g. cp-01.local); the SSH target when ipAddress is not set.",
    }),
    ipAddress: str({
      ...IP_ADDRESS,
      description: "IPv4 or IPv6 address literal of the machine; the SSH target when set.",
    }),
    sshUser: str({
      ...SSH_USER,
      default: "root",
      description:
        "SSH user (POSIX user name). A user other than root applies through `sudo -n`, so it needs passwordless sudo.",
    }),
    sshPort: int({ description: "SSH port of the machine, 1-65535.", minimum: 1, maximum: 65535, default: 22 }),
    sshKeySecretRef: obj({
      description:
        "Secret in the same namespace with the SSH private key (no passphrase). Default: the operator's own key.",
      properties: {
        name: str({ ...OBJECT_NAME, description: "Name of the Secret (same namespace)." }),
        key: str({
          ...SECRET_KEY,
          default: DEFAULT_SSH_KEY_SECRET_KEY,
          description: "Key of the private key in the Secret.",
        }),
      },
      required: ["name"],
    }),
    sshHostKey: str({
      ...SSH_PUBLIC_KEY,
      description:
        "Pinned SSH host public key ('<type> <base64>'). When unset, the key seen on first contact is recorded in status.sshHostKey and required from then on.",
    }),
  },
  required: ["hostname"],
});

const hardwareFactsSchema = obj({
  description: "Summary of the machine's last nixos-facter report.",
  properties: {
    system: str({ description: "Nix system double, e.g. x86_64-linux.", maxLength: 64 }),
    virtualisation: str({ description: "Detected virtualisation, e.g. none or kvm.", maxLength: 64 }),
    cpu: obj({
      description: "Processor summary.",
      properties: {
        model: str({ description: "Model name of the first CPU.", maxLength: 256 }),
        cores: int({ description: "Number of physical cores.", minimum: 0 }),
        threads: int({ description: "Number of hardware threads.", minimum: 0 }),
      },
    }),
    memoryBytes: int({ description: "Installed memory in bytes.", format: "int64", minimum: 0 }),
    disks: arr(
      obj({
        description: "A disk.",
        properties: {
          name: str({ description: "Kernel device name, e.g. sda or nvme0n1.", maxLength: 256 }),
          model: str({ description: "Model name.", maxLength: 256 }),
          sizeBytes: int({ description: "Size in bytes.", format: "int64", minimum: 0 }),
        },
      }),
      { description: "Disks.", maxItems: 64 },
    ),
    nics: arr(
      obj({
        description: "A network interface.",
        properties: {
          name: str({ description: "Interface name, e.g. eth0.", maxLength: 256 }),
          macAddress: str({ description: "MAC address.", maxLength: 64 }),
          driver: str({ description: "Kernel driver.", maxLength: 256 }),
        },
      }),
      { description: "Network interfaces.", maxItems: 64 },
    ),
  },
});

export const machineStatusSchema = obj({
  description: "Observed state of the machine, written by NIO.",
  properties: {
    ...statusBasics("Reachable, HostKeyVerified and Ready, plus the kstatus conditions Reconciling and Stalled."),
    discoverable: bool({ description: "Whether the last SSH connection attempt succeeded." }),
    lastDiscoveryTime: dateTime("When NIO last tried to connect."),
    sshHostKey: str({
      description:
        "The host key in force: spec.sshHostKey when pinned, else the key recorded on first contact. A different key stops all work (HostKeyVerified=False) until accepted with the nio.homystack.com/accept-host-key annotation.",
      maxLength: 16384,
    }),
    hasConfiguration: bool({ description: "Whether a NixosConfiguration has been applied to the machine." }),
    appliedConfiguration: str({
      description: "Name of the NixosConfiguration last applied to the machine.",
      maxLength: 253,
    }),
    appliedCommit: str({
      description: "Git commit of the configuration the machine runs; recorded only after a complete apply.",
      maxLength: 64,
    }),
    lastAppliedTime: dateTime("When the last apply completed."),
    currentSystem: str({ description: "The store path /run/current-system points to.", maxLength: 4096 }),
    hardwareFacts: hardwareFactsSchema,
    lastHardwareScanTime: dateTime("When nixos-facter last ran."),
  },
});

export const machineSchema = resourceSchema(
  "A Machine is a host (typically NixOS) that NIO reaches over SSH and keeps on its NixosConfiguration.",
  machineSpecSchema,
  machineStatusSchema,
);

export type MachineSpec = Infer<typeof machineSpecSchema>;
/** The spec as a user may write it (fields with defaults are optional). */
export type MachineSpecInput = Infer<typeof machineSpecSchema, "input">;
export type MachineStatus = Infer<typeof machineStatusSchema>;
export type HardwareFacts = Infer<typeof hardwareFactsSchema>;
export type Machine = Resource<MachineSpec, MachineStatus>;

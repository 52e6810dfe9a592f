/** KubernetesCluster (nico.homystack.com/v1alpha1): a k3s cluster built from labelled Machines. */
import {
  gitSourceProperties,
  labelSelector,
  resourceSchema,
  statusBasics,
  type LabelSelectorNode,
  type Resource,
} from "./common.js";
import { INTERFACE_NAME, IP_ADDRESS, OBJECT_NAME } from "./formats.js";
import { ipFamily } from "./net.js";
import { CLUSTER_PHASES, NODE_ROLES } from "./names.js";
import {
  arr,
  bool,
  defaultEmpty,
  int,
  obj,
  str,
  type ArrayNode,
  type Infer,
  type IntegerNode,
  type ObjectNode,
  type StringNode,
} from "./schema.js";

export const MAX_CONTROL_PLANE = 7;
export const MAX_DATA_PLANE = 1000;
/** The cluster name is a label value (nico.homystack.com/cluster) on every claimed Machine. */
export const MAX_CLUSTER_NAME_LENGTH = 63;

export type PlacementNode = ObjectNode<
  {
    readonly machines: ArrayNode<StringNode>;
    readonly machineSelector: LabelSelectorNode;
    readonly count: IntegerNode;
  },
  never
>;

function placement(role: "control-plane" | "worker", min: number, max: number): PlacementNode {
  const what = role === "control-plane" ? "control-plane nodes" : "workers";
  return obj({
    description: `Which Machines become ${what}: exactly one of machines or machineSelector, and count.`,
    properties: {
      machines: arr(str({ ...OBJECT_NAME, description: "Name of a Machine in the cluster's namespace." }), {
        description: `Names of the Machines that become ${what}, in order.`,
        minItems: min,
        maxItems: max,
        listType: "set",
      }),
      machineSelector: labelSelector(
        `Selects the Machines (same namespace, not claimed by another cluster) that become ${what}.`,
      ),
      count: int({
        description: `Number of ${what}, ${min}-${max}. Required with machineSelector; with machines it must equal their number.${
          role === "control-plane" ? " An odd number is recommended (etcd quorum)." : ""
        }`,
        minimum: min,
        maximum: max,
      }),
    },
    rules: [
      {
        name: "machinesXorSelector",
        rule: "has(self.machines) != has(self.machineSelector)",
        message: "must set exactly one of machines or machineSelector",
        check: (p) => (p.machines !== undefined) !== (p.machineSelector !== undefined),
      },
      {
        name: "countRequiredWithSelector",
        rule: "!has(self.machineSelector) || has(self.count)",
        message: "is required with machineSelector",
        fieldPath: ".count",
        reason: "FieldValueRequired",
        check: (p) => p.machineSelector === undefined || p.count !== undefined,
      },
      {
        name: "countMatchesMachines",
        rule: "!has(self.machines) || !has(self.count) || self.count == size(self.machines)",
        message: "must equal the number of machines listed",
        fieldPath: ".count",
        check: (p) => p.machines === undefined || p.count === undefined || p.count === p.machines.length,
      },
    ],
  });
}

const ipv4PrefixRule = "must be at most 32 for an IPv4 address";

const networkSchema = defaultEmpty(
  obj({
    description: "Node network settings written into cluster.nix (keepalived VRRP and static addressing).",
    properties: {
      interface: str({
        ...INTERFACE_NAME,
        default: "eth0",
        description: "Network interface carrying the node IPs and the VIP.",
      }),
      prefixLength: int({
        description: "Prefix length of the node network: 1-32 for IPv4, 1-128 for IPv6.",
        minimum: 1,
        maximum: 128,
        default: 24,
      }),
      gateway: str({ ...IP_ADDRESS, description: "Default gateway (IP address literal)." }),
      nameservers: arr(str({ ...IP_ADDRESS, description: "A nameserver IP address literal." }), {
        description: "DNS servers of the nodes.",
        maxItems: 8,
      }),
      virtualRouterId: int({
        description: "keepalived VRRP virtual router id, 1-255; unique per L2 network.",
        minimum: 1,
        maximum: 255,
        default: 51,
      }),
    },
    rules: [
      {
        name: "ipv4PrefixLength",
        rule: "!has(self.gateway) || !isIP(self.gateway) || ip(self.gateway).family() == 6 || self.prefixLength <= 32",
        message: `${ipv4PrefixRule} (gateway)`,
        fieldPath: ".prefixLength",
        check: (n) => n.gateway === undefined || ipFamily(n.gateway) !== 4 || n.prefixLength <= 32,
      },
    ],
  }),
);

const rolloutSchema = defaultEmpty(
  obj({
    description: "How configuration changes roll out. Control-plane nodes always go one at a time.",
    properties: {
      maxUnavailable: int({
        description: "How many workers may be applying at the same time.",
        minimum: 1,
        maximum: MAX_DATA_PLANE,
        default: 1,
      }),
    },
  }),
);

type Placement = { machines?: string[] };

export const kubernetesClusterSpecSchema = obj({
  description: "The cluster's source, machines, network and rollout.",
  properties: {
    ...gitSourceProperties(
      "Directory of the cluster flake inside the repository, relative (no leading '/' or '-', no '.' or '..' segments); passed to every node. Default: the repository root.",
    ),
    controlPlane: placement("control-plane", 1, MAX_CONTROL_PLANE),
    dataPlane: placement("worker", 0, MAX_DATA_PLANE),
    vip: str({
      ...IP_ADDRESS,
      description:
        "Virtual IP of the API server, held by keepalived on the control plane (endpoint https://<vip>:6443). Default: none, the endpoint is the first control-plane node.",
    }),
    network: networkSchema,
    rollout: rolloutSchema,
    fullInstall: bool({
      default: false,
      description: "true: install each node from scratch with nixos-anywhere (wipes its disks) the first time.",
    }),
    suspend: bool({ default: false, description: "true: stop reconciling (deletion still runs)." }),
  },
  required: ["gitRepo", "controlPlane"],
  rules: [
    {
      name: "disjointMachines",
      rule: "!has(self.dataPlane) || !has(self.controlPlane.machines) || !has(self.dataPlane.machines) || !self.controlPlane.machines.exists(m, m in self.dataPlane.machines)",
      message: "must not list a Machine that is also in controlPlane.machines",
      fieldPath: ".dataPlane.machines",
      check: (s) => !overlaps(s.controlPlane, s.dataPlane),
    },
    {
      name: "ipv4PrefixLength",
      rule: "!has(self.vip) || !isIP(self.vip) || ip(self.vip).family() == 6 || !has(self.network) || self.network.prefixLength <= 32",
      message: `${ipv4PrefixRule} (vip)`,
      fieldPath: ".network.prefixLength",
      check: (s) => s.vip === undefined || ipFamily(s.vip) !== 4 || s.network.prefixLength <= 32,
    },
  ],
});

function overlaps(a: Placement, b: Placement | undefined): boolean {
  const other = new Set(b?.machines ?? []);
  return (a.machines ?? []).some((m) => other.has(m));
}

const nodeStatusSchema = obj({
  description: "A node of the cluster.",
  properties: {
    machine: str({ description: "Name of the Machine.", maxLength: 253 }),
    role: str({ description: "Role of the node.", enum: NODE_ROLES }),
    index: int({ description: "Position within its role (0 is the first control-plane node).", minimum: 0 }),
    ip: str({ description: "IP address of the node.", maxLength: 45 }),
    configuration: str({ description: "Name of the node's NixosConfiguration.", maxLength: 253 }),
    appliedCommit: str({ description: "Commit the node's NixosConfiguration last applied.", maxLength: 64 }),
    ready: bool({ description: "Whether the node's NixosConfiguration is Ready at the desired commit." }),
  },
  required: ["machine"],
});

export const kubernetesClusterStatusSchema = obj({
  description: "Observed state of the cluster, written by NICO.",
  properties: {
    ...statusBasics(
      "MachinesClaimed, ControlPlaneReady, DataPlaneReady, Ready, Suspended and the kstatus conditions Reconciling and Stalled.",
    ),
    phase: str({ description: "Summary of the cluster's state.", enum: CLUSTER_PHASES }),
    controlPlaneReady: str({ description: "Ready control-plane nodes of desired, e.g. 2/3.", maxLength: 32 }),
    dataPlaneReady: str({ description: "Ready workers of desired, e.g. 4/5.", maxLength: 32 }),
    endpoint: str({ description: "URL of the cluster's API server, e.g. https://192.168.1.100:6443.", maxLength: 256 }),
    kubeconfigSecret: str({
      description: "Name of the Secret (key value) holding the admin kubeconfig.",
      maxLength: 253,
    }),
    commit: str({
      description: "Commit of spec.ref (resolved by NICO) that the nodes are rolled out to, in order.",
      maxLength: 64,
    }),
    initialized: bool({
      description: "true once the first control-plane node has bootstrapped the cluster; never reset.",
    }),
    nodes: arr(nodeStatusSchema, {
      description: "The cluster's nodes.",
      maxItems: MAX_CONTROL_PLANE + MAX_DATA_PLANE,
      listType: "map",
      listMapKeys: ["machine"],
    }),
  },
});

export const kubernetesClusterSchema = resourceSchema(
  "A KubernetesCluster builds a k3s cluster from labelled Machines: NICO claims them, renders cluster.nix and creates one NixosConfiguration per node.",
  kubernetesClusterSpecSchema,
  kubernetesClusterStatusSchema,
  MAX_CLUSTER_NAME_LENGTH,
);

export type KubernetesClusterSpec = Infer<typeof kubernetesClusterSpecSchema>;
export type KubernetesClusterSpecInput = Infer<typeof kubernetesClusterSpecSchema, "input">;
export type KubernetesClusterStatus = Infer<typeof kubernetesClusterStatusSchema>;
export type MachinePlacement = KubernetesClusterSpec["controlPlane"];
export type ClusterNetwork = KubernetesClusterSpec["network"];
export type ClusterNode = NonNullable<KubernetesClusterStatus["nodes"]>[number];
export type KubernetesCluster = Resource<KubernetesClusterSpec, KubernetesClusterStatus>;

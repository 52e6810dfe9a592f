/** cluster.nix rendering: the topology type, its validation, Nix literals and SSH public keys. Pure functions. */
export {
  RESERVED_NODE_NAMES,
  TopologyValidationError,
  formatTopologyErrors,
  inSubnet,
  subnetText,
  validateTopology,
  type ClusterTopology,
  type TopologyError,
  type TopologyNetwork,
  type TopologyNode,
} from "./topology.js";
export { CLUSTER_NIX, normalizeAuthorizedKeys, renderClusterNix } from "./cluster-nix.js";
export { nixScalar, nixString } from "./nix.js";
export { InvalidPrivateKeyError, authorizedKeyProblem, keyIdentity, publicKeyFromPrivate } from "./keys.js";
export { describeTopologyErrors, sourceField } from "./describe.js";

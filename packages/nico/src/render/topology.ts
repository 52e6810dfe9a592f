/**
 * The cluster topology cluster.nix carries, and its validation. Every value is checked before rendering and every
 * error is collected, each naming the field (`controlPlane[1].ip`) and the rule it breaks.
 *
 * Subnet rule: all nodes share one L2 network and one static network configuration (prefixLength, gateway), so every
 * node IP must lie in the subnet `<reference>/<prefixLength>`, where the reference is the VIP when one is set (the
 * VIP must be reachable by keepalived on every control-plane node, and workers reach the API through it) and the
 * first control-plane node's IP otherwise. The gateway must be of the nodes' family but may lie outside the subnet.
 */
import { formats, parseIp, type ParsedIp } from "@nio/api";
import { authorizedKeyProblem } from "./keys.js";

export interface TopologyNode {
  name: string;
  ip: string;
}

export interface TopologyNetwork {
  interface: string;
  prefixLength: number;
  gateway: string | null;
  nameservers: string[];
  virtualRouterId: number;
}

export interface ClusterTopology {
  name: string;
  vip: string | null;
  initialized: boolean;
  network: TopologyNetwork;
  /** Order matters: index 0 is the first control-plane node (it bootstraps the cluster). */
  controlPlane: TopologyNode[];
  workers: TopologyNode[];
  /** OpenSSH public key lines. */
  authorizedKeys: string[];
}

export interface TopologyError {
  /** The offending field, e.g. `controlPlane[1].ip` or `network.prefixLength`. */
  field: string;
  /** What the value must be, phrased as a rule ("must be ..."). */
  message: string;
  /** Short name of the broken rule, e.g. `ipLiteral`, `sameSubnet`. */
  rule: string;
}

export class TopologyValidationError extends Error {
  constructor(readonly errors: TopologyError[]) {
    super(`invalid cluster topology: ${formatTopologyErrors(errors)}`);
    this.name = "TopologyValidationError";
  }
}

/** `field: message [rule]` for every error, joined with "; ". */
export function formatTopologyErrors(errors: readonly TopologyError[]): string {
  return errors.map((e) => `${e.field}: ${e.message} [${e.rule}]`).join("; ");
}

/** Names a node can never have: `minimal` is the flake's cleanup configuration. */
export const RESERVED_NODE_NAMES: readonly string[] = ["minimal"];

/** Nix keywords, which cannot be bare attribute names. */
const NIX_KEYWORDS = new Set(["if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"]);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const INTERFACE_NAME = new RegExp(formats.INTERFACE_NAME.pattern, "u");

type Report = (field: string, rule: string, message: string) => void;

/** Every problem of `t`; [] when it can be rendered. */
export function validateTopology(t: ClusterTopology): TopologyError[] {
  const errors: TopologyError[] = [];
  const report: Report = (field, rule, message) => errors.push({ field, rule, message });
  checkName("name", t.name, report, false);
  if (typeof t.initialized !== "boolean") report("initialized", "boolean", "must be true or false");
  const controlPlane = nodeList(t.controlPlane, "controlPlane", report);
  const workers = nodeList(t.workers, "workers", report);
  if (Array.isArray(t.controlPlane) && t.controlPlane.length === 0) {
    report("controlPlane", "controlPlaneRequired", "must list at least one control-plane node");
  }
  const nodes = [...controlPlane, ...workers];
  checkNodeNames(nodes, report);
  const reference = referenceAddress(t.vip, controlPlane, report);
  checkNetwork(t.network, reference, report);
  checkNodeAddresses(nodes, reference, prefixOf(t.network, reference), report);
  checkAuthorizedKeys(t.authorizedKeys, report);
  return errors;
}

interface IndexedNode {
  field: string;
  name: unknown;
  ip: unknown;
}

function nodeList(list: unknown, field: string, report: Report): IndexedNode[] {
  if (!Array.isArray(list)) {
    report(field, "list", "must be a list of { name, ip } nodes");
    return [];
  }
  return list.map((n: unknown, i) => {
    const node = (typeof n === "object" && n !== null ? n : {}) as Record<string, unknown>;
    return { field: `${field}[${i}]`, name: node.name, ip: node.ip };
  });
}

function checkName(field: string, name: unknown, report: Report, isNode: boolean): void {
  if (typeof name !== "string" || !DNS_LABEL.test(name)) {
    report(
      field,
      "dnsLabel",
      "must be a DNS label (RFC 1123): 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit",
    );
    return;
  }
  if (!/^[a-z]/.test(name) || NIX_KEYWORDS.has(name)) {
    report(field, "nixAttributeName", "must be a Nix attribute name: start with a letter and not be a Nix keyword");
  }
  if (isNode && RESERVED_NODE_NAMES.includes(name)) {
    report(field, "reservedName", `must not be "${name}" (the flake's cleanup configuration has that name)`);
  }
}

function checkNodeNames(nodes: readonly IndexedNode[], report: Report): void {
  const seen = new Map<string, string>();
  for (const n of nodes) {
    checkName(`${n.field}.name`, n.name, report, true);
    if (typeof n.name !== "string") continue;
    const first = seen.get(n.name);
    if (first === undefined) seen.set(n.name, n.field);
    else report(`${n.field}.name`, "uniqueNodeName", `must be unique across controlPlane and workers (as ${first})`);
  }
}

interface Reference {
  /** `vip` or `controlPlane[0].ip`. */
  field: string;
  ip: ParsedIp;
}

/** The address the family, prefix and subnet rules compare against: the VIP when set, else the first node's IP. */
function referenceAddress(vip: unknown, controlPlane: readonly IndexedNode[], report: Report): Reference | undefined {
  if (vip !== null) {
    const ip = checkIp("vip", vip, report);
    return ip ? { field: "vip", ip } : undefined;
  }
  const first = controlPlane[0];
  const ip = typeof first?.ip === "string" ? parseIp(first.ip) : undefined;
  return ip ? { field: "controlPlane[0].ip", ip } : undefined;
}

function checkIp(field: string, value: unknown, report: Report): ParsedIp | undefined {
  const ip = typeof value === "string" ? parseIp(value) : undefined;
  if (!ip) {
    report(field, "ipLiteral", "must be an IPv4 or IPv6 address literal (no zone, not IPv4-mapped, no leading zeros)");
  }
  return ip;
}

function checkFamily(field: string, ip: ParsedIp, reference: Reference | undefined, report: Report): boolean {
  if (!reference || ip.family === reference.ip.family) return true;
  report(field, "ipFamily", `must be an IPv${reference.ip.family} address like ${reference.field}`);
  return false;
}

function checkNetwork(network: TopologyNetwork, reference: Reference | undefined, report: Report): void {
  if (typeof network !== "object" || network === null) {
    report("network", "object", "must be an object");
    return;
  }
  const iface: unknown = network.interface;
  if (typeof iface !== "string" || !INTERFACE_NAME.test(iface)) {
    report("network.interface", "interfaceName", formats.INTERFACE_NAME.patternMessage);
  }
  const maxPrefix = reference?.ip.family === 6 ? 128 : 32;
  if (!isIntIn(network.prefixLength, 1, maxPrefix)) {
    const family = reference ? `IPv${reference.ip.family}` : "IPv4";
    report("network.prefixLength", "prefixLength", `must be an integer from 1 to ${maxPrefix} for ${family}`);
  }
  if (!isIntIn(network.virtualRouterId, 1, 255)) {
    report("network.virtualRouterId", "virtualRouterId", "must be an integer from 1 to 255");
  }
  if (network.gateway !== null) {
    const gw = checkIp("network.gateway", network.gateway, report);
    if (gw) checkFamily("network.gateway", gw, reference, report);
  }
  if (!Array.isArray(network.nameservers)) {
    report("network.nameservers", "list", "must be a list of IP address literals");
    return;
  }
  network.nameservers.forEach((ns: unknown, i) => checkIp(`network.nameservers[${i}]`, ns, report));
}

function isIntIn(n: unknown, min: number, max: number): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= min && n <= max;
}

/** The prefix length for subnet checks, when it is valid for the reference's family. */
function prefixOf(network: TopologyNetwork | null, reference: Reference | undefined): number | undefined {
  const p: unknown = network?.prefixLength;
  const max = reference?.ip.family === 6 ? 128 : 32;
  return isIntIn(p, 1, max) ? p : undefined;
}

function checkNodeAddresses(
  nodes: readonly IndexedNode[],
  reference: Reference | undefined,
  prefix: number | undefined,
  report: Report,
): void {
  const seen = new Map<string, string>();
  for (const n of nodes) {
    const field = `${n.field}.ip`;
    const ip = checkIp(field, n.ip, report);
    if (!ip || !checkFamily(field, ip, reference, report)) continue;
    const key = ip.bytes.join(".");
    const first = seen.get(key);
    if (first !== undefined) report(field, "uniqueNodeIp", `must be unique (${first} has the same address)`);
    else seen.set(key, field);
    if (reference?.field === "vip" && sameBytes(ip, reference.ip)) {
      report(field, "vipNotNodeIp", "must not equal the vip (keepalived moves the vip between nodes)");
    }
    if (reference && prefix !== undefined && field !== reference.field && !inSubnet(ip, reference.ip, prefix)) {
      report(field, "sameSubnet", `must be in the subnet ${subnetText(reference.ip, prefix)} of ${reference.field}`);
    }
  }
}

function sameBytes(a: ParsedIp, b: ParsedIp): boolean {
  return a.bytes.length === b.bytes.length && a.bytes.every((x, i) => x === b.bytes[i]);
}

/** Whether the first `prefix` bits of `a` and `b` agree. */
export function inSubnet(a: ParsedIp, b: ParsedIp, prefix: number): boolean {
  if (a.family !== b.family) return false;
  for (let bit = 0; bit < prefix; bit += 8) {
    const bits = Math.min(8, prefix - bit);
    const mask = (0xff << (8 - bits)) & 0xff;
    const i = bit / 8;
    if (((a.bytes[i] ?? 0) & mask) !== ((b.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

/** `192.168.1.0/24` or `fd00::/64` style text of the subnet of `ip`. */
export function subnetText(ip: ParsedIp, prefix: number): string {
  const bytes = ip.bytes.map((b, i) => {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff << (8 - bits)) & 0xff);
  });
  if (ip.family === 4) return `${bytes.join(".")}/${prefix}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return `${compressV6(groups)}/${prefix}`;
}

/** RFC 5952 text: the longest run (two or more) of zero groups becomes "::". */
function compressV6(groups: string[]): string {
  let best = { start: -1, len: 0 };
  for (let i = 0; i < groups.length;) {
    let j = i;
    while (j < groups.length && groups[j] === "0") j++;
    if (j - i > best.len) best = { start: i, len: j - i };
    i = j === i ? i + 1 : j;
  }
  if (best.len < 2) return groups.join(":");
  return `${groups.slice(0, best.start).join(":")}::${groups.slice(best.start + best.len).join(":")}`;
}

function checkAuthorizedKeys(keys: unknown, report: Report): void {
  if (!Array.isArray(keys)) {
    report("authorizedKeys", "list", "must be a list of OpenSSH public key lines");
    return;
  }
  keys.forEach((k: unknown, i) => {
    const problem = authorizedKeyProblem(k);
    if (problem) report(`authorizedKeys[${i}]`, problem.rule, problem.message);
  });
}

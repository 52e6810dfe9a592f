/**
 * Helpers for tests of the cluster flake in nix/: copies of the flake with a hand-written cluster.nix (the contract
 * shape), and the merged configuration of a node as the testbed's offline Nix builds it (the stub nixpkgs puts it in
 * the toplevel's config.json).
 */
import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { nixBuildToplevel, repoRoot } from "@nio/testbed";

/** The project's flake. */
export const FLAKE_DIR = join(repoRoot, "nix");

export interface ClusterNixNode {
  name: string;
  ip: string;
}

/** What cluster.nix holds (nix/README.md, "The cluster.nix contract"). */
export interface ClusterNix {
  name: string;
  vip: string | null;
  initialized: boolean;
  network: {
    interface: string;
    prefixLength: number;
    gateway: string | null;
    nameservers: string[];
    virtualRouterId: number;
  };
  controlPlane: ClusterNixNode[];
  workers: ClusterNixNode[];
  authorizedKeys: string[];
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_'-]*$/;

/** A Nix literal for plain data: strings, numbers, booleans, null, lists and attribute sets. */
export function nixLiteral(value: unknown, indent = ""): string {
  const inner = `${indent}  `;
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value).replace(/\$\{/g, "\\${");
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return "[ ]";
    return `[\n${value.map((v) => `${inner}${nixLiteral(v, inner)}\n`).join("")}${indent}]`;
  }
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return "{ }";
    const key = (k: string): string => (IDENTIFIER.test(k) ? k : JSON.stringify(k));
    return `{\n${entries.map(([k, v]) => `${inner}${key(k)} = ${nixLiteral(v, inner)};\n`).join("")}${indent}}`;
  }
  throw new Error(`no Nix literal for a ${typeof value}`);
}

/** A copy of the project flake in `dir` with `cluster` (data, or the text of a cluster.nix) as its cluster.nix. */
export async function writeClusterFlake(dir: string, cluster: ClusterNix | string): Promise<string> {
  await cp(FLAKE_DIR, dir, { recursive: true });
  await writeFile(join(dir, "cluster.nix"), typeof cluster === "string" ? cluster : `${nixLiteral(cluster)}\n`);
  return dir;
}

export interface PortRange {
  from: number;
  to: number;
}

export interface VrrpInstance {
  interface: string;
  state: string;
  priority: number;
  virtualRouterId: number;
  virtualIps: { addr: string }[];
  unicastSrcIp?: string;
  unicastPeers?: string[];
  extraConfig: string;
}

export interface SystemdService {
  description?: string;
  wantedBy?: string[];
  script?: string;
  serviceConfig?: Record<string, unknown>;
}

export interface Partition {
  size: string;
  type?: string;
  priority?: number;
  content?: { type: string; format?: string; mountpoint?: string; vg?: string; mountOptions?: string[] };
}

/** The part of a node's merged configuration (config.json of the stub toplevel) the tests read. */
export interface NodeConfig {
  networking: {
    hostName: string;
    useDHCP: boolean;
    nameservers: string[];
    defaultGateway: { address: string; interface: string } | null;
    defaultGateway6: { address: string; interface: string } | null;
    interfaces: Record<
      string,
      {
        ipv4?: { addresses: { address: string; prefixLength: number }[] };
        ipv6?: { addresses: { address: string; prefixLength: number }[] };
      }
    >;
    firewall: {
      enable: boolean;
      allowedTCPPorts: number[];
      allowedUDPPorts: number[];
      allowedTCPPortRanges: PortRange[];
      allowedUDPPortRanges: PortRange[];
      extraCommands: string;
    };
  };
  services: {
    k3s: {
      enable: boolean;
      role: string;
      clusterInit: boolean;
      serverAddr: string;
      token: string;
      tokenFile: string | null;
      extraFlags: string[];
    };
    keepalived: { enable: boolean; vrrpInstances: Record<string, VrrpInstance> };
    openssh: { enable: boolean; openFirewall: boolean; settings: Record<string, unknown> };
  };
  users: { users: { root: { openssh: { authorizedKeys: { keys: string[] } } } } };
  boot: {
    kernelModules: string[];
    kernel: { sysctl: Record<string, number> };
    loader: { grub: { enable: boolean; efiSupport: boolean } };
  };
  swapDevices: unknown[];
  zramSwap: { enable: boolean };
  fileSystems: Record<string, unknown>;
  nix: { settings: { "experimental-features"?: string[] } };
  system: {
    stateVersion: string;
    activationScripts: Record<string, string | { text: string; deps?: string[] }>;
  };
  systemd: { services: Record<string, SystemdService>; tmpfiles: { rules: string[] } };
  environment: { variables: Record<string, string> };
  disko: {
    devices: {
      disk: Record<
        string,
        { type: string; device: string; content: { type: string; partitions: Record<string, Partition> } }
      >;
      lvm_vg: Record<string, { type: string; lvs: Record<string, { size: string; lvm_type?: string }> }>;
    };
  };
  nico: { disk: { device: string } };
}

const built = new Map<string, Promise<{ path: string; config: NodeConfig }>>();

/** Builds `nixosConfigurations.<node>`'s toplevel offline (once per flake dir and node): its store path and config. */
export function buildNode(dir: string, node: string): Promise<{ path: string; config: NodeConfig }> {
  const key = `${dir}#${node}`;
  let p = built.get(key);
  if (!p) {
    p = (async () => {
      const path = await nixBuildToplevel(dir, node);
      return { path, config: JSON.parse(await readFile(join(path, "config.json"), "utf8")) as NodeConfig };
    })();
    built.set(key, p);
  }
  return p;
}

/** The merged configuration of `node`. */
export async function nodeConfig(dir: string, node: string): Promise<NodeConfig> {
  return (await buildNode(dir, node)).config;
}

/** Every string anywhere in a JSON value. */
export function allStrings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.flatMap(allStrings);
  if (value !== null && typeof value === "object") return Object.values(value).flatMap(allStrings);
  return [];
}

/** The text of an activation script (NixOS accepts a string or { text, deps }). */
export function activationText(script: string | { text: string } | undefined): string {
  if (script === undefined) return "";
  return typeof script === "string" ? script : script.text;
}

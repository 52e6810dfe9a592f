/** A set of simulated hosts under one directory, started in parallel. */
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join, resolve } from "node:path";

import { freePort } from "../util/net.js";
import { hostProcesses } from "./procs.js";
import { hostLayout } from "./rootfs.js";
import { SimulatedHost, type Host } from "./host.js";

export interface StartHostsOptions {
  /** Hosts live in <dir>/hosts/<name>; an existing host there is reused (same key, address, port if free, state). */
  dir: string;
  /** Host names (lower-case letters, digits, dashes). Default: host-01, host-02, ... */
  names?: readonly string[];
  /** Number of hosts when `names` is not given. */
  count?: number;
  /** Authorized for root and deploy on hosts created now (see Host.setAuthorizedKeys for later changes). */
  operatorPublicKey?: string;
  /** Stub flakes mounted at /opt/testbed/nix-stubs. Default: packages/testbed/nix-stubs. */
  nixStubsDir?: string;
  /** Tools mounted at /opt/testbed/bin. Default: packages/testbed/host-tools. */
  toolsDir?: string;
  /** Last octets start here: host i gets 127.0.0.(firstOctet + i) (spilling into 127.0.1.x, ...). Default 10. */
  firstOctet?: number;
  /** Leave the hosts running when this Node process exits (for `testbed up`); stop them later with a new Fleet. */
  detached?: boolean;
}

export interface Fleet {
  readonly dir: string;
  readonly hosts: readonly Host[];
  /** The host called `name` (throws if there is none). */
  host(name: string): Host;
  /** Milliseconds `startHosts` took (0 for `openHosts`). */
  readonly startMs: number;
  /** Starts every host that is not running, in parallel (on failure, stops them all and throws the first error). */
  start(): Promise<void>;
  /** Stops every host (sshd and all processes inside). */
  stop(): Promise<void>;
  /** Stops every host, then removes <dir>/hosts (refusing if anything is still mounted or running there). */
  destroy(): Promise<void>;
}

interface SavedHost {
  name: string;
  address: string;
  port: number;
}

/** Address for the i-th host: 127.0.0.x with x from `first`, continuing in 127.0.1.x etc. after .250. */
export function hostAddress(i: number, first = 10): string {
  const perBlock = 251 - first;
  const block = Math.floor(i / perBlock);
  if (block > 255) throw new Error(`too many hosts: ${i + 1}`);
  return `127.0.${block}.${first + (i % perBlock)}`;
}

function defaultNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `host-${String(i + 1).padStart(2, "0")}`);
}

async function loadSaved(stateFile: string): Promise<SavedHost | undefined> {
  try {
    return JSON.parse(await readFile(stateFile, "utf8")) as SavedHost;
  } catch {
    return undefined;
  }
}

/** Reuses the saved port if it is free (or if it is this host's own running sshd), else picks a free one. */
async function choosePort(address: string, saved: SavedHost | undefined, running: boolean): Promise<number> {
  if (saved && saved.address === address) {
    if (running || (await portIsFree(address, saved.port))) return saved.port;
  }
  return freePort(address);
}

function portIsFree(address: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once("error", () => res(false));
    srv.listen({ host: address, port, exclusive: true }, () => srv.close(() => res(true)));
  });
}

async function makeHost(opts: StartHostsOptions, name: string, index: number): Promise<SimulatedHost> {
  const hostDir = join(resolve(opts.dir), "hosts", name);
  const layout = hostLayout(hostDir);
  await mkdir(hostDir, { recursive: true });
  const saved = await loadSaved(layout.stateFile);
  const address = saved?.address ?? hostAddress(index, opts.firstOctet);
  const running = (await hostProcesses(layout.rootDir)).length > 0;
  const port = await choosePort(address, saved, running);
  await writeFile(layout.stateFile, `${JSON.stringify({ name, address, port } satisfies SavedHost)}\n`);
  return new SimulatedHost({
    name,
    address,
    port,
    hostDir,
    toolsDir: opts.toolsDir,
    nixStubsDir: opts.nixStubsDir,
    authorizedKeys: opts.operatorPublicKey ? [opts.operatorPublicKey.trim()] : [],
    detached: opts.detached,
  });
}

/** Names of the hosts already in <dir>/hosts (those with a host.json), sorted. */
async function existingNames(dir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(join(resolve(dir), "hosts"));
  } catch {
    return [];
  }
  const names: string[] = [];
  for (const e of entries.sort()) {
    if ((await loadSaved(hostLayout(join(resolve(dir), "hosts", e)).stateFile)) !== undefined) names.push(e);
  }
  return names;
}

/**
 * The hosts in <dir>/hosts, without starting them: `names`, or `count` default names, or (with neither) every host
 * already there. For attaching to hosts another process started (e.g. `testbed down` after `testbed up`).
 */
export function openHosts(opts: StartHostsOptions): Promise<Fleet> {
  return openHostFleet(opts);
}

async function openHostFleet(opts: StartHostsOptions): Promise<HostFleet> {
  let names: string[];
  if (opts.names) names = [...opts.names];
  else if (opts.count !== undefined) names = defaultNames(opts.count);
  else names = await existingNames(opts.dir);
  if (new Set(names).size !== names.length) throw new Error("host names must be distinct");
  const hosts = await Promise.all(names.map((name, i) => makeHost(opts, name, i)));
  const addresses = new Set(hosts.map((h) => h.address));
  if (addresses.size !== hosts.length) throw new Error("two hosts were given the same address");
  return new HostFleet(resolve(opts.dir), hosts);
}

/** Creates (or reuses) and starts hosts in parallel; resolves once every host's sshd accepts connections. */
export async function startHosts(opts: StartHostsOptions): Promise<Fleet> {
  const t0 = Date.now();
  const fleet = await openHostFleet({ ...opts, count: opts.names ? undefined : (opts.count ?? 1) });
  await fleet.start();
  fleet.startMs = Date.now() - t0;
  return fleet;
}

class HostFleet implements Fleet {
  startMs = 0;

  constructor(
    readonly dir: string,
    readonly hosts: readonly SimulatedHost[],
  ) {}

  async start(): Promise<void> {
    const results = await Promise.allSettled(this.hosts.map((h) => h.start()));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed.length > 0) {
      await this.stop();
      const reason: unknown = failed[0]?.reason;
      throw reason instanceof Error ? reason : new Error(String(reason));
    }
  }

  host(name: string): Host {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host called ${name}`);
    return h;
  }

  async stop(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.stop()));
  }

  async destroy(): Promise<void> {
    await this.stop();
    const hostsDir = join(this.dir, "hosts");
    await assertNothingMountedUnder(hostsDir);
    for (const h of this.hosts) {
      const left = await h.processes();
      if (left.length > 0) throw new Error(`host ${h.name} still has processes: ${left.map((p) => p.pid).join(", ")}`);
    }
    await rm(hostsDir, { recursive: true, force: true });
  }
}

/** Guards a recursive delete: a bind mount of /usr or /dev below `dir` must never be deleted through. */
async function assertNothingMountedUnder(dir: string): Promise<void> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  for (const line of info.split("\n")) {
    const mountPoint = line.split(" ")[4];
    if (mountPoint && (mountPoint === dir || mountPoint.startsWith(`${dir}/`))) {
      throw new Error(`refusing to remove ${dir}: ${mountPoint} is mounted`);
    }
  }
}

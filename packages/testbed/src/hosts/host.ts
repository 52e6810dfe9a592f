/**
 * One simulated NixOS host: Debian's OpenSSH sshd, chrooted into a private root filesystem inside its own mount,
 * UTS and PID namespaces (see host-tools/libexec/host-init), listening on its own loopback address.
 */
import { existsSync } from "node:fs";
import { chmod, chown, lstat, mkdir, readFile, readdir, readlink, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { logTail, startProcess, waitFor, type ManagedProcess } from "../util/process.js";
import { testbedPackageDir } from "../util/paths.js";
import { hostInit, hostProcesses, killHostProcesses, type HostProcess } from "./procs.js";
import { scanHostKey, sshBanner } from "./probe.js";
import {
  generateHostKey,
  hostLayout,
  prepareHost,
  readHostPublicKey,
  RECORD_DIR,
  writeAuthorizedKeys,
  type HostLayout,
  type HostUser,
} from "./rootfs.js";
import {
  readJsonLines,
  type K3sRecord,
  type KeepalivedRecord,
  type ReinstallRecord,
  type RebuildRecord,
  type ToolRecord,
} from "./records.js";

export type { HostUser } from "./rootfs.js";

/** The failing-apply fault: nixos-rebuild prints `stderr` and exits with `exitCode` (before evaluating anything). */
export interface FailingApply {
  exitCode: number;
  stderr: string;
}

export interface FileStat {
  /** Permission bits (e.g. 0o600). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  type: "file" | "directory" | "symlink" | "other";
}

export interface Host {
  readonly name: string;
  /** 127.0.0.x, distinct per host of a fleet. */
  readonly address: string;
  readonly port: number;
  /** The host's "/" as seen from outside (its /usr, /dev, /proc and /opt/testbed are mounts only visible inside). */
  readonly rootDir: string;
  /** <dir>/hosts/<name>: rootDir, control/, sshd.log, host.json. */
  readonly hostDir: string;
  readonly logFile: string;

  /** "ssh-ed25519 AAAA..." (no comment). */
  hostPublicKey(): Promise<string>;
  /** A known_hosts line for this host: "[127.0.0.x]:port ssh-ed25519 AAAA...". */
  knownHostsLine(): Promise<string>;
  setAuthorizedKeys(user: HostUser, keys: readonly string[]): Promise<void>;

  /** Starts sshd (no-op if this host is already up). Generates the host key on the first start only. */
  start(): Promise<void>;
  /** "Down": ends sshd and every process running in this host, and only those. */
  stop(): Promise<void>;
  isRunning(): Promise<boolean>;
  /** Processes whose root is inside this host. */
  processes(): Promise<HostProcess[]>;

  /** nixos-rebuild sleeps this many seconds before doing anything; 0 turns it off. */
  setSlowApply(seconds: number): Promise<void>;
  /**
   * Benchmarks: nixos-rebuild skips the Nix evaluation and switches to a deterministic fake system at once. With
   * `k3s`, a switch to any attribute but `minimal` also writes the k3s admin kubeconfig (/etc/rancher/k3s/k3s.yaml)
   * and `minimal` removes the k3s state, as the cluster flake would.
   */
  setInstantApply(on: boolean, opts?: { k3s?: boolean }): Promise<void>;
  /** nixos-rebuild fails with this exit code and stderr; undefined turns it off. */
  setFailingApply(f?: FailingApply): Promise<void>;
  /** Regenerates the host key; a running sshd serves the new one when this resolves. Returns the new public key. */
  changeHostKey(): Promise<string>;

  /** What nixos-rebuild was asked, in order. */
  rebuildRecords(): Promise<RebuildRecord[]>;
  /** What testbed-reinstall (run by the nixos-anywhere stand-in) did, in order. */
  reinstallRecords(): Promise<ReinstallRecord[]>;
  /** Records of another stand-in: "systemctl", "reboot", "nixos-facter". */
  toolRecords(tool: string): Promise<ToolRecord[]>;
  /** The simulated starts and stops of k3s (activations of systems with services.k3s), in order. */
  k3sRecords(): Promise<K3sRecord[]>;
  /** The simulated starts and stops of keepalived, in order. */
  keepalivedRecords(): Promise<KeepalivedRecord[]>;
  /** Target of /run/current-system inside the host (a /nix/store path), or undefined if there is none. */
  currentSystem(): Promise<string | undefined>;
  /** Target of /nix/var/nix/profiles/system, followed through its generation link, or undefined. */
  bootSystem(): Promise<string | undefined>;
  /** Generation numbers present in /nix/var/nix/profiles (system-<N>-link), ascending. */
  generations(): Promise<number[]>;

  /** Files, by their path inside the host (symlinks are followed inside the host, never onto the real machine). */
  readFile(pathInsideHost: string): Promise<Buffer>;
  writeFile(
    pathInsideHost: string,
    data: string | Buffer,
    opts?: { mode?: number; uid?: number; gid?: number },
  ): Promise<void>;
  exists(pathInsideHost: string): Promise<boolean>;
  fileMode(pathInsideHost: string): Promise<number>;
  fileStat(pathInsideHost: string): Promise<FileStat>;
  /** The path outside the host that backs `pathInsideHost`. */
  realPath(pathInsideHost: string): Promise<string>;
}

export interface HostOptions {
  name: string;
  address: string;
  port: number;
  /** <dir>/hosts/<name>. */
  hostDir: string;
  /** Mounted read-only at /opt/testbed/bin (first on PATH). Default: packages/testbed/host-tools. */
  toolsDir?: string;
  /** Mounted read-only at /opt/testbed/nix-stubs. Default: packages/testbed/nix-stubs. */
  nixStubsDir?: string;
  /** Authorized for root and deploy when the host is created. */
  authorizedKeys?: readonly string[];
  /** Leave sshd running when this Node process exits (for `testbed up`). */
  detached?: boolean;
}

/** packages/testbed, found from this file both as TypeScript source (tsx) and as compiled dist/src/hosts/*.js. */
export function testbedDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(d, "host-tools")) && existsSync(join(d, "package.json"))) return d;
    const up = dirname(d);
    if (up === d) return testbedPackageDir;
    d = up;
  }
}

const HOST_ENV: NodeJS.ProcessEnv = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };

export class SimulatedHost implements Host {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly rootDir: string;
  readonly hostDir: string;
  readonly logFile: string;
  private readonly layout: HostLayout;
  private readonly toolsDir: string;
  private readonly stubsDir: string;
  private readonly authorizedKeys: readonly string[];
  private readonly detached: boolean;
  private proc: ManagedProcess | undefined;

  constructor(opts: HostOptions) {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(opts.name)) throw new Error(`bad host name: ${opts.name}`);
    this.name = opts.name;
    this.address = opts.address;
    this.port = opts.port;
    this.layout = hostLayout(opts.hostDir);
    this.hostDir = opts.hostDir;
    this.rootDir = this.layout.rootDir;
    this.logFile = this.layout.logFile;
    this.toolsDir = opts.toolsDir ?? join(testbedDir(), "host-tools");
    this.stubsDir = opts.nixStubsDir ?? join(testbedDir(), "nix-stubs");
    this.authorizedKeys = opts.authorizedKeys ?? [];
    this.detached = opts.detached ?? false;
  }

  async hostPublicKey(): Promise<string> {
    return readHostPublicKey(this.rootDir);
  }

  async knownHostsLine(): Promise<string> {
    return `[${this.address}]:${this.port} ${await this.hostPublicKey()}`;
  }

  async setAuthorizedKeys(user: HostUser, keys: readonly string[]): Promise<void> {
    await writeAuthorizedKeys(this.rootDir, user, keys);
  }

  async isRunning(): Promise<boolean> {
    return (await hostInit(this.rootDir)) !== undefined;
  }

  processes(): Promise<HostProcess[]> {
    return hostProcesses(this.rootDir);
  }

  async start(): Promise<void> {
    if (await this.isRunning()) return;
    await prepareHost(this.layout, {
      name: this.name,
      address: this.address,
      port: this.port,
      initialAuthorizedKeys: this.authorizedKeys,
    });
    const hostInitScript = join(this.toolsDir, "libexec", "host-init");
    this.proc = startProcess({
      name: `host ${this.name}`,
      command: "unshare",
      args: [
        "--mount",
        "--uts",
        "--pid",
        "--fork",
        "--propagation",
        "private",
        "--kill-child",
        hostInitScript,
        this.rootDir,
        this.name,
        this.toolsDir,
        this.stubsDir,
        this.layout.controlDir,
        "--",
        "/usr/sbin/sshd",
        "-D",
        "-e",
        "-f",
        "/etc/ssh/sshd_config",
      ],
      logFile: this.logFile,
      env: HOST_ENV,
      detached: this.detached,
    });
    const proc = this.proc;
    let exited: number | string | undefined;
    void proc.exited.then((code) => (exited = code));
    try {
      const state = await waitFor(
        `sshd of host ${this.name} on ${this.address}:${this.port}`,
        async () => {
          if (exited !== undefined) return "exited";
          return (await sshBanner(this.address, this.port, 1000)) ? "up" : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 10 },
      );
      if (state === "exited") throw new Error(`sshd (or host-init) exited with ${exited}`);
    } catch (err) {
      await this.stop();
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(`host ${this.name} did not start: ${msg}\n${await logTail(this.logFile)}`);
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (proc) await proc.stop(3000);
    await killHostProcesses(this.rootDir);
  }

  async setSlowApply(seconds: number): Promise<void> {
    if (!Number.isFinite(seconds) || seconds < 0) throw new Error(`bad slow-apply seconds: ${seconds}`);
    const path = join(this.layout.controlDir, "slow-apply");
    if (seconds === 0) await rm(path, { force: true });
    else await writeAtomic(path, `${seconds}\n`);
  }

  async setInstantApply(on: boolean, opts: { k3s?: boolean } = {}): Promise<void> {
    const path = join(this.layout.controlDir, "instant-apply");
    if (on) await writeAtomic(path, opts.k3s ? "k3s\n" : "1\n");
    else await rm(path, { force: true });
  }

  async setFailingApply(f?: FailingApply): Promise<void> {
    const path = join(this.layout.controlDir, "failing-apply.json");
    if (!f) {
      await rm(path, { force: true });
      return;
    }
    if (!Number.isInteger(f.exitCode) || f.exitCode < 1 || f.exitCode > 255) {
      throw new Error(`failing apply needs an exit code in 1..255, got ${f.exitCode}`);
    }
    await writeAtomic(path, `${JSON.stringify({ exitCode: f.exitCode, stderr: f.stderr })}\n`);
  }

  async changeHostKey(): Promise<string> {
    const key = await generateHostKey(this.rootDir, this.name);
    await this.reload();
    return key;
  }

  /** Makes a running sshd re-read its configuration and host key (SIGHUP), and waits until it serves the current key. */
  async reload(): Promise<void> {
    const init = await hostInit(this.rootDir);
    if (!init) return;
    process.kill(init.pid, "SIGHUP");
    const want = await this.hostPublicKey();
    await waitFor(
      `host ${this.name} to serve its new host key`,
      async () => ((await scanHostKey(this.address, this.port, 1000)) === want ? true : undefined),
      { timeoutMs: 10_000, intervalMs: 20 },
    );
  }

  rebuildRecords(): Promise<RebuildRecord[]> {
    return readJsonLines<RebuildRecord>(join(this.rootDir, RECORD_DIR, "nixos-rebuild.jsonl"));
  }

  reinstallRecords(): Promise<ReinstallRecord[]> {
    return readJsonLines<ReinstallRecord>(join(this.rootDir, RECORD_DIR, "testbed-reinstall.jsonl"));
  }

  toolRecords(tool: string): Promise<ToolRecord[]> {
    if (!/^[a-z0-9-]+$/.test(tool)) throw new Error(`bad tool name: ${tool}`);
    return readJsonLines<ToolRecord>(join(this.rootDir, RECORD_DIR, `${tool}.jsonl`));
  }

  k3sRecords(): Promise<K3sRecord[]> {
    return readJsonLines<K3sRecord>(join(this.rootDir, RECORD_DIR, "k3s.jsonl"));
  }

  keepalivedRecords(): Promise<KeepalivedRecord[]> {
    return readJsonLines<KeepalivedRecord>(join(this.rootDir, RECORD_DIR, "keepalived.jsonl"));
  }

  async currentSystem(): Promise<string | undefined> {
    return this.linkTarget("/run/current-system");
  }

  async bootSystem(): Promise<string | undefined> {
    const gen = await this.linkTarget("/nix/var/nix/profiles/system");
    if (gen === undefined) return undefined;
    return this.linkTarget(gen.startsWith("/") ? gen : `/nix/var/nix/profiles/${gen}`);
  }

  async generations(): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(join(this.rootDir, "nix", "var", "nix", "profiles"));
    } catch {
      return [];
    }
    return names
      .map((n) => /^system-(\d+)-link$/.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  private async linkTarget(pathInsideHost: string): Promise<string | undefined> {
    try {
      return await readlink(join(this.rootDir, pathInsideHost));
    } catch {
      return undefined;
    }
  }

  async realPath(pathInsideHost: string): Promise<string> {
    const parts = await resolveInHost(pathInsideHost, (p) => this.backing(p));
    return this.backing(parts);
  }

  /** The real path behind path components inside the host (mounts included). */
  private backing(parts: readonly string[]): string {
    const [a, b, c, ...rest] = parts;
    if (a === "usr") return join("/", ...parts);
    if (a === "dev" || a === "proc") throw new Error(`/${a} of a host is not visible from outside`);
    if (a === "opt" && b === "testbed") {
      if (c === "bin") return join(this.toolsDir, ...rest);
      if (c === "nix-stubs") return join(this.stubsDir, ...rest);
      if (c === "control") return join(this.layout.controlDir, ...rest);
    }
    return join(this.rootDir, ...parts);
  }

  async readFile(pathInsideHost: string): Promise<Buffer> {
    return readFile(await this.realPath(pathInsideHost));
  }

  async writeFile(
    pathInsideHost: string,
    data: string | Buffer,
    opts: { mode?: number; uid?: number; gid?: number } = {},
  ): Promise<void> {
    const real = await this.realPath(pathInsideHost);
    if (!real.startsWith(`${this.rootDir}/`)) throw new Error(`${pathInsideHost} is not writable in host ${this.name}`);
    await mkdir(dirname(real), { recursive: true });
    await writeFile(real, data);
    if (opts.mode !== undefined) await chmod(real, opts.mode);
    if (opts.uid !== undefined || opts.gid !== undefined) await chown(real, opts.uid ?? 0, opts.gid ?? 0);
  }

  async exists(pathInsideHost: string): Promise<boolean> {
    try {
      await lstat(await this.realPath(pathInsideHost));
      return true;
    } catch {
      return false;
    }
  }

  async fileMode(pathInsideHost: string): Promise<number> {
    return (await this.fileStat(pathInsideHost)).mode;
  }

  async fileStat(pathInsideHost: string): Promise<FileStat> {
    const st = await stat(await this.realPath(pathInsideHost));
    let type: FileStat["type"] = "other";
    if (st.isFile()) type = "file";
    else if (st.isDirectory()) type = "directory";
    return { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size, type };
  }
}

async function writeAtomic(path: string, content: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, content);
  await rename(tmp, path);
}

/**
 * Resolves an absolute path inside a host to its components, following symlinks the way the host would (absolute
 * targets restart at the host's "/"), so nothing outside the host is ever reached by following a link.
 */
export async function resolveInHost(path: string, backing: (parts: readonly string[]) => string): Promise<string[]> {
  if (!path.startsWith("/")) throw new Error(`not an absolute path: ${path}`);
  const todo = path.split("/").filter((s) => s !== "" && s !== ".");
  let done: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.shift() as string;
    if (part === "..") {
      done.pop();
      continue;
    }
    const candidate = [...done, part];
    let target: string | undefined;
    try {
      const st = await lstat(backing(candidate));
      if (st.isSymbolicLink()) target = await readlink(backing(candidate));
    } catch {
      // does not exist (yet): keep the name
    }
    if (target === undefined) {
      done = candidate;
      continue;
    }
    if (++hops > 40) throw new Error(`too many levels of symbolic links: ${path}`);
    if (target.startsWith("/")) done = [];
    todo.unshift(...target.split("/").filter((s) => s !== "" && s !== "."));
  }
  return done;
}

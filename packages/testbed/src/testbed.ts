import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { controlPlaneBinaries, type ControlPlaneBinaries } from "./control-plane/binaries.js";
import { startControlPlane, type ControlPlane } from "./control-plane/control-plane.js";
import { createBareRepo, startGitServer, type GitServer } from "./git-server.js";
import { startHosts, type Fleet } from "./hosts/index.js";
import { runChecked, startProcess, type ManagedProcess } from "./util/process.js";
import { testbedPackageDir } from "./util/paths.js";

export interface TestbedOptions {
  /** Where everything lives; a fresh temp dir (removed by stop()) when omitted. */
  dir?: string;
  /** Number of hosts (named host-01…) or their names. Default 3. */
  hosts?: number | readonly string[];
  /** Require this token (HTTP basic password) on the git server. */
  gitToken?: string;
  /** Leave every process running after this Node process exits (`testbed up`); stop with `testbed down`. */
  detached?: boolean;
  extraApiServerArgs?: string[];
}

/** The git server as the testbed exposes it, in-process or as a detached process. */
export interface TestbedGit {
  url: string;
  rootDir: string;
  repoUrl(name: string): string;
  createRepo(name: string): Promise<string>;
}

export interface Testbed {
  readonly dir: string;
  readonly binaries: ControlPlaneBinaries;
  readonly controlPlane: ControlPlane;
  readonly fleet: Fleet;
  readonly git: TestbedGit;
  /** The in-process git server (request counts etc.); undefined when detached. */
  readonly gitServer: GitServer | undefined;
  /** An ed25519 key authorized for root and deploy on every host; the private key file is 0600. */
  readonly operatorKey: { privateKeyPath: string; publicKey: string };
  /** Directory with the operator-side stand-ins (nixos-anywhere): put it first on an operator's PATH. */
  readonly operatorToolsDir: string;
  /** Variables describing the lab (written to <dir>/env by `testbed up`). */
  env(): Record<string, string>;
  /** Stops everything this testbed started (only that), and removes the dir if the testbed created it. */
  stop(): Promise<void>;
}

export interface TestbedState {
  dir: string;
  pids: { name: string; pid: number }[];
  startedAt: string;
}

export async function startTestbed(opts: TestbedOptions = {}): Promise<Testbed> {
  const ownsDir = !opts.dir;
  const dir = resolve(opts.dir ?? (await mkdtemp(join(tmpdir(), "testbed-"))));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const binaries = await controlPlaneBinaries();
  const operatorKey = await ensureOperatorKey(join(dir, "keys"));
  const names = typeof opts.hosts === "number" || opts.hosts === undefined ? undefined : opts.hosts;
  const count = typeof opts.hosts === "number" ? opts.hosts : opts.hosts === undefined ? 3 : undefined;

  const [controlPlane, fleet, git] = await Promise.all([
    startControlPlane({
      dir: join(dir, "control-plane"),
      binaries,
      detached: opts.detached,
      extraApiServerArgs: opts.extraApiServerArgs,
    }),
    startHosts({ dir, names, count, operatorPublicKey: operatorKey.publicKey, detached: opts.detached }),
    startGit(join(dir, "git"), opts),
  ]);
  const operatorToolsDir = join(testbedPackageDir, "operator-tools");

  const env = (): Record<string, string> => {
    const vars: Record<string, string> = {
      TESTBED_DIR: dir,
      KUBECONFIG: controlPlane.kubeconfigPath,
      TESTBED_SERVER: controlPlane.server,
      TESTBED_KUBECTL: binaries.kubectl,
      TESTBED_GIT_URL: git.url,
      TESTBED_GIT_ROOT: git.rootDir,
      TESTBED_SSH_KEY: operatorKey.privateKeyPath,
      TESTBED_OPERATOR_TOOLS: operatorToolsDir,
      NIO_TESTBED_ANYWHERE_LOG: join(dir, "nixos-anywhere.jsonl"),
      TESTBED_HOSTS: fleet.hosts.map((h) => h.name).join(" "),
    };
    for (const h of fleet.hosts) {
      const p = `TESTBED_HOST_${h.name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
      vars[`${p}_ADDRESS`] = h.address;
      vars[`${p}_PORT`] = String(h.port);
      vars[`${p}_ROOT`] = h.rootDir;
    }
    return vars;
  };

  if (opts.detached) {
    const state: TestbedState = {
      dir,
      pids: [
        ...controlPlane.pids().map((pid, i) => ({ name: i === 0 ? "etcd" : "kube-apiserver", pid })),
        ...(git.process ? [{ name: "git-server", pid: git.process.pid }] : []),
      ],
      startedAt: new Date().toISOString(),
    };
    await writeFile(join(dir, "state.json"), JSON.stringify(state, null, 2) + "\n");
    await writeFile(join(dir, "env"), envFile(env()), { mode: 0o600 });
    await mkdir(join(dir, "bin"), { recursive: true });
    await rm(join(dir, "bin", "kubectl"), { force: true });
    await symlink(binaries.kubectl, join(dir, "bin", "kubectl"));
  }

  let stopped = false;
  return {
    dir,
    binaries,
    controlPlane,
    fleet,
    git,
    gitServer: git.server,
    operatorKey,
    operatorToolsDir,
    env,
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all([controlPlane.stop(), fleet.destroy(), git.stop()]);
      if (ownsDir) await rm(dir, { recursive: true, force: true });
    },
  };
}

interface StartedGit extends TestbedGit {
  server?: GitServer;
  process?: ManagedProcess;
  stop(): Promise<void>;
}

async function startGit(rootDir: string, opts: TestbedOptions): Promise<StartedGit> {
  await mkdir(rootDir, { recursive: true });
  if (!opts.detached) {
    const server = await startGitServer({ rootDir, token: opts.gitToken });
    return {
      url: server.url,
      rootDir,
      repoUrl: (n) => server.repoUrl(n),
      createRepo: (n) => server.createRepo(n),
      server,
      stop: () => server.stop(),
    };
  }
  const args = [join(testbedPackageDir, "dist/src/git-server-main.js"), "--root", rootDir, "--port", "0"];
  if (opts.gitToken) {
    await writeFile(join(rootDir, "..", "git-token"), opts.gitToken, { mode: 0o600 });
    args.push("--token-file", join(rootDir, "..", "git-token"));
  }
  const logFile = join(rootDir, "..", "git-server.out");
  await writeFile(logFile, "");
  const proc = startProcess({ name: "git-server", command: process.execPath, args, logFile, detached: true });
  const { url } = await waitForJsonLine<{ url: string }>(logFile, 10_000);
  return {
    url,
    rootDir,
    repoUrl: (n) => `${url}/${n.endsWith(".git") ? n : `${n}.git`}`,
    createRepo: async (n) => {
      await createBareRepo(rootDir, n);
      return `${url}/${n.endsWith(".git") ? n : `${n}.git`}`;
    },
    process: proc,
    stop: () => proc.stop(),
  };
}

async function waitForJsonLine<T>(file: string, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const line = (await readFile(file, "utf8")).split("\n").find((l) => l.startsWith("{"));
    if (line) return JSON.parse(line) as T;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no JSON line in ${file} within ${timeoutMs} ms: ${await readFile(file, "utf8")}`);
}

async function ensureOperatorKey(dir: string): Promise<{ privateKeyPath: string; publicKey: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privateKeyPath = join(dir, "operator_ed25519");
  try {
    return { privateKeyPath, publicKey: (await readFile(`${privateKeyPath}.pub`, "utf8")).trim() };
  } catch {
    await runChecked("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "nio-testbed-operator",
      "-f",
      privateKeyPath,
    ]);
    return { privateKeyPath, publicKey: (await readFile(`${privateKeyPath}.pub`, "utf8")).trim() };
  }
}

/** Shell-sourceable `export NAME='value'` lines. */
export function envFile(vars: Record<string, string>): string {
  return (
    Object.entries(vars)
      .map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'`)
      .join("\n") + "\n"
  );
}

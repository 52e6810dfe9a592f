// The whole stack on the testbed, as it runs in a cluster: the CRDs and deploy/base's namespace, ServiceAccounts and
// RBAC applied to a real API server, and NIO and NICO as separate processes (node packages/<op>/dist/src/main.js),
// each under a token of its own ServiceAccount, never the admin's. Used by the e2e tests and by `make demo`.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import { createKube, loadKubeConfig, type Kube } from "@nio/runtime";
import { GitFixture, freePort, readTreeFiles, repoRoot, runChecked, startTestbed, type Testbed } from "@nio/testbed";
import { operatorProcess, type OperatorProcess } from "./stack-operator.js";
import { seedManifests, type Manifest, type SeedOptions } from "./stack-seed.js";

export type { OperatorProcess } from "./stack-operator.js";
export {
  DEFAULT_CLUSTER_NAME,
  GIT_CREDENTIALS_SECRET,
  SEED_NAMESPACE,
  SSH_KEY_SECRET,
  defaultRoles,
  seedManifests,
  type Manifest,
  type SeedOptions,
} from "./stack-seed.js";

/** deploy/base's namespace: the ServiceAccounts, the Leases and (in a cluster) the pods live here. */
export const OPERATOR_NAMESPACE = "nixos-operator-system";
/** The git repository the stack pushes the project flake to. */
export const REPO_NAME = "cluster";

export interface StackOptions {
  /** Testbed host names, e.g. ["cp-01", "cp-02", "cp-03", "worker-01", "worker-02"]. */
  hosts: string[];
  /** As startTestbed: keep the lab in this directory (the stack's kubeconfigs, data and logs go to <dir>/stack). */
  dir?: string;
  /** As startTestbed: the testbed outlives this process (stop() still ends the operators). */
  detached?: boolean;
  /** NIO processes (default 1). Leader election is on for every operator unless the env turns it off. */
  nioReplicas?: number;
  /** Variables added to (or replacing) the defaults of every NIO process / the NICO process. */
  nioEnv?: Record<string, string>;
  nicoEnv?: Record<string, string>;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface Stack {
  tb: Testbed;
  /** An admin client (system:masters), for assertions only: the operators never use it. */
  kube: Kube;
  /** kubectl with the admin kubeconfig; returns stdout, throws with stderr on a non-zero exit. */
  kubectl(args: string[], input?: string): Promise<string>;
  /** The git repository "cluster" on the testbed's git server (token auth; the token is in Secret git-credentials). */
  repoUrl: string;
  gitToken: string;
  /**
   * Commits the project's nix/ under "nix/" plus `extra` (path → content) and pushes it to the repository; always a
   * new commit (empty if nothing changed). Returns the commit id.
   */
  push(message: string, extra?: Record<string, string>): Promise<string>;
  nio: OperatorProcess[];
  nico: OperatorProcess;
  /** HMAC key of NIO's and NICO's git webhooks (NIO_WEBHOOK_SECRET, NICO_WEBHOOK_SECRET). */
  webhookSecret: string;
  /** Kubeconfigs of the operators' ServiceAccount tokens. */
  kubeconfigs: { nio: string; nico: string };
  /** The stack's own files: kubeconfigs, operator data, logs, the git work tree. */
  dir: string;
  /** Secrets, labelled Machines and seed 003's KubernetesCluster (see SeedOptions); kubectl apply, so re-runnable. */
  seed(opts?: SeedOptions): Promise<void>;
  /** The objects seed() applies, without applying them (e.g. to print them). */
  seedManifests(opts?: SeedOptions): Promise<Manifest[]>;
  /** Ends the operators, stops the testbed (unless detached) and removes what the stack created in temp dirs. */
  stop(): Promise<void>;
}

const NIO_DEFAULTS: Record<string, string> = {
  NIO_CONFIG_RECONCILE_INTERVAL: "5",
  NIO_MACHINE_DISCOVERY_INTERVAL: "30",
  NIO_RETRY_INITIAL_DELAY: "0.5",
  NIO_RETRY_MAX_DELAY: "2",
  NIO_SSH_CONNECT_TIMEOUT: "5",
};

const NICO_DEFAULTS: Record<string, string> = {
  NICO_CLUSTER_RECONCILE_INTERVAL: "5",
  NICO_KUBECONFIG_REFRESH_INTERVAL: "30",
};

/** Variables passed through from this process (nothing else leaks into the operators' environment). */
const PASS_THROUGH = /^(HOME|LANG|LC_ALL|TMPDIR|TZ|NIO_TESTBED_.*)$/;

function inheritedEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && PASS_THROUGH.test(k)) out[k] = v;
  return out;
}

/** Applies the CRDs (crds/) and deploy/base without its Deployments and Services: namespace, ServiceAccounts, RBAC. */
async function applyClusterSetup(kubectl: Stack["kubectl"]): Promise<string[]> {
  await kubectl(["apply", "--server-side", "--field-manager=stack", "-f", join(repoRoot, "crds")]);
  await kubectl(["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
  const built = await kubectl(["kustomize", join(repoRoot, "deploy/base")]);
  const skip = new Set(["Deployment", "Service", "CustomResourceDefinition"]);
  const docs = parseAllDocuments(built)
    .map((d) => d.toJS() as Manifest | null)
    .filter((d): d is Manifest => d !== null && !skip.has(d.kind));
  await kubectl(
    ["apply", "--server-side", "--field-manager=stack", "-f", "-"],
    docs.map((d) => stringify(d)).join("---\n"),
  );
  return docs.map((d) => `${d.kind}/${d.metadata.name}`);
}

/** A kubeconfig with a fresh token of the operator's ServiceAccount (from deploy/base). */
async function serviceAccountKubeconfig(tb: Testbed, account: string, path: string): Promise<void> {
  const token = await tb.controlPlane.mintServiceAccountToken(OPERATOR_NAMESPACE, account, 24 * 3600);
  await tb.controlPlane.writeKubeconfig(path, account, token);
}

interface OperatorSetup {
  tb: Testbed;
  dir: string;
  kubeconfig: string;
  log: (line: string) => void;
}

async function makeOperator(
  s: OperatorSetup,
  name: string,
  kind: "nio" | "nico",
  extra: Record<string, string>,
): Promise<OperatorProcess> {
  const own = join(s.dir, name);
  await mkdir(own, { recursive: true, mode: 0o700 });
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  const webhookPort = await freePort();
  const env: Record<string, string> = {
    ...inheritedEnv(),
    // The nixos-anywhere stand-in is found on PATH, as the real tool would be in the NIO image.
    PATH: `${s.tb.operatorToolsDir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    KUBECONFIG: s.kubeconfig,
    POD_NAME: name,
    POD_NAMESPACE: OPERATOR_NAMESPACE,
    LEADER_ELECTION_NAMESPACE: OPERATOR_NAMESPACE,
    ENABLE_LEADER_ELECTION: "true",
    METRICS_PORT: String(metricsPort),
    HEALTH_CHECK_PORT: String(healthPort),
    BIND_ADDRESS: "127.0.0.1",
    LOG_LEVEL: "info",
    LOG_FORMAT: "json",
    SHUTDOWN_GRACE_PERIOD: "5",
    ...(kind === "nio"
      ? {
          NIO_BASE_CONFIG_PATH: join(own, "work"),
          NIO_KNOWN_HOSTS_PATH: join(own, "known_hosts"),
          NIO_WEBHOOK_PORT: String(webhookPort),
          NIO_TESTBED_ANYWHERE_LOG: join(s.tb.dir, "nixos-anywhere.jsonl"),
          NIO_TESTBED_DIR: s.tb.dir,
          ...NIO_DEFAULTS,
        }
      : { NICO_WEBHOOK_PORT: String(webhookPort), ...NICO_DEFAULTS }),
    ...extra,
  };
  return operatorProcess({
    name,
    main: `packages/${kind}/dist/src/main.js`,
    env,
    metricsPort,
    healthPort,
    webhookPort,
    logFile: join(s.dir, `${name}.log`),
    log: s.log,
  });
}

/**
 * The work tree of the repository "cluster": a fresh one, or a clone when a kept lab (`dir`) already has the
 * repository with commits, so that a second run pushes on top of them.
 */
async function openRepo(tb: Testbed, token: string, workDir: string): Promise<GitFixture> {
  await rm(workDir, { recursive: true, force: true });
  const bare = join(tb.git.rootDir, `${REPO_NAME}.git`);
  const hasHistory = await stat(join(bare, "refs/heads/main")).then(
    () => true,
    () => false,
  );
  if (!hasHistory) return GitFixture.create({ server: tb.git, repo: REPO_NAME, token, workDir });
  return GitFixture.clone({ url: tb.git.repoUrl(REPO_NAME), token, workDir, branch: "main" });
}

const seconds = (t0: number): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

/** Starts the testbed, applies CRDs and RBAC, pushes the project flake, and starts NIO and NICO as processes. */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const log = opts.log ?? ((): void => undefined);
  const gitToken = randomBytes(16).toString("hex");
  const t0 = Date.now();
  const tb = await startTestbed({ hosts: opts.hosts, gitToken, dir: opts.dir, detached: opts.detached });
  log(
    `testbed up in ${seconds(t0)}: API server ${tb.controlPlane.server}, ${tb.fleet.hosts.length} hosts, git ${tb.git.url}`,
  );
  const dir = opts.dir !== undefined ? join(tb.dir, "stack") : await mkdtemp(join(tmpdir(), "stack-"));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const started: OperatorProcess[] = [];
  const abort = async (): Promise<void> => {
    await Promise.all(started.map((o) => o.kill("SIGKILL")));
    if (!opts.detached) await tb.stop();
    if (opts.dir === undefined) await rm(dir, { recursive: true, force: true });
  };
  try {
    const stack = await assemble({ opts, tb, dir, gitToken, log, started });
    log(`stack up in ${seconds(t0)}`);
    return stack;
  } catch (err) {
    await abort();
    throw err;
  }
}

interface AssembleInput {
  opts: StackOptions;
  tb: Testbed;
  dir: string;
  gitToken: string;
  log: (line: string) => void;
  started: OperatorProcess[];
}

async function assemble({ opts, tb, dir, gitToken, log, started }: AssembleInput): Promise<Stack> {
  const admin = tb.controlPlane.kubeconfigPath;
  const kubectl = (args: string[], input?: string): Promise<string> =>
    runChecked(tb.binaries.kubectl, ["--kubeconfig", admin, ...args], {
      timeoutMs: 120_000,
      ...(input !== undefined ? { input } : {}),
    });
  const applied = await applyClusterSetup(kubectl);
  log(`CRDs and deploy/base RBAC applied: ${applied.join(", ")}`);

  const kubeconfigs = { nio: join(dir, "nio.kubeconfig"), nico: join(dir, "nico.kubeconfig") };
  await serviceAccountKubeconfig(tb, "nio", kubeconfigs.nio);
  await serviceAccountKubeconfig(tb, "nico", kubeconfigs.nico);

  const repo = await openRepo(tb, gitToken, join(dir, "repo"));
  const flake = await readTreeFiles(join(repoRoot, "nix"), "nix");
  const push = (message: string, extra: Record<string, string> = {}): Promise<string> =>
    repo.commitAndPush({ ...flake, ...extra }, message, { allowEmpty: true });
  const first = await push("the project flake");
  const repoUrl = tb.git.repoUrl(REPO_NAME);
  log(`pushed nix/ to ${repoUrl} (commit ${first.slice(0, 12)})`);

  const webhookSecret = randomBytes(24).toString("hex");
  const setup = (kubeconfig: string): OperatorSetup => ({ tb, dir, kubeconfig, log });
  const nio: OperatorProcess[] = [];
  for (let i = 0; i < (opts.nioReplicas ?? 1); i++) {
    nio.push(
      await makeOperator(setup(kubeconfigs.nio), `nio-${i}`, "nio", {
        NIO_WEBHOOK_SECRET: webhookSecret,
        ...opts.nioEnv,
      }),
    );
  }
  const nico = await makeOperator(setup(kubeconfigs.nico), "nico", "nico", {
    NICO_WEBHOOK_SECRET: webhookSecret,
    ...opts.nicoEnv,
  });
  started.push(...nio, nico);
  await Promise.all(started.map((o) => o.start()));

  const kube = createKube(loadKubeConfig(admin));
  let stopped = false;
  const stack: Stack = {
    tb,
    kube,
    kubectl,
    repoUrl,
    gitToken,
    push,
    nio,
    nico,
    webhookSecret,
    kubeconfigs,
    dir,
    seedManifests: async (seedOpts = {}) =>
      seedManifests(
        tb.fleet.hosts,
        { privateKey: await readFile(tb.operatorKey.privateKeyPath), gitToken, repoUrl },
        seedOpts,
      ),
    async seed(seedOpts = {}) {
      const docs = await stack.seedManifests(seedOpts);
      await kubectl(
        ["apply", "--server-side", "--field-manager=stack-seed", "-f", "-"],
        docs.map((d) => stringify(d)).join("---\n"),
      );
      log(`seeded ${docs.map((d) => `${d.kind}/${d.metadata.name}`).join(", ")}`);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(started.map((o) => o.kill("SIGTERM")));
      kube.close();
      if (!opts.detached) await tb.stop();
      if (opts.dir === undefined) await rm(dir, { recursive: true, force: true });
      log("stack stopped");
    },
  };
  return stack;
}

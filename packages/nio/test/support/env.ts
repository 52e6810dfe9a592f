import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import {
  GitFixture,
  freePort,
  repoRoot,
  runChecked,
  startTestbed,
  waitFor,
  type Host,
  type Testbed,
} from "@nio/testbed";
import { createKube, loadKubeConfig, type Kube, type KubeObject } from "@nio/runtime";
import { createNio, type Nio } from "../../src/operator.js";
import { machines, nixosConfigurations, secrets, type ConfigObject, type MachineObject } from "../../src/resources.js";

export const GIT_TOKEN = "testbed-git-token-4f1c9a";
export const WEBHOOK_SECRET = "testbed-webhook-secret";
export const NS = "default";

/** The fleet flake every NIO test applies from: one attribute per use, and a version marker per commit. */
export function fleetFlake(): string {
  return `{
  description = "NIO test fleet";
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";
  inputs.disko.url = "github:nix-community/disko";
  outputs = { nixpkgs, disko, ... }:
    let
      mk = name: extra: nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        modules = [ ./configuration.nix { networking.hostName = name; } ] ++ extra;
      };
      custom = if builtins.pathExists ./config/custom.nix then [ ./config/custom.nix ] else [ ];
    in {
      nixosConfigurations = {
        worker = mk "worker" custom;
        other = mk "other" [ ];
        minimal = mk "minimal" [ ];
        installable = mk "installable" [
          disko.nixosModules.disko
          { disko.devices.disk.main = { device = "/dev/vda"; type = "disk"; }; }
        ];
      };
    };
}
`;
}

export function configurationNix(version: string): string {
  return `{ ... }: {\n  services.openssh.enable = true;\n  environment.etc."nio-version".text = "${version}";\n}\n`;
}

export interface NioTestEnv {
  tb: Testbed;
  kube: Kube;
  nio: Nio;
  repo: GitFixture;
  repoUrl: string;
  dir: string;
  webhookPort: number;
  /** Commits `configuration.nix` with a new version marker (and any extra files) and pushes; returns the commit. */
  push(version: string, extra?: Record<string, string>): Promise<string>;
  create<T extends KubeObject>(obj: T): Promise<T>;
  machine(name: string): Promise<MachineObject>;
  configuration(name: string): Promise<ConfigObject>;
  kubectl(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export async function startNioTestEnv(opts: {
  hosts: number | string[];
  env?: Record<string, string>;
}): Promise<NioTestEnv> {
  const dir = await mkdtemp(join(tmpdir(), "nio-test-"));
  const tb = await startTestbed({ hosts: opts.hosts, gitToken: GIT_TOKEN });
  const kubectl = (args: string[]): Promise<string> =>
    runChecked(tb.binaries.kubectl, ["--kubeconfig", tb.controlPlane.kubeconfigPath, ...args]);
  await kubectl(["apply", "--server-side", "-f", join(repoRoot, "crds")]);
  await kubectl(["wait", "--for=condition=Established", "--timeout=30s", "crd", "--all"]);
  const kube = createKube(loadKubeConfig(tb.controlPlane.kubeconfigPath));

  const repo = await GitFixture.create({
    server: tb.git,
    repo: "fleet",
    token: GIT_TOKEN,
    workDir: join(dir, "fleet"),
  });
  const push = async (version: string, extra: Record<string, string> = {}): Promise<string> =>
    repo.commitAndPush(
      { "flake.nix": fleetFlake(), "configuration.nix": configurationNix(version), ...extra },
      version,
    );
  await push("v1");

  process.env.NIO_TESTBED_ANYWHERE_LOG = join(tb.dir, "nixos-anywhere.jsonl");
  const webhookPort = await freePort();
  const nio = createNio({
    kubeconfigPath: tb.controlPlane.kubeconfigPath,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
    nixosAnywhere: join(tb.operatorToolsDir, "nixos-anywhere"),
    env: {
      METRICS_PORT: "0",
      HEALTH_CHECK_PORT: "0",
      BIND_ADDRESS: "127.0.0.1",
      ENABLE_LEADER_ELECTION: "false",
      NIO_BASE_CONFIG_PATH: join(dir, "work"),
      NIO_KNOWN_HOSTS_PATH: join(dir, "known_hosts"),
      NIO_MACHINE_DISCOVERY_INTERVAL: "30",
      NIO_CONFIG_RECONCILE_INTERVAL: "2",
      NIO_RETRY_INITIAL_DELAY: "0.2",
      NIO_RETRY_MAX_DELAY: "1",
      NIO_WEBHOOK_PORT: String(webhookPort),
      NIO_WEBHOOK_SECRET: WEBHOOK_SECRET,
      ...opts.env,
    },
  });
  await nio.start();
  return {
    tb,
    kube,
    nio,
    repo,
    repoUrl: tb.git.repoUrl("fleet"),
    dir,
    webhookPort,
    push,
    create: <T extends KubeObject>(obj: T) => kube.create<T>(resourceOf(obj), obj),
    machine: (name) => kube.get<MachineObject>(machines, { namespace: NS, name }),
    configuration: (name) => kube.get<ConfigObject>(nixosConfigurations, { namespace: NS, name }),
    kubectl,
    async stop() {
      await nio.stop();
      kube.close();
      await repo.cleanup();
      await tb.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function resourceOf(obj: KubeObject): typeof machines {
  if (obj.kind === "Machine") return machines;
  if (obj.kind === "NixosConfiguration") return nixosConfigurations;
  if (obj.kind === "Secret") return secrets;
  throw new Error(`no resource for kind ${obj.kind}`);
}

export function secret(
  name: string,
  data: Record<string, string | Buffer>,
): KubeObject & { data: Record<string, string> } {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: NS },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
  };
}

export function machineFor(name: string, host: Host, extra: Record<string, unknown> = {}): MachineObject {
  return {
    apiVersion: "nio.homystack.com/v1alpha1",
    kind: "Machine",
    metadata: { name, namespace: NS },
    spec: {
      hostname: name,
      ipAddress: host.address,
      sshPort: host.port,
      sshUser: "root",
      sshKeySecretRef: { name: "worker-ssh-key" },
      ...extra,
    },
  } as MachineObject;
}

export function configFor(
  name: string,
  machine: string,
  repoUrl: string,
  spec: Record<string, unknown> = {},
): ConfigObject {
  return {
    apiVersion: "nio.homystack.com/v1alpha1",
    kind: "NixosConfiguration",
    metadata: { name, namespace: NS },
    spec: {
      gitRepo: repoUrl,
      flake: ".#worker",
      machineRef: { name: machine },
      credentialsRef: { name: "git-credentials" },
      ...spec,
    },
  } as ConfigObject;
}

interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
}

export function condition(obj: { status?: { conditions?: Cond[] } }, type: string): Cond | undefined {
  return obj.status?.conditions?.find((c) => c.type === type);
}

/** Waits until `check` holds for the object, returning it. */
export async function until<T>(
  what: string,
  get: () => Promise<T>,
  check: (o: T) => boolean,
  timeoutMs = 60_000,
): Promise<T> {
  return waitFor(
    what,
    async () => {
      const o = await get();
      return check(o) ? o : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
}

export async function listSources(host: Host): Promise<string[]> {
  return readdir(join(host.rootDir, "var/lib/nio/src")).catch(() => []);
}

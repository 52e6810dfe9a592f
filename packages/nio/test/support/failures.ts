/** Helpers for the failure-mode tests: one git repository per scenario, annotations, events, sshd sessions. */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { GitFixture, type Host } from "@nio/testbed";
import type { KubeObject, ResourceType } from "@nio/runtime";
import { machines, nixosConfigurations } from "../../src/resources.js";
import { GIT_TOKEN, NS, configurationNix, fleetFlake, secret, type NioTestEnv } from "./env.js";

export const events: ResourceType = { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true };

/** A git repository of its own (so pushes of one scenario never touch another's configurations). */
export interface ScenarioRepo {
  url: string;
  fixture: GitFixture;
  /** Commits the fleet flake with `configuration.nix` for `version` (or the given content) and pushes. */
  push(version: string, extra?: Record<string, string>): Promise<string>;
}

export async function scenarioRepo(env: NioTestEnv, name: string): Promise<ScenarioRepo> {
  const fixture = await GitFixture.create({
    server: env.tb.git,
    repo: name,
    token: GIT_TOKEN,
    workDir: join(env.dir, `repo-${name}`),
  });
  const push = (version: string, extra: Record<string, string> = {}): Promise<string> =>
    fixture.commitAndPush(
      { "flake.nix": fleetFlake(), "configuration.nix": configurationNix(version), ...extra },
      version,
    );
  return { url: env.tb.git.repoUrl(name), fixture, push };
}

/** The Secrets every scenario uses: the operator SSH key and the git token. */
export async function createSecrets(env: NioTestEnv): Promise<void> {
  const key = await readFile(env.tb.operatorKey.privateKeyPath);
  await env.create(secret("worker-ssh-key", { "ssh-privatekey": key }));
  await env.create(secret("git-credentials", { token: GIT_TOKEN }));
}

/** Sets (string) or removes (null) annotations on a Machine or NixosConfiguration with a merge patch. */
export async function annotate(
  env: NioTestEnv,
  kind: "Machine" | "NixosConfiguration",
  name: string,
  annotations: Record<string, string | null>,
): Promise<void> {
  const res = kind === "Machine" ? machines : nixosConfigurations;
  await env.kube.patch(res, { namespace: NS, name }, { metadata: { annotations } }, "merge");
}

let requestCounter = 0;

/** Asks for an immediate reconcile (Machine: a discovery now) with a new `reconcile-requested-at` value. */
export async function requestReconcile(
  env: NioTestEnv,
  kind: "Machine" | "NixosConfiguration",
  name: string,
): Promise<void> {
  requestCounter++;
  await annotate(env, kind, name, {
    "nio.homystack.com/reconcile-requested-at": `${new Date().toISOString()}-${requestCounter}`,
  });
}

export interface EventObject extends KubeObject {
  type?: string;
  reason?: string;
  message?: string;
  involvedObject?: { kind?: string; name?: string; uid?: string };
}

/** Events about one object (by kind and name) in the test namespace. */
export async function eventsFor(env: NioTestEnv, kind: string, name: string): Promise<EventObject[]> {
  const list = await env.kube.list<EventObject>(events, { namespace: NS });
  return list.items.filter((e) => e.involvedObject?.kind === kind && e.involvedObject.name === name);
}

export async function cmdline(pid: number): Promise<string> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

export interface ProcInfo {
  pid: number;
  nsPid: number | undefined;
  comm: string;
  cmdline: string;
}

export async function hostProcs(host: Host): Promise<ProcInfo[]> {
  const procs = await host.processes();
  return Promise.all(procs.map(async (p) => ({ ...p, cmdline: await cmdline(p.pid) })));
}

/**
 * The sshd processes serving connections (the per-connection monitor "sshd: root [priv]" and its session child
 * "sshd: root@notty"): every sshd of the host except its listener (PID 1 of the host's PID namespace).
 */
export async function sshdSessions(host: Host): Promise<ProcInfo[]> {
  return (await hostProcs(host)).filter((p) => p.comm === "sshd" && p.nsPid !== 1 && p.cmdline.startsWith("sshd:"));
}

/** Parent PIDs of `pid`, nearest first (as seen from outside the host). */
export async function ancestors(pid: number): Promise<number[]> {
  const out: number[] = [];
  let cur = pid;
  for (let i = 0; i < 64; i++) {
    let stat: string;
    try {
      stat = await readFile(`/proc/${cur}/stat`, "utf8");
    } catch {
      break;
    }
    // "pid (comm) state ppid …": comm may contain spaces and parentheses, so parse after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (!Number.isInteger(ppid) || ppid <= 1) break;
    out.push(ppid);
    cur = ppid;
  }
  return out;
}

/** Fingerprint (`SHA256:…`) quoted in a HostKeyVerified condition message: the presented (new) key's. */
export function presentedFingerprint(message: string): string | undefined {
  return /presented (SHA256:[A-Za-z0-9+/]+)/.exec(message)?.[1];
}

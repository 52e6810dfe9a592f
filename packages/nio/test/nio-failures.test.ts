import { expect } from "chai";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { KubeApiError, isNotFound, type KubeObject } from "@nio/runtime";
import { sleep, waitFor, type Host } from "@nio/testbed";
import { machines, nixosConfigurations, type ConfigObject, type MachineObject } from "../src/resources.js";
import { NS, condition, configFor, machineFor, startNioTestEnv, until, type NioTestEnv } from "./support/env.js";
import {
  ancestors,
  annotate,
  createSecrets,
  eventsFor,
  hostProcs,
  presentedFingerprint,
  requestReconcile,
  scenarioRepo,
  sshdSessions,
  type ScenarioRepo,
} from "./support/failures.js";
import { acceptedLogins } from "./support/hosts.js";

const ACCEPT_HOST_KEY = "nio.homystack.com/accept-host-key";

/** OpenSSH-style fingerprint of a public key line, computed here independently of NIO. */
function sshFingerprint(keyLine: string): string {
  const blob = keyLine.trim().split(/\s+/)[1] ?? "";
  return `SHA256:${createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64").replace(/=+$/, "")}`;
}

const keyOnly = (line: string): string => line.trim().split(/\s+/).slice(0, 2).join(" ");

const isReady = (o: ConfigObject | MachineObject): boolean => condition(o, "Ready")?.status === "True";

async function isGone(get: () => Promise<unknown>): Promise<boolean> {
  try {
    await get();
    return false;
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}

async function deleteAndWait(env: NioTestEnv, kind: "Machine" | "NixosConfiguration", name: string): Promise<void> {
  const res = kind === "Machine" ? machines : nixosConfigurations;
  try {
    await env.kube.delete(res, { namespace: NS, name });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await waitFor(
    `${kind} ${name} deleted`,
    async () => ((await isGone(() => env.kube.get(res, { namespace: NS, name }))) ? true : undefined),
    { timeoutMs: 30_000, intervalMs: 200 },
  );
}

/** Creates a Machine for `host` and a configuration on it, and waits until `commit` is applied. */
async function applyFirst(
  env: NioTestEnv,
  host: Host,
  repo: ScenarioRepo,
  opts: { config: string; commit: string; machine?: Record<string, unknown>; spec?: Record<string, unknown> },
): Promise<ConfigObject> {
  await env.create(machineFor(host.name, host, opts.machine));
  await env.create(configFor(opts.config, host.name, repo.url, opts.spec));
  return until(
    `${opts.config} applies ${opts.commit.slice(0, 8)}`,
    () => env.configuration(opts.config),
    (c) => isReady(c) && c.status?.appliedCommit === opts.commit,
  );
}

describe("NIO failure modes on the testbed", function () {
  this.timeout(90_000);
  let env: NioTestEnv;

  before(async function () {
    this.timeout(120_000);
    env = await startNioTestEnv({
      hosts: ["down-01", "key-01", "build-01", "conflict-01", "drop-01", "deploy-01", "backoff-01"],
      // Retry delays of 1 s and 2 s: long enough to measure, short enough for the bounded-retry test.
      env: { NIO_RETRY_INITIAL_DELAY: "1", NIO_RETRY_MAX_DELAY: "2" },
    });
    await createSecrets(env);
  });
  after(async () => env?.stop());

  // Shared by the two host-down tests.
  let downV2 = "";

  it("host down: Unreachable (Machine Reachable=False, discoverable=false), the last good commit is kept", async () => {
    const host = env.tb.fleet.host("down-01");
    const repo = await scenarioRepo(env, "down");
    const v1 = await repo.push("v1");
    await applyFirst(env, host, repo, { config: "down-config", commit: v1 });

    await host.stop();
    await requestReconcile(env, "Machine", "down-01");
    const m = await until(
      "Machine Reachable=False",
      () => env.machine("down-01"),
      (x) => condition(x, "Reachable")?.status === "False",
    );
    expect(m.status?.discoverable).to.equal(false);
    expect(condition(m, "Reachable")?.reason).to.equal("Unreachable");
    expect(m.status?.appliedCommit, "the Machine keeps its commit too").to.equal(v1);

    downV2 = await repo.push("v2");
    const cfg = await until(
      "configuration Ready=False reason Unreachable for v2",
      () => env.configuration("down-config"),
      (c) => condition(c, "Ready")?.status === "False" && c.status?.lastAttempt?.commit === downV2,
    );
    expect(condition(cfg, "Ready")?.reason).to.equal("Unreachable");
    expect(cfg.status?.appliedCommit, "the last good commit is kept").to.equal(v1);
    expect(cfg.status?.lastAttempt?.result).to.not.equal("Succeeded");
    expect((await env.machine("down-01")).status?.appliedCommit).to.equal(v1);
    expect(await host.rebuildRecords()).to.have.length(1);
  });

  it("host back up: the pending commit is applied without any other change", async () => {
    const host = env.tb.fleet.host("down-01");
    expect(downV2, "runs after the host-down test").to.not.equal("");
    await host.start();
    // Discovery would notice within NIO_MACHINE_DISCOVERY_INTERVAL (30 s); ask for it now.
    await requestReconcile(env, "Machine", "down-01");
    await until(
      "Machine Reachable=True again",
      () => env.machine("down-01"),
      (x) => condition(x, "Reachable")?.status === "True" && x.status?.discoverable === true,
      20_000,
    );
    const back = await until(
      "v2 applied once the host is back",
      () => env.configuration("down-config"),
      (c) => isReady(c) && c.status?.appliedCommit === downV2,
      30_000,
    );
    expect(back.status?.lastAttempt?.result).to.equal("Succeeded");
    const records = await host.rebuildRecords();
    expect(records).to.have.length(2);
    expect(records[1]?.result).to.equal("success");
    const machine = await env.machine("down-01");
    expect(machine.status?.discoverable).to.equal(true);
    expect(machine.status?.appliedCommit).to.equal(downV2);
  });

  it("a failing apply is retried with the NIO_RETRY_* backoff, not at once", async () => {
    const host = env.tb.fleet.host("backoff-01");
    const repo = await scenarioRepo(env, "backoff");
    const v1 = await repo.push("v1");
    await applyFirst(env, host, repo, { config: "backoff-config", commit: v1 });
    await host.stop();
    const base = await failedCount(env, "Unreachable");
    await repo.push("v2");
    const times: number[] = [];
    let seen = base;
    await waitFor(
      "three Unreachable attempts",
      async () => {
        const n = await failedCount(env, "Unreachable");
        for (; seen < n; seen++) times.push(Date.now());
        return n - base >= 3 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    const [t1 = 0, t2 = 0, t3 = 0] = times;
    expect(t2 - t1, "wait before the second attempt (NIO_RETRY_INITIAL_DELAY = 1 s)").to.be.at.least(800);
    expect(t3 - t2, "wait before the third attempt (1 s × 2)").to.be.at.least(1_800);
  });

  it("host key changed: all work stops (HostKeyMismatch, Warning event) until the new key is accepted", async () => {
    const host = env.tb.fleet.host("key-01");
    const repo = await scenarioRepo(env, "hostkey");
    const v1 = await repo.push("v1");
    await applyFirst(env, host, repo, { config: "key-config", commit: v1 });
    const oldKey = (await env.machine("key-01")).status?.sshHostKey;
    expect(oldKey).to.equal(keyOnly(await host.hostPublicKey()));

    const newKey = await host.changeHostKey();
    const recordsBefore = (await host.rebuildRecords()).length;
    const loginsBefore = await acceptedLogins(host);
    await requestReconcile(env, "Machine", "key-01");
    const m = await until(
      "Machine HostKeyVerified=False",
      () => env.machine("key-01"),
      (x) => condition(x, "HostKeyVerified")?.status === "False",
    );
    const cond = condition(m, "HostKeyVerified");
    expect(cond?.reason).to.equal("HostKeyMismatch");
    expect(m.status?.sshHostKey, "the recorded key is not replaced silently").to.equal(oldKey);
    const presented = presentedFingerprint(cond?.message ?? "");
    expect(presented, `fingerprint in: ${cond?.message}`).to.equal(sshFingerprint(newKey));
    const warnings = await until(
      "Warning event HostKeyMismatch",
      () => eventsFor(env, "Machine", "key-01"),
      (evs) => evs.some((e) => e.type === "Warning" && e.reason === "HostKeyMismatch"),
      15_000,
    );
    expect(warnings.find((e) => e.reason === "HostKeyMismatch")?.message).to.contain(sshFingerprint(newKey));

    // A new commit is not applied while the key is not accepted.
    const v2 = await repo.push("v2");
    const waiting = await until(
      "configuration Ready=False reason HostKeyMismatch",
      () => env.configuration("key-config"),
      (c) => condition(c, "Ready")?.status === "False" && condition(c, "Ready")?.reason === "HostKeyMismatch",
      15_000,
    );
    expect(waiting.status?.appliedCommit).to.equal(v1);
    await sleep(5_000);
    expect(await host.rebuildRecords(), "no nixos-rebuild after the key changed").to.have.length(recordsBefore);
    expect(await acceptedLogins(host), "no SSH login after the key changed").to.equal(loginsBefore);
    expect((await env.configuration("key-config")).status?.appliedCommit).to.equal(v1);

    // A person accepts the new key with its fingerprint (as the condition message says).
    await annotate(env, "Machine", "key-01", { [ACCEPT_HOST_KEY]: presented ?? "" });
    const accepted = await until(
      "new host key recorded and annotation removed",
      () => env.machine("key-01"),
      (x) =>
        condition(x, "HostKeyVerified")?.status === "True" &&
        x.status?.sshHostKey === keyOnly(newKey) &&
        x.metadata.annotations?.[ACCEPT_HOST_KEY] === undefined,
      30_000,
    );
    expect(accepted.status?.sshHostKey).to.equal(keyOnly(newKey));
    await until(
      "pending v2 applied after the key was accepted",
      () => env.configuration("key-config"),
      (c) => isReady(c) && c.status?.appliedCommit === v2,
    );
    expect(await host.rebuildRecords()).to.have.length(recordsBefore + 1);
  });

  it("failing build: BuildFailed with Nix's error, bounded retries, last good commit kept; a fix applies", async () => {
    const host = env.tb.fleet.host("build-01");
    const repo = await scenarioRepo(env, "build");
    const v1 = await repo.push("v1");
    await applyFirst(env, host, repo, { config: "build-config", commit: v1 });
    const before = (await host.rebuildRecords()).length;

    const broken = await repo.push("broken", {
      "configuration.nix": '{ ... }: {\n  environment.etc."nio-version".text = nioUndefinedVariable;\n}\n',
    });
    const failed = await until(
      "BuildFailed for the broken commit",
      () => env.configuration("build-config"),
      (c) =>
        condition(c, "Ready")?.status === "False" &&
        c.status?.lastAttempt?.commit === broken &&
        c.status.lastAttempt.result === "Failed",
    );
    expect(condition(failed, "Ready")?.reason).to.equal("BuildFailed");
    expect(failed.status?.lastAttempt?.logTail ?? "").to.contain("undefined variable");
    expect(failed.status?.lastAttempt?.logTail ?? "").to.contain("nioUndefinedVariable");
    expect(failed.status?.appliedCommit, "the last good commit is kept").to.equal(v1);
    expect((await env.machine("build-01")).status?.appliedCommit).to.equal(v1);

    // NIO_RETRY_MAX_ATTEMPTS = 3: three runs, then none for this commit.
    await until(
      "three attempts",
      () => host.rebuildRecords(),
      (r) => r.length - before >= 3,
      30_000,
    );
    await sleep(5_000);
    const attempts = (await host.rebuildRecords()).slice(before);
    expect(attempts, "retries are bounded by NIO_RETRY_MAX_ATTEMPTS").to.have.length(3);
    for (const r of attempts) expect(r.result).to.equal("failed");
    expect(new Set(attempts.map((r) => r.flakeDir)).size, "all for the broken commit").to.equal(1);

    const fixed = await repo.push("v3");
    await until(
      "the fixed commit applies",
      () => env.configuration("build-config"),
      (c) => isReady(c) && c.status?.appliedCommit === fixed,
    );
    expect((await host.rebuildRecords()).slice(before)).to.have.length(4);

    // The fault switch: nixos-rebuild fails with exit code 3 and "boom" on stderr.
    await host.setFailingApply({ exitCode: 3, stderr: "boom" });
    try {
      const v4 = await repo.push("v4");
      const boom = await until(
        "BuildFailed from the failing-apply fault",
        () => env.configuration("build-config"),
        (c) =>
          condition(c, "Ready")?.status === "False" &&
          c.status?.lastAttempt?.commit === v4 &&
          c.status.lastAttempt.result === "Failed",
      );
      expect(condition(boom, "Ready")?.reason).to.equal("BuildFailed");
      expect(boom.status?.lastAttempt?.logTail ?? "").to.contain("boom");
      expect(boom.status?.appliedCommit).to.equal(fixed);
      const last = (await host.rebuildRecords()).at(-1);
      expect(last?.fault).to.equal("failing-apply");
      expect(last?.exitCode).to.equal(3);
    } finally {
      await host.setFailingApply(undefined);
    }
  });

  it("two configurations on one machine: the newer is Stalled (MachineConflict) until the older is deleted", async () => {
    const host = env.tb.fleet.host("conflict-01");
    const repo = await scenarioRepo(env, "conflict");
    const v1 = await repo.push("v1");
    await applyFirst(env, host, repo, { config: "conflict-older", commit: v1 });
    await env.create(configFor("conflict-newer", "conflict-01", repo.url, { flake: ".#other" }));

    const newer = await until(
      "newer configuration Stalled=True MachineConflict",
      () => env.configuration("conflict-newer"),
      (c) => condition(c, "Stalled")?.status === "True",
      20_000,
    );
    expect(condition(newer, "Stalled")?.reason).to.equal("MachineConflict");
    expect(condition(newer, "Stalled")?.message).to.contain("conflict-older");
    expect(condition(newer, "Ready")?.status).to.equal("False");

    // The older keeps working: a new commit is applied by it (attr worker), never by the newer (attr other).
    const v2 = await repo.push("v2");
    await until(
      "older applies v2",
      () => env.configuration("conflict-older"),
      (c) => isReady(c) && c.status?.appliedCommit === v2,
    );
    let records = await host.rebuildRecords();
    expect(records.map((r) => r.attr)).to.deep.equal(["worker", "worker"]);
    expect((await env.configuration("conflict-newer")).status?.appliedCommit).to.equal(undefined);
    expect((await env.machine("conflict-01")).status?.appliedConfiguration).to.equal("conflict-older");

    await deleteAndWait(env, "NixosConfiguration", "conflict-older");
    const proceeded = await until(
      "newer applies once the older is gone",
      () => env.configuration("conflict-newer"),
      (c) => isReady(c) && c.status?.appliedCommit === v2,
    );
    expect(condition(proceeded, "Stalled")).to.equal(undefined);
    records = await host.rebuildRecords();
    expect(records.map((r) => r.attr)).to.deep.equal(["worker", "worker", "other"]);
    expect((await env.machine("conflict-01")).status?.appliedConfiguration).to.equal("conflict-newer");
  });

  it("two configurations on one machine: after the handover the Machine records the newer one", async () => {
    const v2 = (await env.configuration("conflict-newer")).status?.appliedCommit;
    expect(v2, "runs after the conflict test").to.be.a("string");
    const m = await env.machine("conflict-01");
    expect(m.status?.appliedConfiguration).to.equal("conflict-newer");
    expect(m.status?.hasConfiguration).to.equal(true);
    expect(m.status?.appliedCommit).to.equal(v2);
  });

  it("SSH drop during the switch: NIO reconnects and reads the outcome, no second nixos-rebuild", async () => {
    const host = env.tb.fleet.host("drop-01");
    const repo = await scenarioRepo(env, "drop");
    const v1 = await repo.push("v1");
    await applyFirst(env, host, repo, { config: "drop-config", commit: v1 });
    const before = (await host.rebuildRecords()).length;

    await host.setSlowApply(4);
    try {
      const v2 = await repo.push("v2");
      await waitFor(
        "nixos-rebuild running on drop-01",
        async () => ((await hostProcs(host)).some((p) => p.comm === "nixos-rebuild") ? true : undefined),
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      const sessions = await sshdSessions(host);
      // The foreground of NIO's apply (the wrapper shell started over SSH) runs under one of these sessions.
      const wrapper = (await hostProcs(host)).find((p) => p.cmdline.includes("nio-apply"));
      expect(wrapper, "NIO's apply wrapper is running").to.not.equal(undefined);
      const chain = await ancestors(wrapper?.pid ?? 0);
      expect(
        sessions.some((p) => chain.includes(p.pid)),
        "the sshd sessions to kill serve NIO's apply",
      ).to.equal(true);
      const loginsAtDrop = await acceptedLogins(host);
      for (const p of sessions) {
        try {
          process.kill(p.pid, "SIGKILL");
        } catch {
          // ended meanwhile
        }
      }
      await waitFor(
        "killed sshd sessions gone",
        async () => {
          const left = new Set((await hostProcs(host)).map((p) => p.pid));
          return sessions.every((p) => !left.has(p.pid)) ? true : undefined;
        },
        { timeoutMs: 5_000, intervalMs: 50 },
      );
      expect(await host.isRunning(), "the sshd listener is still up").to.equal(true);
      expect(
        (await hostProcs(host)).some((p) => p.comm === "nixos-rebuild"),
        "the detached nixos-rebuild survives the dropped session",
      ).to.equal(true);

      await until(
        "v2 applied after the reconnect",
        () => env.configuration("drop-config"),
        (c) => isReady(c) && c.status?.appliedCommit === v2,
      );
      expect(await acceptedLogins(host), "NIO logged in again to read the outcome").to.be.greaterThan(loginsAtDrop);
      await sleep(4_000);
      const records = (await host.rebuildRecords()).slice(before);
      expect(records, "exactly one nixos-rebuild for v2 (no blind re-run)").to.have.length(1);
      expect(records[0]?.result).to.equal("success");
      expect(records[0]?.slowApplySeconds).to.equal(4);
      const m = await env.machine("drop-01");
      expect(m.status?.appliedCommit).to.equal(v2);
      expect(m.status?.currentSystem).to.equal(await host.currentSystem());
    } finally {
      await host.setSlowApply(0);
    }
  });

  it("non-root sshUser: the apply runs through sudo -n and succeeds", async () => {
    const host = env.tb.fleet.host("deploy-01");
    await host.setAuthorizedKeys("deploy", [env.tb.operatorKey.publicKey]);
    const repo = await scenarioRepo(env, "deploy");
    const v1 = await repo.push("v1");
    const cfg = await applyFirst(env, host, repo, {
      config: "deploy-config",
      commit: v1,
      machine: { sshUser: "deploy" },
    });
    expect(cfg.status?.lastAttempt?.result).to.equal("Succeeded");
    const records = await host.rebuildRecords();
    expect(records).to.have.length(1);
    expect(records[0]?.user).to.equal("root");
    expect(records[0]?.sudoUser).to.equal("deploy");
    expect(records[0]?.result).to.equal("success");
    const m = await env.machine("deploy-01");
    expect(m.status?.appliedCommit).to.equal(v1);
    expect(m.status?.currentSystem).to.equal(await host.currentSystem());
  });

  it("status after a re-apply and after repeated failures is final (Succeeded / Failed, no Reconciling)", async () => {
    const host = env.tb.fleet.host("deploy-01");
    const repo = await scenarioRepo(env, "status");
    const v1 = await repo.push("v1");
    await deleteAndWait(env, "NixosConfiguration", "deploy-config");
    await env.create(configFor("status-config", "deploy-01", repo.url));
    await until(
      "status-config applies v1",
      () => env.configuration("status-config"),
      (c) => isReady(c) && c.status?.appliedCommit === v1,
    );
    const v2 = await repo.push("v2");
    const ok = await until(
      "v2 applied",
      () => env.configuration("status-config"),
      (c) => isReady(c) && c.status?.appliedCommit === v2,
    );
    await sleep(1_000);
    const settled = await env.configuration("status-config");
    expect(settled.status?.appliedCommit).to.equal(ok.status?.appliedCommit);
    expect(settled.status?.lastAttempt?.result).to.equal("Succeeded");
    expect(settled.status?.lastAttempt?.finished).to.be.a("string");
    expect(condition(settled, "Reconciling")).to.equal(undefined);

    const before = (await host.rebuildRecords()).length;
    await host.setFailingApply({ exitCode: 3, stderr: "boom" });
    try {
      await repo.push("v3");
      await until(
        "three failed attempts",
        () => host.rebuildRecords(),
        (r) => r.length - before >= 3,
        30_000,
      );
      await sleep(3_000);
      const failed = await env.configuration("status-config");
      expect(condition(failed, "Ready")?.reason).to.equal("BuildFailed");
      expect(failed.status?.lastAttempt?.result).to.equal("Failed");
      expect(failed.status?.lastAttempt?.finished).to.be.a("string");
      expect(condition(failed, "Reconciling")?.status).to.not.equal("True");
    } finally {
      await host.setFailingApply(undefined);
    }
  });
});

/** nio_configurations_failed_total{reason} as the operator's registry has it now. */
async function failedCount(env: NioTestEnv, reason: string): Promise<number> {
  const text = await env.nio.manager.metrics.registry.getSingleMetricAsString("nio_configurations_failed_total");
  return text
    .split("\n")
    .filter((l) => l.startsWith("nio_configurations_failed_total{") && l.includes(`reason="${reason}"`))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Injection table
// ---------------------------------------------------------------------------------------------------------------

const MARKERS = [
  "/tmp/pwned-nio-semi",
  "/tmp/pwned-nio-subst",
  "/tmp/pwned-nio-tick",
  "/tmp/pwned-nio-pipe",
  "/tmp/pwned-nio-and",
  "/tmp/pwned-nio-nl",
  "/tmp/pwned-nio-nul",
];

interface FieldSpec {
  kind: "Machine" | "NixosConfiguration";
  /** The field as the API server names it. */
  field: string;
  base: string;
  /** A `..` value and a value with the wrong kind of path (absolute where relative is required, or vice versa). */
  dotdot: string;
  wrongPath: string;
  long?: string;
}

interface Row {
  spec: FieldSpec;
  label: string;
  value: string;
}

function rowsFor(spec: FieldSpec): Row[] {
  const b = spec.base;
  return [
    { label: "'; touch'", value: `${b}; touch /tmp/pwned-nio-semi` },
    { label: "'$(…)'", value: `${b}$(touch /tmp/pwned-nio-subst)` },
    { label: "backticks", value: `${b}\`touch /tmp/pwned-nio-tick\`` },
    { label: "'|'", value: `${b} | touch /tmp/pwned-nio-pipe` },
    { label: "'&&'", value: `${b} && touch /tmp/pwned-nio-and` },
    { label: "'..' segments", value: spec.dotdot },
    { label: "wrong path kind", value: spec.wrongPath },
    { label: "newline", value: `${b}\ntouch /tmp/pwned-nio-nl` },
    { label: "NUL", value: `${b}\u0000touch /tmp/pwned-nio-nul` },
    { label: "10k chars", value: spec.long ?? `${b}${"a".repeat(10_000)}` },
  ].map((r) => ({ ...r, spec }));
}

function fieldSpecs(repoUrl: string, hostKey: string): FieldSpec[] {
  const m = (field: string, base: string, dotdot: string, wrongPath: string, long?: string): FieldSpec => ({
    kind: "Machine",
    field,
    base,
    dotdot,
    wrongPath,
    long,
  });
  const c = (field: string, base: string, dotdot: string, wrongPath: string, long?: string): FieldSpec => ({
    kind: "NixosConfiguration",
    field,
    base,
    dotdot,
    wrongPath,
    long,
  });
  return [
    m("spec.hostname", "inj-host", "../../etc/passwd", "/etc/passwd"),
    m("spec.ipAddress", "127.0.0.1", "../127.0.0.1", "/127.0.0.1"),
    m("spec.sshUser", "deploy", "../root", "/root"),
    m("spec.sshHostKey", hostKey, `${hostKey} ../../etc/ssh`, `ssh-ed25519 /etc/ssh/ssh_host_ed25519_key.pub`),
    c("spec.gitRepo", repoUrl, `${repoUrl}/../../../../etc`, "/srv/git/fleet.git"),
    c("spec.ref", "main", "main/../../etc", "/refs/heads/main"),
    c("spec.flake", ".#worker", "../..#worker", "/etc/nixos#worker", `.#${"a".repeat(10_000)}`),
    c("spec.onRemoveFlake", "#minimal", "../..#minimal", "/etc/nixos#minimal", `#${"a".repeat(10_000)}`),
    c("spec.configurationSubdir", "hosts", "../../etc", "/etc/nixos"),
    c("spec.additionalFiles[0].path", "config/custom.nix", "../../etc/passwd", "/etc/nixos/custom.nix"),
    c("spec.hostFiles[0].path", "/etc/nio-test", "/etc/../root/.ssh/authorized_keys", "etc/nio-test"),
    c("spec.hostFiles[0].mode", "0600", "../0600", "/0600"),
    c("spec.machineRef.name", "inj-target", "../inj-target", "/inj-target"),
    c("spec.credentialsRef.name", "git-credentials", "../git-credentials", "/git-credentials"),
  ];
}

function injectedObject(row: Row, name: string, repoUrl: string, host: Host): KubeObject {
  const f = row.spec.field;
  if (row.spec.kind === "Machine") {
    const key = f.replace(/^spec\./, "");
    return machineFor(name, host, { hostname: name, [key]: row.value });
  }
  const spec: Record<string, unknown> = {};
  if (f === "spec.additionalFiles[0].path") {
    spec.additionalFiles = [{ path: row.value, value: { inline: "{ ... }: { }\n" } }];
  } else if (f === "spec.hostFiles[0].path") {
    spec.hostFiles = [{ path: row.value, mode: "0600", value: { inline: "x" } }];
  } else if (f === "spec.hostFiles[0].mode") {
    spec.hostFiles = [{ path: "/etc/nio-test", mode: row.value, value: { inline: "x" } }];
  } else if (f === "spec.machineRef.name") {
    spec.machineRef = { name: row.value };
  } else if (f === "spec.credentialsRef.name") {
    spec.credentialsRef = { name: row.value };
  } else {
    spec[f.replace(/^spec\./, "")] = row.value;
  }
  return configFor(name, "inj-target", repoUrl, spec);
}

function printable(s: string): string {
  const shown = JSON.stringify(s.length > 60 ? `${s.slice(0, 40)}…(${s.length} chars)` : s);
  return shown.slice(1, -1);
}

describe("NIO injection table: every user-controlled string field refuses hostile values", function () {
  this.timeout(60_000);
  let env: NioTestEnv;
  let host: Host;
  let counter = 0;
  // The rows need the repository URL and the host key, known only once the testbed runs; mocha needs the `it`s at
  // load time, so the table is built from placeholders and resolved in each test.
  const REPO = "http://127.0.0.1:1/fleet.git";
  const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDERPLACEHOLDERPLACEHOLDERPLACEHOLD";

  before(async function () {
    this.timeout(120_000);
    for (const mk of MARKERS) await rm(mk, { force: true });
    env = await startNioTestEnv({ hosts: ["inj-01"] });
    host = env.tb.fleet.host("inj-01");
    await createSecrets(env);
    // A valid Machine the injected configurations target; it has no configuration of its own.
    await env.create(machineFor("inj-target", host));
    await until(
      "inj-target contacted",
      () => env.machine("inj-target"),
      (m) => !!m.status?.sshHostKey,
      30_000,
    );
    expect(await host.rebuildRecords()).to.have.length(0);
  });
  after(async () => env?.stop());

  const resolveRow = async (row: Row): Promise<Row> => {
    const realKey = keyOnly(await host.hostPublicKey());
    const swap = (s: string): string => s.split(REPO).join(env.repoUrl).split(KEY).join(realKey);
    return {
      ...row,
      value: swap(row.value),
      spec: { ...row.spec, base: swap(row.spec.base), dotdot: swap(row.spec.dotdot) },
    };
  };

  async function expectNothingRan(baseline: number): Promise<void> {
    expect(await host.rebuildRecords(), "no nixos-rebuild ran").to.have.length(baseline);
    for (const mk of MARKERS) {
      expect(await host.exists(mk), `${mk} inside the host`).to.equal(false);
      expect(existsSync(mk), `${mk} on the real machine`).to.equal(false);
    }
  }

  async function expectRefused(template: Row): Promise<void> {
    const row = await resolveRow(template);
    const baseline = (await host.rebuildRecords()).length;
    counter++;
    const name = `inj-${row.spec.kind === "Machine" ? "m" : "c"}-${counter}`;
    const obj = injectedObject(row, name, env.repoUrl, host);
    let accepted = false;
    try {
      await env.create(obj);
      accepted = true;
    } catch (err) {
      expect(err, String(err)).to.be.instanceOf(KubeApiError);
      const e = err as KubeApiError;
      expect(e.statusCode, e.message).to.equal(422);
      expect(e.message, "the API server names the field").to.contain(row.spec.field);
    }
    if (accepted) {
      const kind = row.spec.kind;
      const cfgName = `${name}-cfg`;
      try {
        // A configuration on an accepted Machine: had NIO taken the value, it would run something on the host.
        if (kind === "Machine") await env.create(configFor(cfgName, name, env.repoUrl));
        const get = (): Promise<ConfigObject | MachineObject> =>
          kind === "Machine" ? env.machine(name) : env.configuration(name);
        const o = await until(
          `${kind} ${name} Stalled=True InvalidSpec`,
          get,
          (x) => condition(x, "Stalled")?.status === "True",
          15_000,
        ).catch(async (err: unknown) => {
          const now = await get();
          throw new Error(
            `${String(err)}; ${row.spec.field}=${printable(row.value)} accepted by the API server, conditions: ${JSON.stringify(now.status?.conditions)}`,
          );
        });
        expect(condition(o, "Stalled")?.reason).to.equal("InvalidSpec");
        expect(condition(o, "Stalled")?.message).to.contain(row.spec.field.replace(/\[0\]/, ""));
        await sleep(2_000);
        await expectNothingRan(baseline);
      } finally {
        if (kind === "Machine") await deleteAndWait(env, "NixosConfiguration", cfgName);
        await deleteAndWait(env, kind, name);
      }
    }
    await expectNothingRan(baseline);
  }

  for (const spec of fieldSpecs(REPO, KEY)) {
    for (const row of rowsFor(spec)) {
      const shown = row.value.split(REPO).join("<repoUrl>").split(KEY).join("<hostKey>");
      const title = `${spec.kind} ${spec.field} = ${printable(shown)} (${row.label})`;
      it(title, () => expectRefused(row));
    }
  }
});

import { expect } from "chai";
import { createHmac } from "node:crypto";
import { readFile } from "node:fs/promises";
import { readJsonLines } from "@nio/testbed";
import { isNotFound } from "@nio/runtime";
import { machines, nixosConfigurations } from "../src/resources.js";
import {
  GIT_TOKEN,
  NS,
  WEBHOOK_SECRET,
  condition,
  configFor,
  machineFor,
  secret,
  startNioTestEnv,
  until,
  type NioTestEnv,
} from "./support/env.js";

async function baseSecrets(env: NioTestEnv): Promise<void> {
  await env.create(secret("worker-ssh-key", { "ssh-privatekey": await readFile(env.tb.operatorKey.privateKeyPath) }));
  await env.create(secret("git-credentials", { token: GIT_TOKEN }));
}

const ready = (c: { status?: { conditions?: { type: string; status: string }[] } }): boolean =>
  c.status?.conditions?.some((x) => x.type === "Ready" && x.status === "True") ?? false;

describe("NIO: refs, full install, deletion, webhook", function () {
  this.timeout(240_000);

  describe("refs", () => {
    let env: NioTestEnv;
    before(async () => {
      env = await startNioTestEnv({ hosts: ["tag-01", "sha-01"] });
      await baseSecrets(env);
    });
    after(async () => env?.stop());

    it("applies an annotated tag (peeled) and a commit id, and stays on them when the branch moves", async () => {
      const tagged = await env.push("tagged");
      await env.repo.tag("release-1", { message: "release 1" });
      await env.repo.pushTag("release-1");
      const pinned = await env.push("pinned");
      await env.push("later");
      for (const m of ["tag-01", "sha-01"]) await env.create(machineFor(m, env.tb.fleet.host(m)));
      await env.create(configFor("by-tag", "tag-01", env.repoUrl, { ref: "release-1" }));
      await env.create(configFor("by-sha", "sha-01", env.repoUrl, { ref: pinned }));
      const byTag = await until("tag applied", () => env.configuration("by-tag"), ready);
      const bySha = await until("commit applied", () => env.configuration("by-sha"), ready);
      expect(byTag.status?.appliedCommit).to.equal(tagged);
      expect(bySha.status?.appliedCommit).to.equal(pinned);
      expect(
        await env.tb.fleet
          .host("tag-01")
          .readFile("/etc/hostname")
          .catch(() => Buffer.from("")),
      ).to.not.equal(undefined);
    });
  });

  describe("fullInstall", () => {
    let env: NioTestEnv;
    before(async () => {
      env = await startNioTestEnv({ hosts: ["fresh-01"] });
      await baseSecrets(env);
    });
    after(async () => env?.stop());

    it("installs with nixos-anywhere once, records the new host key, then uses nixos-rebuild; reinstalls only on request", async () => {
      const host = env.tb.fleet.host("fresh-01");
      const keyBefore = await host.hostPublicKey();
      await env.create(machineFor("fresh-01", host));
      await env.create(
        configFor("fresh", "fresh-01", env.repoUrl, {
          flake: ".#installable",
          fullInstall: true,
          hostFiles: [{ path: "/var/lib/nio-test/token", mode: "0400", value: { inline: "host-secret" } }],
        }),
      );
      let cfg = await until(
        "installed",
        () => env.configuration("fresh"),
        (c) => c.status?.fullInstallCompleted === true && ready(c),
      );
      const anywhere = await readJsonLines<{ argv: string[] }>(process.env.NIO_TESTBED_ANYWHERE_LOG ?? "");
      expect(anywhere).to.have.length(1);
      expect(anywhere[0]?.argv.join(" ")).to.match(
        /--flake \S+#installable .*--target-host root@127\.0\.0\.\d+ -p \d+ -i \S+/,
      );
      expect((await host.reinstallRecords()).length).to.equal(1);
      const keyAfter = await host.hostPublicKey();
      expect(keyAfter).to.not.equal(keyBefore);
      const m = await env.machine("fresh-01");
      expect(m.status?.sshHostKey).to.equal(keyAfter.split(" ").slice(0, 2).join(" "));
      expect((await host.readFile("/var/lib/nio-test/token")).toString()).to.equal("host-secret");
      expect((await host.fileMode("/var/lib/nio-test/token")) & 0o777).to.equal(0o400);

      const v2 = await env.push("v2");
      cfg = await until(
        "v2 switched",
        () => env.configuration("fresh"),
        (c) => c.status?.appliedCommit === v2,
      );
      expect(await readJsonLines(process.env.NIO_TESTBED_ANYWHERE_LOG ?? ""), "no second install").to.have.length(1);
      expect((await host.rebuildRecords()).map((r) => r.action)).to.deep.equal(["switch"]);

      await env.kube.patch(
        nixosConfigurations,
        { namespace: NS, name: "fresh" },
        { metadata: { annotations: { "nio.homystack.com/reinstall-requested-at": "2026-11-22T00:00:00Z" } } },
        "merge",
      );
      cfg = await until(
        "reinstalled",
        () => env.configuration("fresh"),
        (c) => c.status?.lastHandledReinstallAt === "2026-11-22T00:00:00Z",
      );
      expect(await readJsonLines(process.env.NIO_TESTBED_ANYWHERE_LOG ?? "")).to.have.length(2);
      expect(cfg.status?.fullInstallCompleted).to.equal(true);
    });
  });

  describe("deletion", () => {
    let env: NioTestEnv;
    before(async () => {
      env = await startNioTestEnv({ hosts: ["gone-01", "lost-01"] });
      await baseSecrets(env);
    });
    after(async () => env?.stop());

    it("applies onRemoveFlake before releasing, and clears the Machine's record of the configuration", async () => {
      const host = env.tb.fleet.host("gone-01");
      await env.create(machineFor("gone-01", host));
      await env.create(configFor("gone", "gone-01", env.repoUrl, { onRemoveFlake: "#minimal" }));
      await until("applied", () => env.configuration("gone"), ready);
      await env.kube.delete(nixosConfigurations, { namespace: NS, name: "gone" });
      await until(
        "configuration gone",
        async () => {
          try {
            await env.configuration("gone");
            return false;
          } catch (err) {
            return isNotFound(err);
          }
        },
        (gone) => gone,
      );
      const records = await host.rebuildRecords();
      expect(records.map((r) => r.attr)).to.deep.equal(["worker", "minimal"]);
      const m = await env.machine("gone-01");
      expect(m.status?.hasConfiguration).to.equal(false);
      expect(m.status?.appliedConfiguration).to.equal(undefined);
      expect(m.status?.appliedCommit).to.equal(undefined);
      expect(m.status?.currentSystem).to.match(/nixos-system-minimal$/);
    });

    it("does not hang when the Machine is missing", async () => {
      await env.create(configFor("orphan", "no-such-machine", env.repoUrl, { onRemoveFlake: "#minimal" }));
      await until(
        "waiting for the machine",
        () => env.configuration("orphan"),
        (c) => condition(c, "Ready")?.reason === "MachineNotFound",
      );
      await env.kube.delete(nixosConfigurations, { namespace: NS, name: "orphan" });
      await until(
        "released",
        async () =>
          env.configuration("orphan").then(
            () => false,
            (err: unknown) => isNotFound(err),
          ),
        (g) => g,
      );
      void machines;
    });
  });

  describe("webhook", () => {
    let env: NioTestEnv;
    before(async () => {
      env = await startNioTestEnv({ hosts: ["hook-01"], env: { NIO_CONFIG_RECONCILE_INTERVAL: "600" } });
      await baseSecrets(env);
    });
    after(async () => env?.stop());

    const post = (body: string, signature?: string): Promise<Response> =>
      fetch(`http://127.0.0.1:${env.webhookPort}/hooks/git`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...(signature ? { "X-Hub-Signature-256": signature } : {}) },
        body,
      });

    it("a signed push triggers an immediate ref check; a bad or missing signature is refused and triggers nothing", async () => {
      const host = env.tb.fleet.host("hook-01");
      await env.create(machineFor("hook-01", host));
      await env.create(configFor("hooked", "hook-01", env.repoUrl));
      await until("v1 applied", () => env.configuration("hooked"), ready);
      const v2 = await env.push("v2");
      const body = JSON.stringify({ ref: "refs/heads/main", repository: { clone_url: env.repoUrl } });

      const bad = await post(body, `sha256=${createHmac("sha256", "wrong").update(body).digest("hex")}`);
      expect(bad.status).to.equal(401);
      expect((await post(body)).status).to.equal(401);
      await new Promise((r) => setTimeout(r, 3000));
      expect(
        (await env.configuration("hooked")).status?.appliedCommit,
        "the interval is 10 min: nothing may move yet",
      ).to.not.equal(v2);

      const t0 = Date.now();
      const good = await post(body, `sha256=${createHmac("sha256", WEBHOOK_SECRET).update(body).digest("hex")}`);
      expect(good.status).to.equal(202);
      expect(((await good.json()) as { triggered: number }).triggered).to.equal(1);
      await until(
        "v2 applied after the webhook",
        () => env.configuration("hooked"),
        (c) => c.status?.appliedCommit === v2,
        20_000,
      );
      console.log(`      (webhook to applied: ${Date.now() - t0} ms)`);
    });
  });
});

describe("NIO: timeout, suspend, cleanup of an unreachable machine", function () {
  this.timeout(180_000);
  let env: NioTestEnv;
  before(async () => {
    env = await startNioTestEnv({ hosts: ["slow-01", "pause-01", "away-01"], env: { NIO_NIXOS_APPLY_TIMEOUT: "2" } });
    await baseSecrets(env);
  });
  after(async () => env?.stop());

  it("stops an apply that runs past NIO_NIXOS_APPLY_TIMEOUT and reports Timeout", async () => {
    const host = env.tb.fleet.host("slow-01");
    await host.setSlowApply(8);
    await env.create(machineFor("slow-01", host));
    await env.create(configFor("slow", "slow-01", env.repoUrl));
    const running = async (): Promise<string> => (await host.processes()).map((p) => p.comm).join("\n");
    await until("nixos-rebuild running on the host", running, (cmds) => cmds.includes("nixos-rebuild"), 30_000);
    const cfg = await until(
      "timed out",
      () => env.configuration("slow"),
      (c) => condition(c, "Ready")?.reason === "Timeout",
    );
    expect(cfg.status?.appliedCommit).to.equal(undefined);
    expect(cfg.status?.lastAttempt?.result).to.equal("Failed");
    // The remote run was stopped, not left behind.
    await until("no nixos-rebuild left on the host", running, (cmds) => !cmds.includes("nixos-rebuild"), 10_000);
    await host.setSlowApply(0);
  });

  it("honours suspend: nothing is applied while suspended, the change lands once resumed", async () => {
    const host = env.tb.fleet.host("pause-01");
    await env.create(machineFor("pause-01", host));
    await env.create(configFor("paused", "pause-01", env.repoUrl));
    const first = await until("applied", () => env.configuration("paused"), ready);
    await env.kube.patch(nixosConfigurations, { namespace: NS, name: "paused" }, { spec: { suspend: true } }, "merge");
    await until(
      "suspended",
      () => env.configuration("paused"),
      (c) => condition(c, "Suspended")?.status === "True",
    );
    const records = (await host.rebuildRecords()).length;
    const next = await env.push("while-suspended");
    await new Promise((r) => setTimeout(r, 5000));
    expect((await host.rebuildRecords()).length, "nothing applied while suspended").to.equal(records);
    expect((await env.configuration("paused")).status?.appliedCommit).to.equal(first.status?.appliedCommit);
    await env.kube.patch(nixosConfigurations, { namespace: NS, name: "paused" }, { spec: { suspend: false } }, "merge");
    const resumed = await until(
      "applied after resume",
      () => env.configuration("paused"),
      (c) => c.status?.appliedCommit === next,
    );
    expect(condition(resumed, "Suspended")).to.equal(undefined);
  });

  it("keeps the finalizer of a configuration whose machine is unreachable, until skip-cleanup releases it", async () => {
    const host = env.tb.fleet.host("away-01");
    await env.create(machineFor("away-01", host));
    await env.create(configFor("away", "away-01", env.repoUrl, { onRemoveFlake: "#minimal" }));
    await until("applied", () => env.configuration("away"), ready);
    await host.stop();
    await env.kube.delete(nixosConfigurations, { namespace: NS, name: "away" });
    const stuck = await until(
      "cleanup failed",
      () => env.configuration("away"),
      (c) => condition(c, "Ready")?.reason === "CleanupFailed",
    );
    expect(condition(stuck, "Ready")?.message).to.contain("nio.homystack.com/skip-cleanup=true");
    expect(stuck.metadata.finalizers).to.include("nio.homystack.com/finalizer");
    await env.kube.patch(
      nixosConfigurations,
      { namespace: NS, name: "away" },
      { metadata: { annotations: { "nio.homystack.com/skip-cleanup": "true" } } },
      "merge",
    );
    await until(
      "released",
      async () =>
        env.configuration("away").then(
          () => false,
          (err: unknown) => isNotFound(err),
        ),
      (g) => g,
    );
    expect((await host.rebuildRecords()).map((r) => r.attr)).to.deep.equal(["worker"]);
  });
});

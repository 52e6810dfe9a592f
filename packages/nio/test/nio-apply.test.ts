import { expect } from "chai";
import { checkKstatusInvariants } from "@nio/runtime";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { runChecked } from "@nio/testbed";
import { nixosConfigurations, secrets } from "../src/resources.js";
import {
  GIT_TOKEN,
  NS,
  condition,
  configFor,
  machineFor,
  secret,
  startNioTestEnv,
  until,
  type NioTestEnv,
} from "./support/env.js";

describe("NIO: the seed's usage flow on the testbed", function () {
  this.timeout(180_000);
  let env: NioTestEnv;
  let v1: string;

  before(async () => {
    env = await startNioTestEnv({ hosts: ["worker-01"] });
    v1 = (await env.repo.revParse("HEAD")).trim();
    const key = await readFile(env.tb.operatorKey.privateKeyPath);
    // Step 2 and 4 of the usage guide: the SSH key Secret and the git credentials Secret.
    await env.create(secret("worker-ssh-key", { "ssh-privatekey": key }));
    await env.create(secret("git-credentials", { token: GIT_TOKEN }));
    await env.create(secret("db-secret", { "database-password": "s3cr3t-db-password" }));
  });
  after(async () => env?.stop());

  it("applies the seed's Machine + NixosConfiguration (with additionalFiles) and records the commit", async () => {
    const host = env.tb.fleet.host("worker-01");
    await env.create(machineFor("worker-01", host));
    await env.create(
      configFor("worker-config", "worker-01", env.repoUrl, {
        fullInstall: false,
        additionalFiles: [
          { path: "secrets/database-password", value: { secretRef: { name: "db-secret" } } },
          {
            path: "config/custom.nix",
            value: { inline: "{ config, pkgs, ... }:\n{\n  services.postgresql.enable = true;\n}\n" },
          },
          { path: "facts/system-info", value: { nixosFacter: true } },
        ],
      }),
    );
    const cfg = await until(
      "worker-config Ready",
      () => env.configuration("worker-config"),
      (c) => condition(c, "Ready")?.status === "True",
    );
    expect(cfg.status?.appliedCommit).to.equal(v1);
    expect(cfg.status?.targetMachine).to.equal("worker-01");
    expect(cfg.status?.lastAttempt?.result).to.equal("Succeeded");
    expect(checkKstatusInvariants(cfg)).to.deep.equal([]);

    const records = await host.rebuildRecords();
    expect(records).to.have.length(1);
    const rec = records[0];
    expect(rec?.action).to.equal("switch");
    expect(rec?.attr).to.equal("worker");
    expect(rec?.flake).to.match(/^path:\/var\/lib\/nio\/src\/[0-9a-f]{64}#worker$/);
    const files = (rec?.files ?? []).map((f) => f.path);
    expect(files).to.include.members([
      "flake.nix",
      "configuration.nix",
      "secrets/database-password",
      "config/custom.nix",
      "facts/system-info",
    ]);
    expect(rec?.result).to.equal("success");

    const m = await env.machine("worker-01");
    expect(m.status?.hasConfiguration).to.equal(true);
    expect(m.status?.appliedConfiguration).to.equal("worker-config");
    expect(m.status?.appliedCommit).to.equal(v1);
    expect(m.status?.currentSystem).to.equal(await host.currentSystem());
    expect(m.status?.sshHostKey).to.equal((await host.hostPublicKey()).split(" ").slice(0, 2).join(" "));
    expect(m.status?.hardwareFacts?.cpu?.threads).to.be.greaterThan(0);

    // NIO_KNOWN_HOSTS_PATH holds the verified key, usable by a person with OpenSSH.
    const knownHosts = join(env.dir, "known_hosts");
    expect(await readFile(knownHosts, "utf8")).to.equal(`[${host.address}]:${host.port} ${m.status?.sshHostKey}\n`);
    expect((await stat(knownHosts)).mode & 0o077).to.equal(0);
    const out = await runChecked("ssh", [
      "-i",
      env.tb.operatorKey.privateKeyPath,
      "-p",
      String(host.port),
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${knownHosts}`,
      `root@${host.address}`,
      "hostname",
    ]);
    expect(out.trim()).to.equal("worker-01");
  });

  it("re-applies when a new commit is pushed", async () => {
    const host = env.tb.fleet.host("worker-01");
    const v2 = await env.push("v2");
    const cfg = await until(
      "v2 applied",
      () => env.configuration("worker-config"),
      (c) => c.status?.appliedCommit === v2,
    );
    expect(cfg.status?.lastAttempt?.commit).to.equal(v2);
    const records = await host.rebuildRecords();
    expect(records).to.have.length(2);
    expect((await env.machine("worker-01")).status?.appliedCommit).to.equal(v2);
  });

  it("re-applies when a referenced Secret changes, and not otherwise", async () => {
    const host = env.tb.fleet.host("worker-01");
    const before = (await host.rebuildRecords()).length;
    const digest = (await env.configuration("worker-config")).status?.appliedDigest;
    // Several reconcile intervals with nothing changed: no apply, no SSH connection from the config controller.
    const sshBefore = await metric(env, "nio_ssh_connections_total");
    await new Promise((r) => setTimeout(r, 6_000));
    expect((await host.rebuildRecords()).length, "nothing changed: nothing applied").to.equal(before);
    expect(await metric(env, "nio_ssh_connections_total"), "no SSH session while idle").to.equal(sshBefore);

    await env.kube.patch(
      secrets,
      { namespace: NS, name: "db-secret" },
      { data: { "database-password": Buffer.from("rotated-password").toString("base64") } },
      "merge",
    );
    const cfg = await until(
      "re-applied after the Secret changed",
      () => env.configuration("worker-config"),
      (c) => !!c.status?.appliedDigest && c.status.appliedDigest !== digest,
    );
    expect((await host.rebuildRecords()).length).to.equal(before + 1);
    expect(cfg.status?.lastAttempt?.logTail ?? "").to.not.contain("rotated-password");
  });

  it("emits the seed's metrics, and they moved during these tests", async () => {
    const text = await (await fetch(`http://127.0.0.1:${env.nio.manager.ports().metrics}/metrics`)).text();
    const value = (name: string): number =>
      text
        .split("\n")
        .filter((l) => (l.startsWith(`${name} `) || l.startsWith(`${name}{`)) && !l.startsWith("#"))
        .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
    expect(value("nio_machines_total")).to.equal(1);
    expect(value("nio_machines_discoverable")).to.equal(1);
    expect(value("nio_configurations_applied_total")).to.equal(3);
    expect(value("nio_reconcile_duration_seconds_count")).to.be.greaterThan(3);
    expect(value("nio_ssh_connections_total")).to.be.greaterThan(3);
    // Two commits, two fetches: the re-apply after the Secret change reused the cached tree.
    expect(value("nio_git_clones_total")).to.equal(2);
    expect(value("nio_nixos_builds_total")).to.equal(3);
    expect(value("nio_nixos_build_duration_seconds_count")).to.equal(3);
    expect(text).to.contain("# TYPE nio_configurations_failed_total counter");
    expect(text).to.contain("# TYPE nio_reconcile_errors_total counter");
  });

  it("warns that a secretRef in additionalFiles enters the Nix store", async () => {
    const events = await env.kubectl([
      "get",
      "events",
      "-n",
      NS,
      "--field-selector",
      "involvedObject.name=worker-config",
      "-o",
      "json",
    ]);
    const reasons = (JSON.parse(events) as { items: { reason: string; type: string; message: string }[] }).items;
    const warning = reasons.find((e) => e.reason === "SecretInNixStore");
    expect(warning?.type).to.equal("Warning");
    expect(warning?.message).to.contain("secrets/database-password");
    expect(reasons.map((e) => e.reason)).to.include("Applied");
  });

  it("shows progress with printer columns a user reads", async () => {
    const out = await env.kubectl(["get", "nixosconfigurations", "-n", NS]);
    expect(out).to.match(/worker-config\s+\S+fleet\.git\s+\.#worker\s+worker-01\s+false\s+[0-9a-f]{7,}/);
    void nixosConfigurations;
  });
});

async function metric(env: NioTestEnv, name: string): Promise<number> {
  const text = await env.nio.manager.metrics.registry.getSingleMetricAsString(name);
  return text
    .split("\n")
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

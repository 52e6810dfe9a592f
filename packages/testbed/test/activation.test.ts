/**
 * The simulated activation of the nixos-rebuild stand-in: after a switch to a system built by the stub nixpkgs, the
 * system's activation scripts run inside the host and k3s / keepalived are "started" (and "stopped") from its
 * config.json, with k3s's own checks (token file, server address) and the admin kubeconfig a server writes.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";

import { hostExec, hostExecChecked, startHosts, type Fleet, type Host } from "../src/hosts/index.js";
import { hostProcesses } from "../src/hosts/procs.js";
import { runChecked } from "../src/util/process.js";

const FLAKE = `{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
  outputs = { self, nixpkgs }:
    let
      mk = name: config: nixpkgs.lib.nixosSystem {
        modules = [ { nixpkgs.hostPlatform = "x86_64-linux"; networking.hostName = name; } config ];
      };
      token = "/var/lib/nico/join-token";
    in {
      nixosConfigurations = {
        server = mk "server" {
          services.k3s = { enable = true; role = "server"; clusterInit = true; tokenFile = token;
            extraFlags = [ "--node-ip=10.0.0.1" "--tls-san=10.0.0.100" ]; };
          services.keepalived = { enable = true; vrrpInstances.vip = { interface = "eth0"; state = "MASTER";
            priority = 150; virtualRouterId = 51; virtualIps = [ { addr = "10.0.0.100/24"; } ]; }; };
          system.activationScripts.marker = "echo \\"$systemConfig\\" > /var/lib/marker";
          system.activationScripts.a-first = { deps = [ ]; text = "echo first >> /var/lib/order"; };
        };
        open-server = mk "open-server" {
          services.k3s = { enable = true; role = "server"; tokenFile = token; serverAddr = "https://10.0.0.100:6443";
            extraFlags = [ "--write-kubeconfig-mode" "0644" ]; };
        };
        agent = mk "agent" {
          services.k3s = { enable = true; role = "agent"; serverAddr = "https://10.0.0.100:6443"; tokenFile = token;
            extraFlags = "--node-ip 10.0.0.2  --flannel-iface eth0"; };
        };
        lonely-agent = mk "lonely-agent" { services.k3s = { enable = true; role = "agent"; tokenFile = token; }; };
        broken-script = mk "broken-script" {
          system.activationScripts.fails = { deps = [ ]; text = "false\\necho went-on > /var/lib/after-failure"; };
        };
        minimal = mk "minimal" {
          system.activationScripts.cleanup = { deps = [ "specialfs" ]; text = "rm -rf /var/lib/rancher/k3s /etc/rancher"; };
        };
      };
    };
}
`;

describe("nixos-rebuild stand-in: simulated activation (activation scripts, k3s, keepalived)", function () {
  this.timeout(180_000);
  let tmp: string;
  let fleet: Fleet;
  let host: Host;
  let key: Buffer;

  const sh = (command: string): ReturnType<typeof hostExec> => hostExec(host, command, { privateKey: key });
  const rebuild = (attr: string, action = "switch"): ReturnType<typeof hostExec> =>
    sh(`nixos-rebuild ${action} --flake path:/var/lib/nio/src/flake#${attr}`);
  const lastRebuild = async (): Promise<Awaited<ReturnType<Host["rebuildRecords"]>>[number] | undefined> =>
    (await host.rebuildRecords()).pop();

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "nio-activation-"));
    await runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(tmp, "operator")]);
    key = await readFile(join(tmp, "operator"));
    const pub = await readFile(join(tmp, "operator.pub"), "utf8");
    fleet = await startHosts({ dir: join(tmp, "fleet"), names: ["node"], operatorPublicKey: pub });
    host = fleet.host("node");
    await writeFile(join(tmp, "flake.nix"), FLAKE);
    await hostExecChecked(host, "mkdir -p /var/lib/nio/src/flake && cat > /var/lib/nio/src/flake/flake.nix", {
      privateKey: key,
      stdin: FLAKE,
    });
  });

  after(async () => {
    if (fleet) await fleet.destroy();
    if (tmp) {
      expect(await hostProcesses(tmp)).to.deep.equal([]);
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it("k3s without its token file: the switch fails like switch-to-configuration (4), the new system stays current", async () => {
    const res = await rebuild("server");
    expect(res.code, res.stderr).to.equal(4);
    expect(res.stderr).to.include("k3s: token file /var/lib/nico/join-token missing");
    expect(res.stderr).to.include("warning: the following units failed: k3s.service");
    expect(res.stderr).to.include("warning: error(s) occurred while switching to the new configuration");
    const rec = await lastRebuild();
    expect(rec).to.include({ result: "failed", exitCode: 4, attr: "server" });
    expect(rec?.activation?.units).to.deep.include({
      unit: "k3s.service",
      event: "start",
      result: "failed",
      error: "k3s: token file /var/lib/nico/join-token missing",
    });
    expect(await host.currentSystem()).to.equal(rec?.systemPath);
    expect(await host.exists("/etc/rancher/k3s/k3s.yaml")).to.equal(false);
    expect((await host.k3sRecords()).pop()).to.include({ event: "start", result: "failed", role: "server" });

    await host.writeFile("/var/lib/nico/join-token", "", { mode: 0o400 });
    const empty = await rebuild("server");
    expect(empty.code).to.equal(4);
    expect(empty.stderr).to.include("k3s: token file /var/lib/nico/join-token is empty");
  });

  it("a k3s server with its token: activation scripts in name order, k3s.yaml (0600), keepalived recorded", async () => {
    await host.writeFile("/var/lib/nico/join-token", "K10-testbed-token\n", { mode: 0o400 });
    const res = await rebuild("server");
    expect(res.code, res.stderr).to.equal(0);
    const rec = await lastRebuild();
    expect(rec).to.include({ result: "success", exitCode: 0 });
    expect(rec?.activation?.scripts).to.deep.equal([
      { name: "a-first", exitCode: 0 },
      { name: "marker", exitCode: 0 },
    ]);
    expect((await host.readFile("/var/lib/marker")).toString().trim()).to.equal(rec?.systemPath);

    const kubeconfig = (await host.readFile("/etc/rancher/k3s/k3s.yaml")).toString();
    expect(await host.fileStat("/etc/rancher/k3s/k3s.yaml")).to.include({ mode: 0o600, uid: 0, type: "file" });
    expect(kubeconfig).to.include("server: https://127.0.0.1:6443");
    expect(kubeconfig).to.match(/certificate-authority-data: [A-Za-z0-9+/=]{40,}/);
    expect(kubeconfig).to.match(/client-key-data: [A-Za-z0-9+/=]{40,}/);
    expect(await host.fileStat("/var/lib/rancher/k3s/server")).to.include({ type: "directory" });

    const k3s = (await host.k3sRecords()).pop();
    expect(k3s).to.include({
      event: "start",
      result: "running",
      role: "server",
      clusterInit: true,
      serverAddr: "",
      tokenFile: "/var/lib/nico/join-token",
      tokenSet: false,
      kubeconfig: "/etc/rancher/k3s/k3s.yaml",
      attr: "server",
      systemPath: rec?.systemPath,
    });
    expect(k3s?.extraFlags).to.deep.equal(["--node-ip=10.0.0.1", "--tls-san=10.0.0.100"]);
    expect(JSON.stringify(await host.k3sRecords())).to.not.include("K10-testbed-token");
    const keepalived = (await host.keepalivedRecords()).pop();
    expect(keepalived).to.include({ event: "start", attr: "server" });
    expect(keepalived?.vrrpInstances?.vip).to.deep.include({ state: "MASTER", priority: 150, virtualRouterId: 51 });

    // k3s keeps an existing kubeconfig on the next start
    const again = await rebuild("server", "test");
    expect(again.code, again.stderr).to.equal(0);
    expect((await host.readFile("/etc/rancher/k3s/k3s.yaml")).toString()).to.equal(kubeconfig);
  });

  it("honours --write-kubeconfig-mode, and an agent gets the split extraFlags, keepalived is stopped", async () => {
    await sh("rm -rf /etc/rancher");
    const open = await rebuild("open-server");
    expect(open.code, open.stderr).to.equal(0);
    expect(await host.fileMode("/etc/rancher/k3s/k3s.yaml")).to.equal(0o644);
    expect((await host.keepalivedRecords()).pop()).to.include({ event: "stop", attr: "open-server" });

    const res = await rebuild("agent");
    expect(res.code, res.stderr).to.equal(0);
    const k3s = (await host.k3sRecords()).pop();
    expect(k3s).to.include({ role: "agent", serverAddr: "https://10.0.0.100:6443", result: "running" });
    expect(k3s?.extraFlags).to.deep.equal(["--node-ip", "10.0.0.2", "--flannel-iface", "eth0"]);
    expect(k3s?.kubeconfig).to.equal(undefined);
    expect(await host.fileStat("/var/lib/rancher/k3s/agent")).to.include({ type: "directory" });

    const lonely = await rebuild("lonely-agent");
    expect(lonely.code).to.equal(4);
    expect(lonely.stderr).to.include("k3s: --server is required to run an agent");
  });

  it("a failing activation script: exit 2 with NixOS's message, the snippet goes on", async () => {
    const res = await rebuild("broken-script");
    expect(res.code).to.equal(2);
    expect(res.stderr).to.include("Activation script snippet 'fails' failed (1)");
    expect((await host.readFile("/var/lib/after-failure")).toString().trim()).to.equal("went-on");
    const rec = await lastRebuild();
    expect(rec).to.include({ result: "failed", exitCode: 2 });
    expect(rec?.activation?.scripts).to.deep.equal([{ name: "fails", exitCode: 1 }]);
    expect((await host.k3sRecords()).pop()).to.include({ event: "stop", attr: "broken-script" });
  });

  it("minimal's cleanup script removes /etc/rancher and the k3s state", async () => {
    expect((await rebuild("server")).code).to.equal(0);
    expect(await host.exists("/etc/rancher/k3s/k3s.yaml")).to.equal(true);
    const res = await rebuild("minimal");
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stderr).to.include("stopping the following units: k3s.service");
    expect(await host.exists("/etc/rancher")).to.equal(false);
    expect(await host.exists("/var/lib/rancher/k3s")).to.equal(false);
    expect((await host.k3sRecords()).pop()).to.include({ event: "stop", attr: "minimal" });
    expect((await lastRebuild())?.activation?.units).to.deep.equal([
      { unit: "k3s.service", event: "stop", result: "success" },
      { unit: "keepalived.service", event: "stop", result: "success" },
    ]);
  });

  it("a reboot activates the booted system again (k3s starts, nothing is stopped)", async () => {
    expect((await rebuild("server")).code).to.equal(0);
    const before = (await host.k3sRecords()).length;
    expect((await sh("reboot")).code).to.equal(0);
    const recs = await host.k3sRecords();
    expect(recs).to.have.length(before + 1);
    expect(recs.pop()).to.include({ event: "start", result: "running", attr: "" });
  });

  it("instant apply with k3s: a kubeconfig for every attribute but minimal, which removes it", async () => {
    await sh("rm -rf /etc/rancher /var/lib/rancher");
    await host.setInstantApply(true, { k3s: true });
    try {
      const res = await rebuild("cp-01");
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stderr).to.include("evaluation skipped");
      expect(await host.fileMode("/etc/rancher/k3s/k3s.yaml")).to.equal(0o600);
      expect((await host.k3sRecords()).pop()).to.include({ event: "start", instant: true, attr: "cp-01" });
      expect((await lastRebuild())?.activation).to.equal(undefined);

      const min = await rebuild("minimal");
      expect(min.code, min.stderr).to.equal(0);
      expect(await host.exists("/etc/rancher")).to.equal(false);
      expect(await host.exists("/var/lib/nico/join-token")).to.equal(false);
      expect((await host.k3sRecords()).pop()).to.include({ event: "stop", instant: true, attr: "minimal" });
    } finally {
      await host.setInstantApply(false);
    }
    // plain instant apply leaves k3s alone
    await host.setInstantApply(true);
    try {
      const count = (await host.k3sRecords()).length;
      expect((await rebuild("cp-01")).code).to.equal(0);
      expect(await host.exists("/etc/rancher")).to.equal(false);
      expect(await host.k3sRecords()).to.have.length(count);
    } finally {
      await host.setInstantApply(false);
    }
  });
});

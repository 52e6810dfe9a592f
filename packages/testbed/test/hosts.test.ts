/**
 * Simulated NixOS hosts: real OpenSSH sshd per host in its own namespaces and root filesystem, reached with a real
 * ssh2 client; real Nix (offline, stub nixpkgs/disko) behind the nixos-rebuild and nixos-anywhere stand-ins.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Client } from "ssh2";

import { openHosts, startHosts, testbedDir, type Fleet, type Host, type HostUser } from "../src/hosts/index.js";
import { hostProcesses } from "../src/hosts/procs.js";
import { scanHostKey } from "../src/hosts/probe.js";
import { readJsonLines, type AnywhereRecord } from "../src/hosts/records.js";
import { run, runChecked, waitFor } from "../src/util/process.js";

interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

interface ExecOptions {
  user?: HostUser;
  stdin?: Buffer | string;
  /** Pin this host key ("ssh-ed25519 AAAA..."); default: the host's current key. */
  hostKey?: string;
}

let operatorKey: Buffer;

/** Runs `command` on `host` over SSH with ssh2, verifying the host key. */
async function sshExec(host: Host, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
  const pinned = opts.hostKey ?? (await host.hostPublicKey());
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.on("error", reject);
    client.once("connect", () => client.setNoDelay(true));
    client.on("ready", () => {
      client.exec(command, (err, stream) => {
        if (err) {
          client.end();
          reject(err);
          return;
        }
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let code = -1;
        stream.on("data", (d: Buffer) => out.push(d));
        stream.stderr.on("data", (d: Buffer) => errOut.push(d));
        stream.on("exit", (c: number | null) => (code = c ?? 255));
        stream.on("close", () => {
          client.end();
          resolve({
            code,
            stdout: Buffer.concat(out).toString("utf8"),
            stderr: Buffer.concat(errOut).toString("utf8"),
            ms: Date.now() - t0,
          });
        });
        stream.end(opts.stdin ?? "");
      });
    });
    client.connect({
      host: host.address,
      port: host.port,
      username: opts.user ?? "root",
      privateKey: operatorKey,
      readyTimeout: 10_000,
      hostVerifier: (key: Buffer): boolean => `ssh-ed25519 ${key.toString("base64")}` === pinned,
    });
  });
}

async function sshOk(host: Host, command: string, opts: ExecOptions = {}): Promise<string> {
  const res = await sshExec(host, command, opts);
  if (res.code !== 0) throw new Error(`${command} on ${host.name} exited ${res.code}: ${res.stderr}`);
  return res.stdout;
}

/** Error (code or message) of an SSH connection attempt that is expected to fail. */
async function sshFailure(host: Host, opts: ExecOptions = {}): Promise<string> {
  try {
    await sshExec(host, "true", opts);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return e.code ?? e.message;
  }
  throw new Error(`connecting to ${host.name} unexpectedly worked`);
}

const FLAKE = (version: string): string => `{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  inputs.disko.url = "github:nix-community/disko";
  outputs = { self, nixpkgs, disko }: {
    nixosConfigurations.web = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      modules = [
        disko.nixosModules.disko
        {
          networking.hostName = "web";
          environment.etc."nio-version".text = "${version}";
          disko.devices.disk.main.device = "/dev/vda";
        }
      ];
    };
  };
}
`;

const BROKEN_FLAKE = `{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  inputs.disko.url = "github:nix-community/disko";
  outputs = { self, nixpkgs, disko }: {
    nixosConfigurations.web = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      modules = [ disko.nixosModules.disko { networking.hostName = nixpkgs.lib.noSuchFunction "web"; } ];
    };
  };
}
`;

async function makeFlake(dir: string, content: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "flake.nix"), content);
  await writeFile(join(dir, "hosts.json"), '{"web": {}}\n', { mode: 0o600 });
  return dir;
}

/** Copies a local flake directory into a host (tar over SSH) at `remoteDir`. */
async function copyFlake(host: Host, localDir: string, remoteDir: string, tmp: string): Promise<void> {
  const tarFile = join(tmp, `flake-${host.name}-${Date.now()}.tar`);
  await runChecked("tar", ["-C", localDir, "-cf", tarFile, "."]);
  await sshOk(host, `rm -rf '${remoteDir}' && mkdir -p '${remoteDir}' && tar -x -C '${remoteDir}'`, {
    stdin: await readFile(tarFile),
  });
}

function sha256(data: string): string {
  return createHash("sha256").update(data).digest("hex");
}

describe("simulated NixOS hosts", function () {
  this.timeout(120_000);
  let tmp: string;
  let fleet: Fleet;
  let operatorPub: string;
  let a: Host;
  let b: Host;
  let c: Host;
  let flakeV1: string;
  let flakeV2: string;
  let broken: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "nio-hosts-"));
    await runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "operator", "-f", join(tmp, "operator")]);
    operatorKey = await readFile(join(tmp, "operator"));
    operatorPub = (await readFile(join(tmp, "operator.pub"), "utf8")).trim();
    flakeV1 = await makeFlake(join(tmp, "flake-v1"), FLAKE("v1"));
    flakeV2 = await makeFlake(join(tmp, "flake-v2"), FLAKE("v2"));
    broken = await makeFlake(join(tmp, "flake-broken"), BROKEN_FLAKE);
    fleet = await startHosts({
      dir: join(tmp, "fleet"),
      names: ["alpha", "beta", "gamma"],
      operatorPublicKey: operatorPub,
    });
    [a, b, c] = fleet.hosts as [Host, Host, Host];
    console.log(`      (3 hosts started in ${fleet.startMs} ms)`);
  });

  after(async () => {
    if (fleet) await fleet.destroy();
    if (tmp) {
      expect(await hostProcesses(tmp)).to.deep.equal([]);
      await rm(tmp, { recursive: true, force: true });
      expect(existsSync(tmp)).to.equal(false);
    }
  });

  it("gives each host its own loopback address, port and host key", async () => {
    expect(new Set(fleet.hosts.map((h) => h.address)).size).to.equal(3);
    for (const h of fleet.hosts) {
      expect(h.address).to.match(/^127\.0\.0\.\d+$/);
      expect(await h.hostPublicKey()).to.match(/^ssh-ed25519 AAAA[A-Za-z0-9+/=]+$/);
      expect(await scanHostKey(h.address, h.port)).to.equal(await h.hostPublicKey());
    }
    expect(await a.hostPublicKey()).to.not.equal(await b.hostPublicKey());
  });

  it("runs commands over SSH, verified against hostPublicKey(), in an isolated root filesystem", async () => {
    expect(existsSync("/etc/marker")).to.equal(false);
    expect((await sshOk(a, "hostname")).trim()).to.equal("alpha");
    await sshOk(a, "echo alpha-was-here > /etc/marker && chmod 0640 /etc/marker");
    expect(existsSync("/etc/marker")).to.equal(false);
    expect((await a.readFile("/etc/marker")).toString()).to.equal("alpha-was-here\n");
    expect(await a.fileMode("/etc/marker")).to.equal(0o640);
    expect((await sshExec(b, "test -e /etc/marker")).code).to.equal(1);
    // the real /usr is there, read-only
    const touch = await sshExec(a, "touch /usr/nio-testbed-probe");
    expect(touch.code).to.not.equal(0);
    expect(touch.stderr).to.match(/Read-only file system/);
    // and root inside cannot undo that
    const remount = await sshExec(a, "mount -o remount,rw /usr");
    expect(remount.code, remount.stderr).to.not.equal(0);
    expect((await sshExec(a, "echo 1 > /proc/sys/vm/drop_caches")).code).to.not.equal(0);
    // the host only sees its own processes
    const ps = await sshOk(a, "ls /proc | grep -E '^[0-9]+$' | wc -l");
    expect(Number(ps.trim())).to.be.lessThan(20);
  });

  it("rejects a wrong host key pin and unknown client keys", async () => {
    expect(await sshFailure(a, { hostKey: await b.hostPublicKey() })).to.match(/verification failed/i);
    await a.setAuthorizedKeys("root", []);
    try {
      expect(await sshFailure(a)).to.match(/authentication methods failed/i);
    } finally {
      await a.setAuthorizedKeys("root", [operatorPub]);
    }
    expect((await sshOk(a, "whoami")).trim()).to.equal("root");
  });

  it("has the stand-ins on PATH for root and deploy, and deploy has passwordless sudo", async () => {
    for (const user of ["root", "deploy"] as const) {
      const out = await sshOk(a, "command -v nixos-rebuild nixos-facter systemctl reboot nix-offline", { user });
      expect(out.trim().split("\n")).to.have.length(5);
    }
    expect((await sshOk(a, "id -un", { user: "deploy" })).trim()).to.equal("deploy");
    expect((await sshExec(a, "sudo -n true", { user: "deploy" })).code).to.equal(0);
    expect((await sshOk(a, "sudo -n id -u", { user: "deploy" })).trim()).to.equal("0");
  });

  it("nixos-rebuild records hostile arguments and file names exactly (its JSON is written without jq)", async () => {
    const odd = [
      'say "hi"',
      "back\\slash",
      "new\nline\ttab\rcr",
      "ctl\u0001\u001b[0m\u007f",
      "ünïcødé 日本",
      "",
      "$(x) `y`",
    ];
    const local = join(tmp, "odd-flake");
    await mkdir(join(local, "sub"), { recursive: true });
    await writeFile(join(local, "flake.nix"), "{}");
    await writeFile(join(local, 'we"ird\\na\nme'), "x");
    await runChecked("ln", ["-s", "../flake.nix", join(local, "sub", "link")]);
    await copyFlake(c, local, "/var/lib/nio/src/odd", tmp);
    await c.setInstantApply(true);
    try {
      const quoted = odd.map((o) => `'${o.replace(/'/g, "'\\''")}'`);
      const args = ["switch", "--flake", "path:/var/lib/nio/src/odd#web"];
      const res = await sshExec(
        c,
        `nixos-rebuild ${args.join(" ")} ${odd.map((_, i) => `--option ${quoted[i]} v`).join(" ")}`,
      );
      expect(res.code, res.stderr).to.equal(0);
      const rec = (await c.rebuildRecords()).pop();
      expect(rec?.argv).to.deep.equal([...args, ...odd.flatMap((o) => ["--option", o, "v"])]);
      expect(rec?.files?.map((f) => f.path)).to.deep.equal(["flake.nix", "sub/link", 'we"ird\\na\nme']);
      expect(rec?.files).to.deep.include({ path: "sub/link", type: "symlink", mode: "0777", target: "../flake.nix" });
      expect(rec?.files).to.deep.include({ path: 'we"ird\\na\nme', type: "file", sha256: sha256("x"), mode: "0644" });
      expect(rec).to.include({ result: "success", exitCode: 0, user: "root", attr: "web" });
    } finally {
      await c.setInstantApply(false);
    }
  });

  it("nixos-rebuild switch evaluates the flake, records the request and switches /run/current-system on that host only", async () => {
    const beforeB = await b.currentSystem();
    await copyFlake(a, flakeV1, "/var/lib/nio/src/v1", tmp);
    const res = await sshExec(a, "nixos-rebuild switch --flake path:/var/lib/nio/src/v1#web");
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stderr).to.contain("building the system configuration");
    const records = await a.rebuildRecords();
    const rec = records[records.length - 1];
    expect(rec).to.include({ action: "switch", attr: "web", result: "success", exitCode: 0, user: "root" });
    expect(rec?.flakeDir).to.equal("/var/lib/nio/src/v1");
    expect(rec?.argv).to.deep.equal(["switch", "--flake", "path:/var/lib/nio/src/v1#web"]);
    expect(rec?.files).to.deep.include({ path: "flake.nix", type: "file", sha256: sha256(FLAKE("v1")), mode: "0644" });
    expect(rec?.files).to.deep.include({
      path: "hosts.json",
      type: "file",
      sha256: sha256('{"web": {}}\n'),
      mode: "0600",
    });
    expect(rec?.systemPath).to.match(/^\/nix\/store\/[a-z0-9]{32}-nixos-system-web$/);
    expect(await a.currentSystem()).to.equal(rec?.systemPath);
    expect((await sshOk(a, "readlink /run/current-system")).trim()).to.equal(rec?.systemPath);
    expect(await a.bootSystem()).to.equal(rec?.systemPath);
    expect(await a.generations()).to.deep.equal([1]);
    expect(JSON.parse((await a.readFile(`${rec?.systemPath}/config.json`)).toString())).to.have.nested.property(
      "environment.etc.nio-version.text",
      "v1",
    );
    // the other hosts are unchanged, and did not even get the store path
    expect(await b.currentSystem()).to.equal(beforeB);
    expect(await b.rebuildRecords()).to.deep.equal([]);
    expect(await b.exists(rec?.systemPath ?? "/x")).to.equal(false);
  });

  it("nixos-rebuild boot makes a generation without activating it; test activates without one", async () => {
    const current = await a.currentSystem();
    await copyFlake(a, flakeV2, "/var/lib/nio/src/v2", tmp);
    const boot = await sshExec(a, "nixos-rebuild boot --flake path:/var/lib/nio/src/v2#web");
    expect(boot.code, boot.stderr).to.equal(0);
    const v2 = (await a.rebuildRecords()).pop()?.systemPath;
    expect(v2).to.be.a("string").and.not.equal(current);
    expect(await a.generations()).to.deep.equal([1, 2]);
    expect(await a.bootSystem()).to.equal(v2);
    expect(await a.currentSystem()).to.equal(current);
    // a reboot boots the profile's generation
    expect((await sshExec(a, "reboot")).code).to.equal(0);
    expect(await a.currentSystem()).to.equal(v2);
    expect(await a.toolRecords("reboot")).to.have.length(1);

    const test = await sshExec(a, "nixos-rebuild test --flake /var/lib/nio/src/v1#web");
    expect(test.code, test.stderr).to.equal(0);
    expect(await a.currentSystem()).to.equal(current);
    expect(await a.generations()).to.deep.equal([1, 2]);
  });

  it("a flake that does not evaluate fails the switch with Nix's error and changes nothing", async () => {
    const current = await a.currentSystem();
    await copyFlake(a, broken, "/var/lib/nio/src/broken", tmp);
    const res = await sshExec(a, "nixos-rebuild switch --flake path:/var/lib/nio/src/broken#web");
    expect(res.code).to.not.equal(0);
    expect(res.stderr).to.match(/error: attribute 'noSuchFunction' missing/);
    expect(await a.currentSystem()).to.equal(current);
    const rec = (await a.rebuildRecords()).pop();
    expect(rec).to.include({ result: "failed", exitCode: res.code, attr: "web" });
    expect(rec?.systemPath).to.equal(undefined);
  });

  it("deploy runs nixos-rebuild through sudo -n (and fails without it)", async () => {
    await copyFlake(b, flakeV1, "/var/lib/nio/src/v1", tmp);
    const noSudo = await sshExec(b, "nixos-rebuild switch --flake path:/var/lib/nio/src/v1#web", { user: "deploy" });
    expect(noSudo.code).to.equal(1);
    expect(noSudo.stderr).to.match(/Permission denied/);
    const res = await sshExec(b, "sudo -n nixos-rebuild switch --flake path:/var/lib/nio/src/v1#web", {
      user: "deploy",
    });
    expect(res.code, res.stderr).to.equal(0);
    const rec = (await b.rebuildRecords()).pop();
    expect(rec).to.include({ user: "root", sudoUser: "deploy", result: "success" });
    expect(await b.currentSystem()).to.equal(rec?.systemPath);
  });

  describe("fault switches", () => {
    it("down: connection refused, every process of that host gone, the others untouched; up again keeps the key", async () => {
      await sshOk(c, "setsid sleep 1000 </dev/null >/dev/null 2>&1 &");
      await waitFor("the background sleep in gamma", async () =>
        (await c.processes()).some((p) => p.comm === "sleep") ? true : undefined,
      );
      const key = await c.hostPublicKey();
      const othersBefore = (await a.processes()).map((p) => p.pid);
      await c.stop();
      expect(await c.processes()).to.deep.equal([]);
      expect(await c.isRunning()).to.equal(false);
      expect(await sshFailure(c)).to.equal("ECONNREFUSED");
      expect((await a.processes()).map((p) => p.pid)).to.include.members(othersBefore);
      expect((await sshOk(a, "hostname")).trim()).to.equal("alpha");
      await c.start();
      expect(await c.hostPublicKey()).to.equal(key);
      expect((await sshOk(c, "hostname")).trim()).to.equal("gamma");
    });

    it("slow apply: nixos-rebuild takes at least the given seconds", async () => {
      await copyFlake(c, flakeV1, "/var/lib/nio/src/v1", tmp);
      await c.setSlowApply(2);
      try {
        const res = await sshExec(c, "nixos-rebuild switch --flake path:/var/lib/nio/src/v1#web");
        expect(res.code, res.stderr).to.equal(0);
        expect(res.ms).to.be.at.least(2000);
        expect((await c.rebuildRecords()).pop()).to.include({ slowApplySeconds: 2, result: "success" });
      } finally {
        await c.setSlowApply(0);
      }
    });

    it("instant apply: no Nix evaluation, still recorded, switches to a deterministic fake system", async () => {
      await copyFlake(c, flakeV1, "/var/lib/nio/src/instant", tmp);
      await c.setInstantApply(true);
      try {
        const res = await sshExec(c, "nixos-rebuild switch --flake path:/var/lib/nio/src/instant#web");
        expect(res.code, res.stderr).to.equal(0);
        expect(res.stderr).to.contain("evaluation skipped");
        const rec = (await c.rebuildRecords()).pop();
        expect(rec).to.include({ result: "success", attr: "web" });
        expect(rec?.systemPath).to.match(/^\/nix\/store\/[0-9a-f]{32}-nixos-system-web$/);
        expect(await c.currentSystem()).to.equal(rec?.systemPath);
        const again = await sshExec(c, "nixos-rebuild switch --flake path:/var/lib/nio/src/instant#web");
        expect(again.code).to.equal(0);
        expect((await c.rebuildRecords()).pop()?.systemPath, "same source, same system").to.equal(rec?.systemPath);
      } finally {
        await c.setInstantApply(false);
      }
    });

    it("failing apply: the given exit code and stderr, /run/current-system unchanged", async () => {
      const current = await c.currentSystem();
      await copyFlake(c, flakeV2, "/var/lib/nio/src/v2", tmp);
      await c.setFailingApply({ exitCode: 42, stderr: "error: simulated activation failure\n" });
      try {
        const res = await sshExec(c, "nixos-rebuild switch --flake path:/var/lib/nio/src/v2#web");
        expect(res.code).to.equal(42);
        expect(res.stderr).to.contain("error: simulated activation failure");
        expect(await c.currentSystem()).to.equal(current);
        expect((await c.rebuildRecords()).pop()).to.include({ result: "fault", fault: "failing-apply", exitCode: 42 });
      } finally {
        await c.setFailingApply(undefined);
      }
      const ok = await sshExec(c, "nixos-rebuild switch --flake path:/var/lib/nio/src/v2#web");
      expect(ok.code, ok.stderr).to.equal(0);
      expect(await c.currentSystem()).to.not.equal(current);
    });

    it("changed host key: a client pinning the old key fails verification, the new key works", async () => {
      const oldKey = await c.hostPublicKey();
      const newKey = await c.changeHostKey();
      expect(newKey).to.not.equal(oldKey);
      expect(await c.hostPublicKey()).to.equal(newKey);
      expect(await sshFailure(c, { hostKey: oldKey })).to.match(/verification failed/i);
      expect((await sshOk(c, "hostname", { hostKey: newKey })).trim()).to.equal("gamma");
    });
  });

  it("nixos-facter prints a stable per-host hardware report", async () => {
    const one = JSON.parse(await sshOk(a, "nixos-facter")) as Record<string, unknown>;
    const again = JSON.parse(await sshOk(a, "sudo -n nixos-facter", { user: "deploy" })) as Record<string, unknown>;
    const other = JSON.parse(await sshOk(b, "nixos-facter")) as Record<string, unknown>;
    expect(one).to.include({ version: 1, system: "x86_64-linux" });
    expect(one).to.have.nested.property("hardware.cpu[0].architecture", "x86_64");
    expect(one).to.have.nested.property("hardware.memory[0].resources[0].type", "phys_mem");
    expect(one).to.have.nested.property("hardware.disk[0].unix_device_name");
    expect(one).to.have.nested.property("hardware.network_interface[0].resources[0].type", "hwaddr");
    expect(again).to.deep.equal(one);
    expect(other).to.not.deep.equal(one);
  });

  it("systemctl records and answers like a healthy system", async () => {
    expect((await sshOk(a, "systemctl is-system-running")).trim()).to.equal("running");
    expect((await sshExec(a, "systemctl restart nio-agent.service")).code).to.equal(0);
    const recs = await a.toolRecords("systemctl");
    expect(recs.map((r) => r.argv)).to.deep.include(["restart", "nio-agent.service"]);
  });

  describe("nixos-anywhere stand-in", () => {
    const anywhere = join(testbedDir(), "operator-tools", "nixos-anywhere");
    let log: string;

    before(() => {
      log = join(tmp, "anywhere.jsonl");
    });

    function anywhereRun(host: Host, flake: string, extra: string[] = []): ReturnType<typeof run> {
      return run(
        anywhere,
        [
          "--flake",
          `${flake}#web`,
          "--target-host",
          `root@${host.address}`,
          "-p",
          String(host.port),
          "-i",
          join(tmp, "operator"),
          ...extra,
        ],
        { env: { ...process.env, NIO_TESTBED_ANYWHERE_LOG: log } },
      );
    }

    it("fails like the real tool when the flake does not evaluate, before touching the host", async () => {
      const recsBefore = await b.reinstallRecords();
      const res = await anywhereRun(b, broken);
      expect(res.code).to.not.equal(0);
      expect(res.stderr).to.match(/error: attribute 'noSuchFunction' missing/);
      expect(await b.reinstallRecords()).to.deep.equal(recsBefore);
      const rec = (await readJsonLines<AnywhereRecord>(log)).pop();
      expect(rec).to.include({ result: "failed", exitCode: res.code, attr: "web" });
    });

    it("reinstalls: host state wiped, new system as generation 1, host key changed, record written", async () => {
      const oldKey = await b.hostPublicKey();
      await sshOk(b, "mkdir -p /var/lib/app /root/notes && echo data > /var/lib/app/db && echo x > /root/notes/todo");
      const extra = join(tmp, "extra");
      await mkdir(join(extra, "etc", "nio"), { recursive: true });
      await writeFile(join(extra, "etc", "nio", "token"), "secret\n", { mode: 0o600 });
      const facter = join(tmp, "facter.json");

      const res = await anywhereRun(b, flakeV2, [
        "--extra-files",
        extra,
        "--generate-hardware-config",
        "nixos-facter",
        facter,
        "--kexec",
        "/tmp/kexec.tar.gz",
        "--option",
        "max-jobs",
        "2",
      ]);
      expect(res.code, res.stderr).to.equal(0);

      const rec = (await readJsonLines<AnywhereRecord>(log)).pop();
      expect(rec).to.include({
        result: "success",
        attr: "web",
        sshUser: "root",
        sshHost: b.address,
        sshPort: b.port,
        kexec: "/tmp/kexec.tar.gz",
        reboot: true,
      });
      expect(rec?.argv).to.include("--extra-files");
      expect(rec?.options).to.deep.equal([{ name: "max-jobs", value: "2" }]);
      expect(JSON.parse(await readFile(facter, "utf8"))).to.have.property("hardware");

      expect(await b.exists("/var/lib/app")).to.equal(false);
      expect(await b.exists("/var/lib/nio")).to.equal(false);
      expect(await b.exists("/root/notes")).to.equal(false);
      expect(await b.exists("/root/.ssh/authorized_keys")).to.equal(true);
      expect(await b.generations()).to.deep.equal([1]);
      expect(await b.currentSystem()).to.equal(rec?.systemPath);
      expect((await b.readFile("/etc/nio/token")).toString()).to.equal("secret\n");

      const newKey = await b.hostPublicKey();
      expect(newKey).to.not.equal(oldKey);
      expect(await scanHostKey(b.address, b.port)).to.equal(newKey);
      expect(await sshFailure(b, { hostKey: oldKey })).to.match(/verification failed/i);
      expect((await sshOk(b, "readlink /run/current-system")).trim()).to.equal(rec?.systemPath);
      const reinstall = (await b.reinstallRecords()).pop();
      expect(reinstall).to.include({ attr: "web", systemPath: rec?.systemPath, hostPublicKey: newKey, reboot: true });
      expect(reinstall?.extraFiles).to.deep.equal(["/etc/nio/token"]);
    });

    it("works as deploy through sudo, and --no-reboot leaves the new system to the next boot", async () => {
      const res = await run(
        anywhere,
        [
          "--flake",
          `${flakeV1}#web`,
          `deploy@${a.address}`,
          "--ssh-port",
          String(a.port),
          "-i",
          join(tmp, "operator"),
          "--no-reboot",
        ],
        { env: { ...process.env, NIO_TESTBED_ANYWHERE_LOG: log } },
      );
      expect(res.code, res.stderr).to.equal(0);
      const rec = (await readJsonLines<AnywhereRecord>(log)).pop();
      expect(rec).to.include({ sshUser: "deploy", reboot: false, result: "success" });
      expect(await a.generations()).to.deep.equal([1]);
      expect(await a.bootSystem()).to.equal(rec?.systemPath);
      expect(await a.currentSystem()).to.equal(undefined);
    });
  });
});

describe("a fleet of 10 hosts", function () {
  this.timeout(60_000);
  let tmp: string;
  let fleet: Fleet | undefined;

  after(async () => {
    if (fleet) await fleet.destroy();
    if (tmp) {
      expect(await hostProcesses(tmp)).to.deep.equal([]);
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it("starts in parallel and every host is reachable", async () => {
    tmp = await mkdtemp(join(tmpdir(), "nio-fleet-"));
    await runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(tmp, "operator")]);
    operatorKey = await readFile(join(tmp, "operator"));
    const pub = await readFile(join(tmp, "operator.pub"), "utf8");
    fleet = await startHosts({ dir: join(tmp, "fleet"), count: 10, operatorPublicKey: pub });
    console.log(`      (10 hosts started in ${fleet.startMs} ms, first start incl. key generation)`);
    expect(new Set(fleet.hosts.map((h) => h.address)).size).to.equal(10);
    const names = await Promise.all(fleet.hosts.map((h) => sshOk(h, "hostname")));
    expect(names.map((n) => n.trim())).to.deep.equal(fleet.hosts.map((h) => h.name));

    await fleet.stop();
    const t0 = Date.now();
    fleet = await startHosts({ dir: join(tmp, "fleet"), count: 10 });
    console.log(`      (10 hosts restarted in ${Date.now() - t0} ms, keys kept)`);
    const again = await Promise.all(fleet.hosts.map((h) => sshOk(h, "hostname")));
    expect(again).to.have.length(10);

    // another process (e.g. `testbed down`) attaches to the running hosts and removes them
    const attached = await openHosts({ dir: join(tmp, "fleet") });
    expect(attached.hosts.map((h) => `${h.name} ${h.address}:${h.port}`)).to.deep.equal(
      fleet.hosts.map((h) => `${h.name} ${h.address}:${h.port}`),
    );
    expect(await Promise.all(attached.hosts.map((h) => h.isRunning()))).to.deep.equal(Array(10).fill(true));
    await attached.destroy();
    fleet = undefined;
    expect(await hostProcesses(tmp)).to.deep.equal([]);
    expect(existsSync(join(tmp, "fleet", "hosts"))).to.equal(false);
  });
});

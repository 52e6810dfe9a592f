import { expect } from "chai";
import * as fs from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import git from "isomorphic-git";
import http from "isomorphic-git/http/node";
import { GitFixture } from "../src/git-fixture.js";
import { startGitServer } from "../src/git-server.js";
import {
  NixError,
  nixBuildToplevel,
  nixEval,
  nixFlakeShow,
  nixOffline,
  nixOfflineScript,
  nixStubsDir,
} from "../src/nix.js";

const FLAKE = `{
  description = "testbed nix test flake";
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";
  inputs.disko = { url = "github:nix-community/disko"; inputs.nixpkgs.follows = "nixpkgs"; };
  outputs = { self, nixpkgs, disko }:
    let
      cluster = import ./cluster.nix;
      mk = node: nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        specialArgs = { inherit cluster node; };
        modules = [ disko.nixosModules.disko ./node.nix ];
      };
    in {
      nixosConfigurations = nixpkgs.lib.listToAttrs
        (map (n: nixpkgs.lib.nameValuePair n.name (mk n)) cluster.nodes)
        // { minimal = nixpkgs.lib.nixosSystem { modules = [ { networking.hostName = "minimal"; } ]; }; };
    };
}
`;

const CLUSTER = `{
  name = "lab";
  vip = "10.9.0.100";
  nodes = [ { name = "cp-01"; ip = "10.9.0.1"; role = "server"; } { name = "worker-01"; ip = "10.9.0.2"; role = "agent"; } ];
}
`;

const NODE = `{ config, lib, pkgs, cluster, node, modulesPath, ... }:
{
  imports = [ (modulesPath + "/profiles/qemu-guest.nix") ];
  config = lib.mkMerge [
    {
      networking.hostName = node.name;
      networking.firewall.allowedTCPPorts = [ 22 ];
      services.openssh.enable = true;
      disko.devices.disk.main = { type = "disk"; device = "/dev/sda"; };
      environment.systemPackages = [ pkgs.kubectl ];
      environment.etc."nico/cluster".text = "\${cluster.name} \${cluster.vip}";
    }
    (lib.mkIf (node.role == "server") {
      services.k3s = { enable = true; role = "server"; extraFlags = [ "--tls-san=\${cluster.vip}" ]; };
      services.keepalived.vrrpInstances.k8s_vip = { interface = "eth0"; virtualRouterId = 51; priority = 150; };
    })
    (lib.mkIf config.services.k3s.enable { networking.firewall.allowedTCPPorts = [ 6443 ]; })
    { services.openssh.settings.PermitRootLogin = lib.mkDefault "prohibit-password"; }
  ];
}
`;

const GITHUB_LOCK = JSON.stringify(
  {
    nodes: {
      disko: {
        inputs: { nixpkgs: ["nixpkgs"] },
        locked: {
          lastModified: 1717000000,
          narHash: "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
          owner: "nix-community",
          repo: "disko",
          rev: "1111111111111111111111111111111111111111",
          type: "github",
        },
        original: { owner: "nix-community", repo: "disko", type: "github" },
      },
      nixpkgs: {
        locked: {
          lastModified: 1717000000,
          narHash: "sha256-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=",
          owner: "NixOS",
          repo: "nixpkgs",
          rev: "2222222222222222222222222222222222222222",
          type: "github",
        },
        original: { owner: "NixOS", ref: "nixos-24.05", repo: "nixpkgs", type: "github" },
      },
      root: { inputs: { disko: "disko", nixpkgs: "nixpkgs" } },
    },
    root: "root",
    version: 7,
  },
  null,
  2,
);

async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, rel)), { recursive: true });
    await writeFile(join(dir, rel), content);
  }
}

async function nixError(p: Promise<unknown>): Promise<NixError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof NixError) return err;
    throw err;
  }
  throw new Error("expected nix to fail");
}

describe("offline nix with stub nixpkgs/disko flakes", function () {
  this.timeout(180_000);
  let root: string;
  let flake: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "nio-nix-test-"));
    flake = join(root, "flake");
    await writeTree(flake, { "flake.nix": FLAKE, "cluster.nix": CLUSTER, "node.nix": NODE });
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("`nix flake show` lists the nixosConfigurations", async () => {
    const shown = await nixFlakeShow(flake);
    expect(shown).to.deep.equal({
      nixosConfigurations: {
        "cp-01": { type: "nixos-configuration" },
        minimal: { type: "nixos-configuration" },
        "worker-01": { type: "nixos-configuration" },
      },
    });
  });

  it("`nix eval .#nixosConfigurations --apply builtins.attrNames` works", async () => {
    expect(await nixEval(flake, "nixosConfigurations", { apply: "builtins.attrNames" })).to.deep.equal([
      "cp-01",
      "minimal",
      "worker-01",
    ]);
    const res = await nixOffline(["eval", ".#nixosConfigurations", "--apply", "builtins.attrNames"], { cwd: flake });
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout.trim()).to.equal('[ "cp-01" "minimal" "worker-01" ]');
  });

  it("evaluates merged module config (mkIf, mkMerge, mkDefault, lists, specialArgs)", async () => {
    const cfg = (name: string, path: string): Promise<unknown> =>
      nixEval(flake, `nixosConfigurations.${name}.config.${path}`);
    expect(await cfg("cp-01", "networking.hostName")).to.equal("cp-01");
    expect(await cfg("cp-01", "networking.firewall.allowedTCPPorts")).to.deep.equal([22, 6443]);
    expect(await cfg("worker-01", "networking.firewall.allowedTCPPorts")).to.deep.equal([22]);
    expect(await cfg("worker-01", "services.k3s.enable")).to.equal(false);
    expect(await cfg("cp-01", "services.openssh.settings.PermitRootLogin")).to.equal("prohibit-password");
    expect(await cfg("minimal", "networking.hostName")).to.equal("minimal");
  });

  it("builds a configuration's toplevel offline, with the module's values in its output", async () => {
    const out = await nixBuildToplevel(flake, "cp-01");
    expect(out).to.match(/^\/nix\/store\/[a-z0-9]{32}-nixos-system-cp-01$/);
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8")) as {
      networking: { hostName: string };
      services: { k3s: { extraFlags: string[] }; keepalived: { vrrpInstances: Record<string, { priority: number }> } };
      environment: { etc: Record<string, { text: string }>; systemPackages: string[] };
      disko: { devices: { disk: { main: { device: string } } } };
    };
    expect(config.networking.hostName).to.equal("cp-01");
    expect(config.services.k3s.extraFlags).to.deep.equal(["--tls-san=10.9.0.100"]);
    expect(config.services.keepalived.vrrpInstances.k8s_vip?.priority).to.equal(150);
    expect(config.environment.etc["nico/cluster"]?.text).to.equal("lab 10.9.0.100");
    expect(config.environment.systemPackages).to.deep.equal(["kubectl-0.0.0-stub"]);
    expect(config.disko.devices.disk.main.device).to.equal("/dev/sda");
    expect((await readFile(join(out, "hostname"), "utf8")).trim()).to.equal("cp-01");
  });

  it("fails with Nix's error for an undefined variable or a missing attribute in a node module", async () => {
    const bad = join(root, "bad");
    await writeTree(bad, {
      "flake.nix": FLAKE,
      "cluster.nix": CLUSTER,
      "node.nix": NODE.replace("networking.hostName = node.name;", "networking.hostName = nodee.name;"),
    });
    // listing the configurations does not evaluate them ...
    expect(await nixEval(bad, "nixosConfigurations", { apply: "builtins.attrNames" })).to.have.length(3);
    // ... building (or evaluating) one does
    const err = await nixError(nixBuildToplevel(bad, "cp-01"));
    expect(err.message).to.match(/undefined variable 'nodee'/);
    expect(err.message).to.not.include("not writing modified lock file");

    const typo = join(root, "typo");
    await writeTree(typo, {
      "flake.nix": FLAKE,
      "cluster.nix": CLUSTER,
      "node.nix": NODE.replace('${cluster.vip}";', '${cluster.vipp}";'),
    });
    const err2 = await nixError(nixBuildToplevel(typo, "worker-01"));
    expect(err2.message).to.match(/attribute 'vipp' missing/);
    const check = await nixOffline(["flake", "check", `path:${typo}`]);
    expect(check.code).to.not.equal(0);
    expect(check.stderr).to.match(/attribute 'vipp' missing/);
  });

  it("works offline when flake.lock pins nixpkgs and disko to github, and leaves the lock file alone", async () => {
    const locked = join(root, "locked");
    await writeTree(locked, {
      "flake.nix": FLAKE,
      "cluster.nix": CLUSTER,
      "node.nix": NODE,
      "flake.lock": GITHUB_LOCK,
    });
    expect(await nixEval(locked, "nixosConfigurations", { apply: "builtins.attrNames" })).to.have.length(3);
    expect(await nixBuildToplevel(locked, "worker-01")).to.match(/-nixos-system-worker-01$/);
    expect(await readFile(join(locked, "flake.lock"), "utf8")).to.equal(GITHUB_LOCK);
  });

  it("resolves an indirect `nixpkgs` input (no inputs declared) without the global registry", async () => {
    const indirect = join(root, "indirect");
    await writeTree(indirect, {
      "flake.nix": `{ outputs = { self, nixpkgs }: { nixosConfigurations.a = nixpkgs.lib.nixosSystem { modules = [ { networking.hostName = "a"; } ]; }; }; }`,
    });
    expect(await nixEval(indirect, "nixosConfigurations.a.config.networking.hostName")).to.equal("a");
  });

  it("finds the stubs relative to the script, as in a simulated host (/opt/testbed/{bin,nix-stubs})", async () => {
    const opt = join(root, "opt", "testbed");
    await mkdir(join(opt, "bin"), { recursive: true });
    await copyFile(nixOfflineScript(), join(opt, "bin", "nix-offline"));
    await fs.promises.chmod(join(opt, "bin", "nix-offline"), 0o755);
    await fs.promises.cp(nixStubsDir(), join(opt, "nix-stubs"), { recursive: true });
    const res = await nixOffline(
      ["eval", "--raw", `path:${flake}#nixosConfigurations.minimal.config.networking.hostName`],
      {
        env: { NIO_TESTBED_NIX_STUBS: "" },
        script: join(opt, "bin", "nix-offline"),
      },
    );
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.equal("minimal");
    expect(res.stderr).to.include(`path:${join(opt, "nix-stubs")}/nixpkgs`);
  });

  it("evaluates a flake pushed to the testbed git server and shallow-cloned with isomorphic-git", async () => {
    const server = await startGitServer({ rootDir: join(root, "repos"), token: "t0k" });
    const fx = await GitFixture.create({ server, repo: "configs", token: "t0k" });
    try {
      await fx.copyDir(flake, "nix");
      const commit = await fx.commit("cluster flake");
      await fx.push();
      const checkout = join(root, "checkout");
      await git.clone({
        fs,
        http,
        dir: checkout,
        url: server.repoUrl("configs"),
        ref: "main",
        singleBranch: true,
        depth: 1,
        onAuth: () => ({ username: "nio", password: "t0k" }),
      });
      expect(await git.resolveRef({ fs, dir: checkout, ref: "HEAD" })).to.equal(commit);
      const shown = await nixFlakeShow(join(checkout, "nix"));
      expect(Object.keys(shown.nixosConfigurations as object)).to.deep.equal(["cp-01", "minimal", "worker-01"]);
      // nix 2.8 refuses a shallow repository as a git+file flake unless told so with `shallow=1`
      const attr = "nixosConfigurations.cp-01.config.networking.hostName";
      const refused = await nixError(nixEval(`git+file://${checkout}?dir=nix`, attr));
      expect(refused.message).to.include("is a shallow Git repository, but a non-shallow repository is needed");
      expect(await nixEval(`git+file://${checkout}?dir=nix&shallow=1`, attr)).to.equal("cp-01");
    } finally {
      await fx.cleanup();
      await server.stop();
    }
  });
});

/**
 * The cluster flake in nix/ with real (offline) Nix and the testbed's stub nixpkgs/disko: its outputs for a
 * hand-written cluster.nix in the contract shape, the refusal of ambiguous clusters, the merged configuration of
 * every role (k3s, keepalived, firewall, networking, SSH, disko, minimal), that no secret enters the store, and what
 * switching a simulated host to a node and then to `minimal` does.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

import { expect } from "chai";
import {
  NixError,
  hostExec,
  nixEval,
  nixFlakeShow,
  nixOffline,
  nixOfflineChecked,
  runChecked,
  startHosts,
  type Fleet,
  type Host,
} from "@nio/testbed";

import {
  FLAKE_DIR,
  activationText,
  allStrings,
  buildNode,
  nixLiteral,
  nodeConfig,
  writeClusterFlake,
  type ClusterNix,
} from "./support/flake.js";

const KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFlakeTestKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA nico@operator";
const KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFlakeTestKeyBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB machine@prod-cluster";
const VIP = "192.168.1.100";

const HA: ClusterNix = {
  name: "prod-cluster",
  vip: VIP,
  initialized: false,
  network: {
    interface: "eth0",
    prefixLength: 24,
    gateway: "192.168.1.1",
    nameservers: ["192.168.1.1", "9.9.9.9"],
    virtualRouterId: 51,
  },
  controlPlane: [
    { name: "cp-01", ip: "192.168.1.101" },
    { name: "cp-02", ip: "192.168.1.102" },
    { name: "cp-03", ip: "192.168.1.103" },
  ],
  workers: [
    { name: "worker-01", ip: "192.168.1.201" },
    { name: "worker-02", ip: "192.168.1.202" },
  ],
  authorizedKeys: [KEY_A, KEY_B],
};

const SINGLE: ClusterNix = {
  name: "edge",
  vip: null,
  initialized: false,
  network: { interface: "ens18", prefixLength: 16, gateway: null, nameservers: [], virtualRouterId: 7 },
  controlPlane: [{ name: "solo", ip: "10.20.0.5" }],
  workers: [{ name: "edge-worker", ip: "10.20.0.6" }],
  authorizedKeys: [KEY_A],
};

const CP_TCP = [22, 6443];
const CP_TCP_RANGES = [
  { from: 2379, to: 2380 },
  { from: 10250, to: 10259 },
];
const TOKEN_PATH = "/var/lib/nico/join-token";

async function nixError(p: Promise<unknown>): Promise<NixError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof NixError) return err;
    throw err;
  }
  throw new Error("expected nix to fail");
}

describe("the cluster flake (nix/)", function () {
  this.timeout(180_000);
  let tmp: string;
  let ha: string;
  let haInitialized: string;
  let single: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "nico-flake-"));
    ha = await writeClusterFlake(join(tmp, "ha"), HA);
    haInitialized = await writeClusterFlake(join(tmp, "ha-initialized"), { ...HA, initialized: true });
    single = await writeClusterFlake(join(tmp, "single"), SINGLE);
  });

  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  describe("outputs", () => {
    it("`nix flake show` lists exactly every node of cluster.nix plus minimal", async () => {
      expect(await nixFlakeShow(ha)).to.deep.equal({
        nixosConfigurations: Object.fromEntries(
          ["cp-01", "cp-02", "cp-03", "minimal", "worker-01", "worker-02"].map((n) => [
            n,
            { type: "nixos-configuration" },
          ]),
        ),
      });
      const shown = await nixFlakeShow(single);
      expect(Object.keys(shown.nixosConfigurations as object)).to.deep.equal(["edge-worker", "minimal", "solo"]);
    });

    it("`nix eval .#nixosConfigurations --apply builtins.attrNames` works offline in the flake directory", async () => {
      const res = await nixOffline(["eval", ".#nixosConfigurations", "--apply", "builtins.attrNames"], { cwd: ha });
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stdout.trim()).to.equal('[ "cp-01" "cp-02" "cp-03" "minimal" "worker-01" "worker-02" ]');
      expect(await nixEval(single, "nixosConfigurations", { apply: "builtins.attrNames" })).to.deep.equal([
        "edge-worker",
        "minimal",
        "solo",
      ]);
    });

    it("the example cluster.nix evaluates, and the github pins in flake.lock stay untouched offline", async () => {
      const lockBefore = await readFile(join(FLAKE_DIR, "flake.lock"), "utf8");
      const lock = JSON.parse(lockBefore) as {
        nodes: Record<string, { locked?: Record<string, unknown>; original?: Record<string, unknown> }>;
      };
      expect(lock.nodes.nixpkgs?.original).to.include({ type: "github", repo: "nixpkgs", ref: "nixos-25.05" });
      for (const input of ["nixpkgs", "disko"]) {
        expect(lock.nodes[input]?.locked?.rev, input).to.match(/^[0-9a-f]{40}$/);
        expect(lock.nodes[input]?.locked?.narHash, input).to.match(/^sha256-[A-Za-z0-9+/]{43}=$/);
        expect(lock.nodes[input]?.locked?.lastModified, input).to.be.a("number");
      }
      const shown = await nixFlakeShow(FLAKE_DIR);
      expect(Object.keys(shown.nixosConfigurations as object)).to.include.members(["cp-01", "worker-02", "minimal"]);
      const check = await nixOffline(["flake", "check", `path:${FLAKE_DIR}`]);
      expect(check.code, check.stderr).to.equal(0);
      expect(await readFile(join(FLAKE_DIR, "flake.lock"), "utf8")).to.equal(lockBefore);
    });

    it("refuses a node in both lists, a duplicate, a node called minimal: an error naming the node", async () => {
      const cases: [string, ClusterNix, RegExp][] = [
        [
          "both",
          { ...HA, workers: [...HA.workers, { name: "cp-02", ip: "192.168.1.250" }] },
          /node "cp-02" is listed in both controlPlane and workers/,
        ],
        [
          "twice",
          { ...HA, workers: [...HA.workers, { name: "worker-01", ip: "192.168.1.251" }] },
          /node "worker-01" is listed more than once in workers/,
        ],
        [
          "minimal",
          { ...HA, workers: [{ name: "minimal", ip: "192.168.1.252" }] },
          /the node name "minimal" is reserved/,
        ],
        [
          "same-ip",
          { ...HA, workers: [{ name: "worker-09", ip: "192.168.1.101" }] },
          /ip "192\.168\.1\.101" is used by more than one node \(cp-01, worker-09\)/,
        ],
      ];
      for (const [name, cluster, message] of cases) {
        const dir = await writeClusterFlake(join(tmp, `bad-${name}`), cluster);
        const err = await nixError(nixEval(dir, "nixosConfigurations", { apply: "builtins.attrNames" }));
        expect(err.message, name).to.match(/cluster\.nix is not valid/);
        expect(err.message, name).to.match(message);
        const show = await nixOffline(["flake", "show", "--json", `path:${dir}`]);
        expect(show.code, name).to.not.equal(0);
        expect(show.stderr, name).to.match(message);
      }
    });

    it("refuses a cluster.nix that misses fields or has values the modules cannot use", async () => {
      const dir = await writeClusterFlake(join(tmp, "bad-missing"), '{ name = "x"; vip = null; }\n');
      const err = await nixError(nixEval(dir, "nixosConfigurations", { apply: "builtins.attrNames" }));
      expect(err.message).to.include("the attribute `network' is missing");
      expect(err.message).to.include("the attribute `authorizedKeys' is missing");
      const bad = await writeClusterFlake(join(tmp, "bad-values"), {
        ...HA,
        vip: "192.168.1.300",
        network: { ...HA.network, virtualRouterId: 300, interface: "eth 0" },
        authorizedKeys: [`${KEY_A}\n${KEY_B}`],
      });
      const err2 = await nixError(nixEval(bad, "nixosConfigurations", { apply: "builtins.attrNames" }));
      expect(err2.message).to.include('vip must be an IP address or null (got "192.168.1.300")');
      expect(err2.message).to.include("network.virtualRouterId must be an integer 1-255 (got 300)");
      expect(err2.message).to.include('network.interface "eth 0" is not a network interface name');
      expect(err2.message).to.include("authorizedKeys must be a list of single-line public keys");
    });
  });

  describe("control plane", () => {
    it("only the first control-plane node bootstraps, and only while initialized = false", async () => {
      const [cp1, cp2, cp3] = await Promise.all(["cp-01", "cp-02", "cp-03"].map((n) => nodeConfig(ha, n)));
      expect(cp1?.services.k3s).to.include({ enable: true, role: "server", clusterInit: true, serverAddr: "" });
      for (const cp of [cp2, cp3]) {
        expect(cp?.services.k3s).to.include({
          enable: true,
          role: "server",
          clusterInit: false,
          serverAddr: `https://${VIP}:6443`,
        });
      }
      for (const n of ["cp-01", "cp-02", "cp-03"]) {
        expect((await nodeConfig(haInitialized, n)).services.k3s, n).to.include({
          clusterInit: false,
          serverAddr: `https://${VIP}:6443`,
        });
      }
    });

    it("k3s server: token file by path string, node IP, the VIP in the certificate SANs, root-only kubeconfig", async () => {
      for (const [i, n] of ["cp-01", "cp-02", "cp-03"].entries()) {
        const k3s = (await nodeConfig(ha, n)).services.k3s;
        expect(k3s.tokenFile).to.equal(TOKEN_PATH);
        expect(k3s.token).to.equal("");
        expect(k3s.extraFlags).to.include.members([
          `--node-ip=${HA.controlPlane[i]?.ip ?? ""}`,
          `--tls-san=${VIP}`,
          "--write-kubeconfig-mode=0600",
          "--flannel-iface=eth0",
        ]);
      }
      const cp1 = await nodeConfig(ha, "cp-01");
      expect(cp1.systemd.tmpfiles.rules).to.include("d /etc/rancher/k3s 0700 root root -");
      expect(cp1.environment.variables.KUBECONFIG).to.equal("/etc/rancher/k3s/k3s.yaml");
    });

    it("keepalived: one VRRP instance with NixOS's options, priorities 150/149/148, MASTER then BACKUP, PASS auth", async () => {
      const instances = await Promise.all(
        ["cp-01", "cp-02", "cp-03"].map(async (n) => {
          const ka = (await nodeConfig(ha, n)).services.keepalived;
          expect(ka.enable, n).to.equal(true);
          expect(Object.keys(ka.vrrpInstances), n).to.deep.equal(["nico_vip"]);
          return ka.vrrpInstances.nico_vip;
        }),
      );
      expect(instances.map((v) => v?.priority)).to.deep.equal([150, 149, 148]);
      expect(instances.map((v) => v?.state)).to.deep.equal(["MASTER", "BACKUP", "BACKUP"]);
      for (const [i, v] of instances.entries()) {
        expect(v).to.include({ interface: "eth0", virtualRouterId: 51, unicastSrcIp: HA.controlPlane[i]?.ip });
        expect(v?.virtualIps).to.deep.equal([{ addr: `${VIP}/24` }]);
        expect(v?.unicastPeers).to.have.members(HA.controlPlane.filter((_, j) => j !== i).map((n) => n.ip));
      }
      const password = (extra = ""): string => /auth_pass (\S+)/.exec(extra)?.[1] ?? "";
      const passwords = instances.map((v) => password(v?.extraConfig));
      expect(instances[0]?.extraConfig).to.match(/authentication \{\s+auth_type PASS\s+auth_pass [0-9a-f]{8}\s+\}/);
      expect(new Set(passwords).size).to.equal(1);
      expect(passwords[0]).to.have.length(8);
      // derived from the cluster name: another cluster on the same segment gets another one
      const other = await writeClusterFlake(join(tmp, "other-name"), { ...HA, name: "staging" });
      const otherPass = password(
        (await nodeConfig(other, "cp-01")).services.keepalived.vrrpInstances.nico_vip?.extraConfig,
      );
      expect(otherPass)
        .to.match(/^[0-9a-f]{8}$/)
        .and.not.equal(passwords[0]);
    });

    it("firewall: the seed's control-plane ports and VRRP (IP protocol 112)", async () => {
      const fw = (await nodeConfig(ha, "cp-02")).networking.firewall;
      expect(fw.enable).to.equal(true);
      expect(fw.allowedTCPPorts).to.have.members(CP_TCP);
      expect(fw.allowedTCPPortRanges).to.deep.equal(CP_TCP_RANGES);
      expect(fw.allowedUDPPorts).to.deep.equal([8472]);
      expect(fw.allowedUDPPortRanges).to.deep.equal([]);
      expect(fw.extraCommands).to.match(/ip46tables -A nixos-fw -p 112 -j nixos-fw-accept/);
    });
  });

  describe("workers", () => {
    it("k3s agent to the VIP with the same token file; the worker ports; no keepalived, no VRRP", async () => {
      for (const [i, n] of ["worker-01", "worker-02"].entries()) {
        const c = await nodeConfig(ha, n);
        expect(c.services.k3s).to.include({
          enable: true,
          role: "agent",
          serverAddr: `https://${VIP}:6443`,
          tokenFile: TOKEN_PATH,
          clusterInit: false,
        });
        expect(c.services.k3s.extraFlags).to.include(`--node-ip=${HA.workers[i]?.ip ?? ""}`);
        expect(c.services.keepalived.enable).to.equal(false);
        const fw = c.networking.firewall;
        expect(fw.allowedTCPPorts).to.have.members([22, 10250]);
        expect(fw.allowedTCPPortRanges).to.deep.equal([{ from: 30000, to: 32767 }]);
        expect(fw.allowedUDPPorts).to.deep.equal([8472]);
        expect(fw.extraCommands).to.equal("");
      }
    });
  });

  describe("without a VIP (one control-plane node)", () => {
    it("no keepalived; everything joins through the first control-plane node's address", async () => {
      const solo = await nodeConfig(single, "solo");
      expect(solo.services.k3s).to.include({ role: "server", clusterInit: true, serverAddr: "" });
      expect(solo.services.k3s.extraFlags.some((f) => f.startsWith("--tls-san"))).to.equal(false);
      expect(solo.services.keepalived.enable).to.equal(false);
      expect(solo.networking.firewall.extraCommands).to.equal("");
      const worker = await nodeConfig(single, "edge-worker");
      expect(worker.services.k3s).to.include({ role: "agent", serverAddr: "https://10.20.0.5:6443" });

      const initialized = await writeClusterFlake(join(tmp, "single-initialized"), { ...SINGLE, initialized: true });
      expect((await nodeConfig(initialized, "solo")).services.k3s).to.include({
        clusterInit: false,
        serverAddr: "https://10.20.0.5:6443",
      });
    });

    it("IPv6: the server address is bracketed, the address and gateway are IPv6", async () => {
      const v6 = await writeClusterFlake(join(tmp, "v6"), {
        ...SINGLE,
        vip: "fd00::100",
        network: { ...SINGLE.network, prefixLength: 64, gateway: "fd00::1" },
        controlPlane: [{ name: "solo", ip: "fd00::5" }],
        workers: [{ name: "edge-worker", ip: "fd00::6" }],
      });
      const w = await nodeConfig(v6, "edge-worker");
      expect(w.services.k3s.serverAddr).to.equal("https://[fd00::100]:6443");
      expect(w.networking.interfaces.ens18).to.deep.equal({
        ipv6: { addresses: [{ address: "fd00::6", prefixLength: 64 }] },
      });
      expect(w.networking.defaultGateway6).to.deep.equal({ address: "fd00::1", interface: "ens18" });
      expect(w.networking.defaultGateway).to.equal(null);
    });
  });

  describe("every node", () => {
    it("host name, static address, gateway and DNS from cluster.nix; no DHCP", async () => {
      const c = await nodeConfig(ha, "worker-02");
      expect(c.networking.hostName).to.equal("worker-02");
      expect(c.networking.useDHCP).to.equal(false);
      expect(c.networking.interfaces).to.deep.equal({
        eth0: { ipv4: { addresses: [{ address: "192.168.1.202", prefixLength: 24 }] } },
      });
      expect(c.networking.defaultGateway).to.deep.equal({ address: "192.168.1.1", interface: "eth0" });
      expect(c.networking.nameservers).to.deep.equal(["192.168.1.1", "9.9.9.9"]);
      // gateway null, nameservers []: left out
      const s = await nodeConfig(single, "solo");
      expect(s.networking.defaultGateway).to.equal(null);
      expect(s.networking.nameservers).to.deep.equal([]);
    });

    it("SSH for root with the authorized keys only, flakes on, Kubernetes kernel settings, no swap", async () => {
      for (const n of ["cp-01", "worker-01"]) {
        const c = await nodeConfig(ha, n);
        expect(c.services.openssh).to.deep.include({ enable: true, openFirewall: true });
        expect(c.services.openssh.settings).to.include({
          PermitRootLogin: "prohibit-password",
          PasswordAuthentication: false,
        });
        expect(c.users.users.root.openssh.authorizedKeys.keys).to.deep.equal([KEY_A, KEY_B]);
        expect(c.nix.settings["experimental-features"]).to.include.members(["nix-command", "flakes"]);
        expect(c.boot.kernelModules).to.include.members(["br_netfilter", "overlay"]);
        expect(c.boot.kernel.sysctl).to.include({
          "net.ipv4.ip_forward": 1,
          "net.bridge.bridge-nf-call-iptables": 1,
          "net.bridge.bridge-nf-call-ip6tables": 1,
        });
        expect(c.swapDevices).to.deep.equal([]);
        expect(c.zramSwap.enable).to.equal(false);
        expect(c.system.stateVersion).to.equal("25.05");
        expect(activationText(c.system.activationScripts["nico-node-identity"])).to.include("/var/lib/nico/node.env");
      }
    });

    it("the disk layout: disko types and sizes of the seed, the device configurable, no fileSystems of its own", async () => {
      const c = await nodeConfig(ha, "cp-03");
      const disk = c.disko.devices.disk.main;
      expect(disk).to.include({ type: "disk", device: "/dev/sda" });
      expect(disk?.content.type).to.equal("gpt");
      const parts = disk?.content.partitions ?? {};
      expect(parts.boot).to.deep.include({ size: "1M", type: "EF02" });
      expect(parts.ESP).to.deep.include({ size: "512M", type: "EF00" });
      expect(parts.ESP?.content).to.include({ type: "filesystem", format: "vfat", mountpoint: "/boot" });
      expect(parts.root).to.deep.include({ size: "10G" });
      expect(parts.root?.content).to.include({ type: "filesystem", format: "ext4", mountpoint: "/" });
      expect(parts.lvm).to.deep.include({ size: "100%", content: { type: "lvm_pv", vg: "vg0" } });
      const order = Object.entries(parts)
        .sort(([, a], [, b]) => (a.priority ?? 1000) - (b.priority ?? 1000))
        .map(([name]) => name);
      expect(order).to.deep.equal(["boot", "ESP", "root", "lvm"]);
      expect(c.disko.devices.lvm_vg).to.deep.equal({
        vg0: { type: "lvm_vg", lvs: { thinpool: { size: "100%FREE", lvm_type: "thin-pool" } } },
      });
      expect(c.nico.disk.device).to.equal("/dev/sda");
      expect(c.fileSystems).to.deep.equal({});
      expect(c.boot.loader.grub).to.include({ enable: true, efiSupport: true });

      const device = await nixEval(ha, "nixosConfigurations.cp-03", {
        apply:
          'c: (c.extendModules { modules = [ { nico.disk.device = "/dev/vda"; } ]; }).config.disko.devices.disk.main.device',
      });
      expect(device).to.equal("/dev/vda");
    });

    it("no secret enters the store: the token is a path string, and files next to cluster.nix are never read", async () => {
      const secret = "K10flake-test-secret-token-5f1c0a::server:do-not-store";
      const dir = await writeClusterFlake(join(tmp, "with-decoys"), HA);
      // what the predecessor did: secrets as files in the flake directory (NICO never writes them there)
      await writeFile(join(dir, "join-token"), `${secret}\n`, { mode: 0o600 });
      await writeFile(join(dir, "machine-ssh-private-key"), `${secret}-ssh\n`, { mode: 0o600 });
      for (const n of ["cp-01", "cp-02", "worker-01", "minimal"]) {
        const { path, config } = await buildNode(dir, n);
        const strings = allStrings(config);
        expect(strings.join("\n"), n).to.not.include(secret);
        for (const s of strings.filter((x) => x.includes("join-token"))) {
          expect(s, n).to.not.include("/nix/store/");
        }
        expect(
          strings.filter((x) => /\/nix\/store\/[^\s"']*(token|private-key)/.test(x)),
          n,
        ).to.deep.equal([]);
        const out = await readFile(join(path, "config.json"), "utf8");
        expect(out, n).to.not.include(secret);
        // neither the system nor its derivation's inputs reference the flake source (where such files would be)
        const closure = await nixOfflineChecked([
          "path-info",
          "--recursive",
          "--derivation",
          `path:${dir}#nixosConfigurations.${n}.config.system.build.toplevel`,
        ]);
        const source = JSON.parse(await nixOfflineChecked(["flake", "metadata", "--json", `path:${dir}`])) as {
          path: string;
        };
        expect(closure, n).to.not.include(source.path);
      }
      expect((await nodeConfig(dir, "cp-01")).services.k3s.tokenFile).to.equal(TOKEN_PATH);
    });
  });

  describe("minimal", () => {
    it("no k3s, no keepalived; SSH with the authorized keys; the cleanup activation script; the address kept", async () => {
      const m = await nodeConfig(ha, "minimal");
      expect(m.services.k3s.enable).to.equal(false);
      expect(m.services.keepalived.enable).to.equal(false);
      expect(m.services.openssh).to.deep.include({ enable: true, openFirewall: true });
      expect(m.users.users.root.openssh.authorizedKeys.keys).to.deep.equal([KEY_A, KEY_B]);
      expect(m.networking.firewall.allowedTCPPorts).to.deep.equal([22]);
      expect(m.networking.firewall.allowedUDPPorts).to.deep.equal([]);
      const cleanup = activationText(m.system.activationScripts["nico-cleanup"]);
      expect(cleanup).to.match(/rm -rf [^\n]*\/var\/lib\/rancher\/k3s/);
      expect(cleanup).to.match(/rm -rf [^\n]*\/etc\/rancher/);
      expect(cleanup).to.include("rm -f /var/lib/nico/join-token");
      expect(m.system.activationScripts["nico-node-identity"]).to.equal(undefined);
      // the address: DHCP as a fallback, the node's static address back from /var/lib/nico/node.env
      expect(m.networking.hostName).to.equal("");
      expect(m.networking.useDHCP).to.equal(true);
      expect(m.networking.interfaces).to.deep.equal({});
      const keep = m.systemd.services["nico-keep-address"];
      expect(keep?.wantedBy).to.deep.equal(["multi-user.target"]);
      expect(keep?.script).to.include("/var/lib/nico/node.env");
      expect(keep?.script).to.include('ip addr replace "$NICO_NODE_IP/$NICO_PREFIX_LENGTH" dev "$NICO_INTERFACE"');
      expect(m.systemd.services["nico-k3s-network-cleanup"]?.script).to.include("cni0");
      expect(m.swapDevices).to.deep.equal([]);
    });
  });
});

describe("the cluster flake on a simulated host: a control-plane node, then minimal", function () {
  this.timeout(180_000);
  let tmp: string;
  let fleet: Fleet;
  let host: Host;
  let key: Buffer;

  const rebuild = (attr: string): ReturnType<typeof hostExec> =>
    hostExec(host, `nixos-rebuild switch --flake path:/var/lib/nio/src/cluster#${attr}`, { privateKey: key });

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "nico-flake-host-"));
    await runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(tmp, "operator")]);
    key = await readFile(join(tmp, "operator"));
    const pub = (await readFile(join(tmp, "operator.pub"), "utf8")).trim();
    fleet = await startHosts({ dir: join(tmp, "fleet"), names: ["cp-01"], operatorPublicKey: pub });
    host = fleet.host("cp-01");
    const flake = await writeClusterFlake(join(tmp, "flake"), { ...HA, authorizedKeys: [pub] });
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else await host.writeFile(`/var/lib/nio/src/cluster/${relative(flake, p)}`, await readFile(p));
      }
    };
    await walk(flake);
  });

  after(async () => {
    if (fleet) await fleet.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("without the join token k3s does not start; with it the first node bootstraps and writes a root-only kubeconfig", async () => {
    const missing = await rebuild("cp-01");
    expect(missing.code).to.equal(4);
    expect(missing.stderr).to.include(`k3s: token file ${TOKEN_PATH} missing`);

    await host.writeFile(TOKEN_PATH, "K10testbed-join-token\n", { mode: 0o400 });
    const res = await rebuild("cp-01");
    expect(res.code, res.stderr).to.equal(0);
    expect(await host.fileStat("/etc/rancher/k3s/k3s.yaml")).to.include({ mode: 0o600, uid: 0 });
    expect((await host.readFile("/etc/rancher/k3s/k3s.yaml")).toString()).to.include("server: https://127.0.0.1:6443");
    expect((await host.k3sRecords()).pop()).to.include({
      event: "start",
      result: "running",
      role: "server",
      clusterInit: true,
      tokenFile: TOKEN_PATH,
    });
    const vip = (await host.keepalivedRecords()).pop()?.vrrpInstances?.nico_vip;
    expect(vip).to.include({ state: "MASTER", priority: 150 });
    const env = (await host.readFile("/var/lib/nico/node.env")).toString();
    expect(env).to.include("NICO_NODE_NAME='cp-01'\n");
    expect(env).to.include("NICO_NODE_IP='192.168.1.101'\n");
    expect(env).to.include("NICO_GATEWAY='192.168.1.1'\n");
    expect(await host.fileMode("/var/lib/nico/node.env")).to.equal(0o644);
  });

  it("minimal stops k3s and keepalived and removes the k3s state and the token, keeping the node identity", async () => {
    await host.writeFile("/var/lib/rancher/k3s/server/db/state.db", "etcd data");
    await host.writeFile("/var/lib/kubelet/pods/p1/x", "pod");
    const res = await rebuild("minimal");
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stderr).to.include("stopping the following units: k3s.service");
    for (const gone of ["/etc/rancher", "/var/lib/rancher/k3s", "/var/lib/kubelet", TOKEN_PATH]) {
      expect(await host.exists(gone), gone).to.equal(false);
    }
    expect(await host.exists("/var/lib/nico/node.env")).to.equal(true);
    expect((await host.k3sRecords()).pop()).to.include({ event: "stop", attr: "minimal" });
    expect((await host.keepalivedRecords()).pop()).to.include({ event: "stop", attr: "minimal" });
    const rec = (await host.rebuildRecords()).pop();
    expect(rec?.activation?.scripts).to.deep.equal([{ name: "nico-cleanup", exitCode: 0 }]);
    // idempotent: applying minimal again changes nothing and succeeds
    expect((await rebuild("minimal")).code).to.equal(0);
  });
});

// keep the literal helper honest: what the tests write is what Nix reads back
describe("cluster.nix literals of the flake tests", () => {
  it("round-trip through Nix", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nico-flake-literal-"));
    try {
      const file = join(dir, "c.nix");
      await writeFile(file, nixLiteral({ ...HA, name: "a${b}" }));
      const res = await nixOfflineChecked(["eval", "--json", "--file", file]);
      expect(JSON.parse(res)).to.deep.equal({ ...HA, name: "a${b}" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

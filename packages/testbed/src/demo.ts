// `testbed demo-lab`: a smoke demo of the lab alone. Starts it, shows how to reach every part, and proves each part
// works the way the operators use it (kubectl, SSH with pinned host keys, a git push, nix flake show, nixos-rebuild
// on a host). The whole stack with NIO and NICO is `make demo` (e2e/src/demo.ts).
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { printLab } from "./cli-print.js";
import { GitFixture } from "./git-fixture.js";
import { nixFlakeShow } from "./nix.js";
import { startTestbed, type Testbed } from "./testbed.js";
import { runChecked } from "./util/process.js";

export interface DemoOptions {
  /** Keep the lab running in this directory (KEEP=1) instead of a temp dir that is removed. */
  keepDir?: string;
  hosts: number;
}

const step = (title: string): void => console.log(`\n== ${title}`);

export async function runDemo(opts: DemoOptions): Promise<number> {
  const t0 = Date.now();
  const tb = await startTestbed({ hosts: opts.hosts, dir: opts.keepDir, detached: opts.keepDir !== undefined });
  const timings: [string, number][] = [["testbed up", Date.now() - t0]];
  printLab(tb, timings[0]?.[1] ?? 0);
  const work = await mkdtemp(join(tmpdir(), "demo-"));
  try {
    await timed(timings, "control plane", () => showControlPlane(tb));
    await timed(timings, "hosts over SSH", () => showHosts(tb, work));
    const flakeDir = await timed(timings, "git push + nix flake show", () => showGitAndNix(tb, work));
    await timed(timings, "nixos-rebuild switch on a host", () => showApply(tb, work, flakeDir));
  } finally {
    await rm(work, { recursive: true, force: true });
    if (!opts.keepDir) await tb.stop();
  }
  step("summary");
  for (const [name, ms] of timings) console.log(`  ${name.padEnd(32)} ${(ms / 1000).toFixed(1)} s`);
  console.log(
    opts.keepDir
      ? `\nThe lab keeps running (KEEP=1): source ${join(tb.dir, "env")}; stop it with \`make testbed-down\`.`
      : "\nEverything the demo started has been stopped.",
  );
  return 0;
}

async function timed<T>(timings: [string, number][], name: string, fn: () => Promise<T>): Promise<T> {
  const t = Date.now();
  const result = await fn();
  timings.push([name, Date.now() - t]);
  return result;
}

async function showControlPlane(tb: Testbed): Promise<void> {
  step("control plane: kubectl against the real kube-apiserver");
  const kubectl = (args: string[]): Promise<string> =>
    runChecked(tb.binaries.kubectl, ["--kubeconfig", tb.controlPlane.kubeconfigPath, ...args]);
  console.log((await kubectl(["version"])).trim());
  console.log((await kubectl(["get", "namespaces"])).trim());
}

function sshArgs(tb: Testbed, knownHosts: string, port: number): string[] {
  return [
    "-i",
    tb.operatorKey.privateKeyPath,
    "-p",
    String(port),
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${knownHosts}`,
  ];
}

async function knownHostsFile(tb: Testbed, work: string): Promise<string> {
  const file = join(work, "known_hosts");
  const lines = await Promise.all(tb.fleet.hosts.map((h) => h.knownHostsLine()));
  await writeFile(file, lines.join("\n") + "\n");
  return file;
}

async function showHosts(tb: Testbed, work: string): Promise<void> {
  step("hosts: OpenSSH with each host's key pinned; each has its own root filesystem");
  const known = await knownHostsFile(tb, work);
  for (const h of tb.fleet.hosts) {
    const out = await runChecked("ssh", [
      ...sshArgs(tb, known, h.port),
      `root@${h.address}`,
      "echo $(hostname) $(readlink /run/current-system || echo no-system-yet)",
    ]);
    console.log(`  ${h.address}:${h.port}  ${out.trim()}`);
  }
}

const demoFlake = (names: string[]): string => `{
  description = "testbed demo fleet";
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";
  outputs = { nixpkgs, ... }: {
    nixosConfigurations = nixpkgs.lib.genAttrs [ ${names.map((n) => JSON.stringify(n)).join(" ")} ] (name:
      nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        modules = [ { networking.hostName = name; services.openssh.enable = true; } ];
      });
  };
}
`;

async function showGitAndNix(tb: Testbed, work: string): Promise<string> {
  step("git: push a flake to the smart-HTTP git server; nix: show it offline with the stub nixpkgs");
  const fx = await GitFixture.create({ server: tb.git, repo: "demo-fleet", workDir: join(work, "demo-fleet") });
  const commit = await fx.commitAndPush({ "flake.nix": demoFlake(tb.fleet.hosts.map((h) => h.name)) }, "demo fleet");
  console.log(`  pushed ${commit} to ${tb.git.repoUrl("demo-fleet")}`);
  console.log((await runChecked("git", ["ls-remote", tb.git.repoUrl("demo-fleet")])).trim().replace(/^/gm, "  "));
  const show = await nixFlakeShow(fx.workDir);
  console.log(`  nix flake show: nixosConfigurations = ${Object.keys(show.nixosConfigurations ?? {}).join(", ")}`);
  return fx.workDir;
}

async function showApply(tb: Testbed, work: string, flakeDir: string): Promise<void> {
  const host = tb.fleet.hosts[0];
  if (!host) return;
  step(`apply: stream the flake to ${host.name} and run nixos-rebuild switch there`);
  const known = await knownHostsFile(tb, work);
  const dest = "/var/lib/nio/src/demo";
  const tar = spawn("tar", ["-C", flakeDir, "--exclude=.git", "-cf", "-", "."], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const ssh = spawn(
    "ssh",
    [...sshArgs(tb, known, host.port), `root@${host.address}`, `mkdir -p ${dest} && tar -C ${dest} -xf -`],
    { stdio: [tar.stdout, "inherit", "inherit"] },
  );
  const code = await new Promise<number | null>((r) => ssh.once("exit", r));
  if (code !== 0) throw new Error(`copying the flake to ${host.name} failed (${code})`);
  const out = await runChecked("ssh", [
    ...sshArgs(tb, known, host.port),
    `root@${host.address}`,
    `nixos-rebuild switch --flake path:${dest}#${host.name} 2>&1 | tail -3; readlink /run/current-system`,
  ]);
  console.log(out.trim().replace(/^/gm, "  "));
  const records = await host.rebuildRecords();
  console.log(
    `  ${host.name} recorded ${records.length} nixos-rebuild call(s); current system ${await host.currentSystem()}`,
  );
}

import { expect } from "chai";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestbed, type Testbed } from "../src/testbed.js";
import { isAlive, run, runChecked } from "../src/util/process.js";
import { testbedPackageDir } from "../src/util/paths.js";

async function processesUsing(dir: string): Promise<number[]> {
  const out = await run("pgrep", ["-f", dir]);
  return out.stdout
    .split("\n")
    .filter(Boolean)
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

describe("testbed (all parts together)", function () {
  this.timeout(120_000);

  describe("in-process", () => {
    let tb: Testbed;
    before(async () => {
      const t0 = Date.now();
      tb = await startTestbed({ hosts: 10 });
      console.log(`      (control plane + 10 hosts + git up in ${Date.now() - t0} ms)`);
    });
    after(async () => tb?.stop());

    it("describes every part in env(): kubeconfig, git URL, SSH key, each host's address, port and root", async () => {
      const env = tb.env();
      expect(env.KUBECONFIG).to.equal(tb.controlPlane.kubeconfigPath);
      expect(env.TESTBED_GIT_URL).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(env.TESTBED_HOSTS?.split(" ")).to.have.length(10);
      expect(env.TESTBED_HOST_HOST_10_ADDRESS).to.match(/^127\.0\.0\.\d+$/);
      expect(env.TESTBED_HOST_HOST_10_ROOT).to.equal(tb.fleet.host("host-10").rootDir);
      expect((await stat(tb.operatorKey.privateKeyPath)).mode & 0o077).to.equal(0);
    });

    it("reaches a host with the operator key and kubectl reaches the API server", async () => {
      const h = tb.fleet.host("host-07");
      const known = join(tb.dir, "known_hosts");
      await (await import("node:fs/promises")).writeFile(known, (await h.knownHostsLine()) + "\n");
      const out = await runChecked("ssh", [
        "-i",
        tb.operatorKey.privateKeyPath,
        "-p",
        String(h.port),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        `UserKnownHostsFile=${known}`,
        `root@${h.address}`,
        "hostname",
      ]);
      expect(out.trim()).to.equal("host-07");
      const ns = await runChecked(tb.binaries.kubectl, [
        "--kubeconfig",
        tb.controlPlane.kubeconfigPath,
        "get",
        "ns",
        "default",
        "-o",
        "name",
      ]);
      expect(ns.trim()).to.equal("namespace/default");
    });

    it("stop() ends every process it started and removes its directory", async () => {
      const dir = tb.dir;
      const pids = [...tb.controlPlane.pids(), ...(await processesUsing(dir))];
      expect(pids.length).to.be.greaterThan(10);
      await tb.stop();
      for (const pid of pids) expect(isAlive(pid), `pid ${pid} survived stop()`).to.equal(false);
      expect(existsSync(dir)).to.equal(false);
    });
  });

  describe("CLI up/down (detached lab)", () => {
    const cli = join(testbedPackageDir, "dist/src/cli.js");
    let dir: string;
    before(async function () {
      if (!existsSync(cli)) this.skip();
      dir = join(await mkdtemp(join(tmpdir(), "testbed-cli-")), "lab");
    });
    after(async () => {
      if (dir) {
        await run(process.execPath, [cli, "down", "--dir", dir]);
        await rm(join(dir, ".."), { recursive: true, force: true });
      }
    });

    it("up leaves a running lab with kubeconfig, env and bin/kubectl; down stops and removes it", async () => {
      const up = await run(process.execPath, [cli, "up", "--dir", dir, "--hosts", "2"]);
      expect(up.code, up.stderr).to.equal(0);
      expect(up.stdout).to.contain("API server");
      const env = await readFile(join(dir, "env"), "utf8");
      expect(env).to.match(/^export KUBECONFIG='.+'$/m);
      const ns = await runChecked(join(dir, "bin", "kubectl"), [
        "--kubeconfig",
        join(dir, "control-plane", "kubeconfig"),
        "get",
        "ns",
        "-o",
        "name",
      ]);
      expect(ns).to.contain("namespace/default");
      const running = await processesUsing(dir);
      expect(running.length).to.be.greaterThan(3);
      const again = await run(process.execPath, [cli, "up", "--dir", dir]);
      expect(again.code, "a second up on a running lab is refused").to.equal(1);

      const down = await run(process.execPath, [cli, "down", "--dir", dir]);
      expect(down.code, down.stderr).to.equal(0);
      for (const pid of running) expect(isAlive(pid), `pid ${pid} survived down`).to.equal(false);
      expect(existsSync(dir)).to.equal(false);
    });
  });
});

/**
 * The SSH layer against real OpenSSH servers (testbed hosts): quoting, host keys, sudo, timeouts and kills, lost
 * connections, uploads, atomic root-owned files. No mocks.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readdir, symlink, writeFile, chmod } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { Readable } from "node:stream";

import { expect } from "chai";

import { freePort, waitFor, type Host } from "@nio/testbed";

import {
  createSshConnector,
  SshAuthError,
  SshCommandTimeoutError,
  SshConnectionLostError,
  SshFileNotFoundError,
  SshHostKeyMismatchError,
  SshInvalidArgumentError,
  SshInvalidKeyError,
  SshRemoteCommandError,
  SshSudoError,
  SshUnreachableError,
  sameHostKey,
  withSshSession,
  type SshConnectionResult,
  type SshSession,
} from "../src/ssh/index.js";
import { rejection } from "./support/expect.js";
import { acceptedLogins, generateKey, NASTY_ARGS, NASTY_MARKERS, startHostLab, type HostLab } from "./support/hosts.js";

const ALL_BYTES = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256));

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

async function processesNamed(host: Host, comm: string): Promise<number> {
  return (await host.processes()).filter((p) => p.comm === comm).length;
}

describe("ssh: real sshd hosts", function () {
  this.timeout(120_000);

  let lab: HostLab;
  let hostA: Host;
  let hostB: Host;
  const results: SshConnectionResult[] = [];
  const connector = createSshConnector({ onConnection: (r) => results.push(r) });
  const open: SshSession[] = [];

  async function connect(host: Host, user: "root" | "deploy" = "root"): Promise<SshSession> {
    const session = await connector.connect(lab.target(host, user), { expected: await host.hostPublicKey() });
    open.push(session);
    return session;
  }

  before(async () => {
    lab = await startHostLab(2);
    [hostA, hostB] = lab.fleet.hosts as [Host, Host];
  });

  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });

  after(async () => {
    await lab?.destroy();
  });

  describe("commands", () => {
    it("never loses the exit status of fast commands, on many concurrent sessions", async () => {
      // Regression: an exit status arriving in the same read as the channel confirmation was missed, and the
      // command was reported as ConnectionLost (outcome unknown) although it had finished.
      const failures: string[] = [];
      for (let round = 0; round < 4; round++) {
        await Promise.all(
          [hostA, hostB, hostA, hostB, hostA, hostB].map(async (h) => {
            const s = await connect(h);
            for (const argv of [["true"], ["readlink", "/run/current-system"], ["sh", "-c", "exit 3"]]) {
              try {
                const res = await s.exec(argv, { timeoutMs: 10_000 });
                if (argv[0] === "sh" && res.code !== 3) failures.push(`exit 3 gave ${res.code}`);
              } catch (err) {
                failures.push((err as Error).message);
              }
            }
            s.close();
          }),
        );
      }
      expect(failures).to.deep.equal([]);
    });

    for (const [user, sudo] of [
      ["root", false],
      ["deploy", true],
    ] as const) {
      it(`passes shell metacharacters as literal single arguments (${user}${sudo ? " with sudo" : ""})`, async () => {
        const s = await connect(hostA, user);
        const res = await s.exec(["printf", "%s\\0", ...NASTY_ARGS], { sudo });
        expect(res.code, res.stderr).to.equal(0);
        expect(res.stdout.split("\0").slice(0, -1)).to.deep.equal(NASTY_ARGS);
        // A metacharacter-laden program name is looked up literally, and not found.
        const prog = await s.exec(["$(touch /tmp/pwned-prog)", "; touch /tmp/pwned-prog"], { sudo });
        expect(prog.code).to.equal(127);
        for (const marker of NASTY_MARKERS) expect(await hostA.exists(marker), marker).to.equal(false);
        expect(await hostA.exists("/etc/passwd")).to.equal(true);
      });
    }

    it("refuses NUL in an argument before sending anything", async () => {
      const s = await connect(hostA);
      expect(await rejection(s.exec(["echo", "a\0b"]))).to.be.instanceOf(SshInvalidArgumentError);
      expect(await rejection(s.exec([]))).to.be.instanceOf(SshInvalidArgumentError);
    });

    it("runs as root through sudo -n", async () => {
      const s = await connect(hostA, "deploy");
      expect((await s.exec(["id", "-u"])).stdout).to.equal("1000\n");
      expect((await s.exec(["id", "-u"], { sudo: true })).stdout).to.equal("0\n");
    });

    it("reports exit codes and signals as results", async () => {
      const s = await connect(hostA);
      const failed = await s.exec(["sh", "-c", "echo oops >&2; exit 3"]);
      expect(failed).to.include({ code: 3, stderr: "oops\n", stdout: "" });
      const killed = await s.exec(["sh", "-c", "kill -TERM $$"]);
      expect(killed.code).to.equal(null);
      expect(killed.signal).to.equal("SIGTERM");
    });

    it("feeds stdin from a Buffer (binary) or a stream", async () => {
      const s = await connect(hostA);
      const fromBuffer = await s.exec(["sha256sum"], { stdin: ALL_BYTES });
      expect(fromBuffer.stdout.split(" ")[0]).to.equal(sha256(ALL_BYTES));
      const fromStream = await s.exec(["wc", "-c"], { stdin: Readable.from([ALL_BYTES, ALL_BYTES]) });
      expect(fromStream.stdout.trim()).to.equal(String(2 * ALL_BYTES.length));
      const noStdin = await s.exec(["cat"], { timeoutMs: 5000 });
      expect(noStdin).to.include({ code: 0, stdout: "" });
    });

    it("streams output while the command runs and keeps its tail", async () => {
      const s = await connect(hostA);
      const seen: { chunk: string; stream: string; at: number }[] = [];
      const res = await s.exec(["sh", "-c", "echo first; sleep 1.5; echo second >&2"], {
        onOutput: (chunk, stream) => seen.push({ chunk, stream, at: Date.now() }),
        tailBytes: 10,
      });
      const done = Date.now();
      expect(seen.map((x) => [x.stream, x.chunk])).to.deep.equal([
        ["stdout", "first\n"],
        ["stderr", "second\n"],
      ]);
      expect(done - (seen[0]?.at ?? done)).to.be.greaterThan(1000);
      expect(res.tail).to.equal("st\nsecond\n");
    });

    it("caps captured output", async () => {
      const s = await connect(hostA);
      const res = await s.exec(["head", "-c", "3000000", "/dev/zero"], { maxOutputBytes: 1000 });
      expect(res.code).to.equal(0);
      expect(res.stdout.length).to.equal(1000);
      expect(res.truncated).to.equal(true);
    });

    it("runs many commands over one connection", async () => {
      const before = await acceptedLogins(hostA);
      const resultsBefore = results.length;
      const seen = await withSshSession(
        connector,
        lab.target(hostA),
        { expected: await hostA.hostPublicKey() },
        async (s) => {
          const out: string[] = [];
          for (let i = 0; i < 5; i++) out.push((await s.exec(["echo", String(i)])).stdout);
          // Concurrent commands share it as well (one channel each).
          const parallel = await Promise.all([1, 2, 3].map((i) => s.exec(["sh", "-c", `sleep 0.2; echo p${i}`])));
          return [...out, ...parallel.map((r) => r.stdout)];
        },
      );
      expect(seen.join("")).to.equal("0\n1\n2\n3\n4\np1\np2\np3\n");
      expect(await acceptedLogins(hostA)).to.equal(before + 1);
      expect(results.slice(resultsBefore)).to.deep.equal(["success"]);
    });

    it("kills a command (and what it started) on timeout, as root, as a user and through sudo", async () => {
      for (const [user, sudo] of [
        ["root", false],
        ["deploy", false],
        ["deploy", true],
      ] as const) {
        const s = await connect(hostA, user);
        const t0 = Date.now();
        const err = await rejection(
          s.exec(["sh", "-c", "echo started; sleep 30; echo never"], { sudo, timeoutMs: 500 }),
        );
        expect(err, user).to.be.instanceOf(SshCommandTimeoutError);
        expect((err as SshCommandTimeoutError).reason).to.equal("Timeout");
        expect((err as SshCommandTimeoutError).tail).to.equal("started\n");
        expect(Date.now() - t0).to.be.lessThan(5000);
        expect(await processesNamed(hostA, "sleep"), `sleep left behind for ${user}`).to.equal(0);
        expect((await s.exec(["echo", "still usable"])).stdout).to.equal("still usable\n");
      }
    });

    it("escalates to SIGKILL when the command ignores SIGTERM", async () => {
      const s = await connect(hostA);
      const t0 = Date.now();
      const err = await rejection(s.exec(["sh", "-c", "trap '' TERM; sleep 30"], { timeoutMs: 300 }));
      expect(err).to.be.instanceOf(SshCommandTimeoutError);
      expect(Date.now() - t0).to.be.within(2000, 6000);
      expect(await processesNamed(hostA, "sleep")).to.equal(0);
      expect(await processesNamed(hostA, "sh")).to.equal(0);
    });

    it("kills a command when its signal aborts", async () => {
      const s = await connect(hostA);
      const ac = new AbortController();
      const aborted = rejection(s.exec(["sleep", "30"], { signal: ac.signal }));
      await waitFor("sleep to start", async () => ((await processesNamed(hostA, "sleep")) > 0 ? true : undefined), {
        timeoutMs: 5000,
        intervalMs: 20,
      });
      ac.abort(new Error("shutting down"));
      const err = await aborted;
      expect(err.name).to.equal("AbortError");
      expect(err.cause).to.be.instanceOf(Error);
      expect(await processesNamed(hostA, "sleep")).to.equal(0);
      const pre = new AbortController();
      pre.abort();
      expect((await rejection(s.exec(["touch", "/tmp/aborted-before"], { signal: pre.signal }))).name).to.equal(
        "AbortError",
      );
      expect(await hostA.exists("/tmp/aborted-before")).to.equal(false);
    });

    it("reports sudo refusing without a password as SshSudoError", async () => {
      const original = await hostA.readFile("/etc/sudoers");
      const strict = original
        .toString("utf8")
        .replace("deploy ALL=(ALL:ALL) NOPASSWD: ALL", "deploy ALL=(ALL:ALL) ALL");
      expect(strict).to.not.equal(original.toString("utf8"));
      await hostA.writeFile("/etc/sudoers", strict, { mode: 0o440, uid: 0, gid: 0 });
      try {
        const s = await connect(hostA, "deploy");
        const err = await rejection(s.exec(["id", "-u"], { sudo: true }));
        expect(err).to.be.instanceOf(SshSudoError);
        expect((err as SshSudoError).reason).to.equal("SudoFailed");
        expect(err.message).to.match(/a password is required/);
        const write = await rejection(
          s.writeFileAtomic("/etc/nio-sudo-test", Buffer.from("x"), { mode: 0o600, sudo: true }),
        );
        expect(write).to.be.instanceOf(SshSudoError);
        expect(await hostA.exists("/etc/nio-sudo-test")).to.equal(false);
      } finally {
        await hostA.writeFile("/etc/sudoers", original, { mode: 0o440, uid: 0, gid: 0 });
      }
    });
  });

  describe("host keys", () => {
    it("returns the presented key on first contact", async () => {
      const s = await connector.connect(lab.target(hostA), {});
      open.push(s);
      expect(s.hostKey).to.equal(await hostA.hostPublicKey());
    });

    it("refuses a changed host key before authenticating or running anything", async () => {
      const old = await hostB.hostPublicKey();
      const loginsBefore = await acceptedLogins(hostB);
      const rebuildsBefore = (await hostB.rebuildRecords()).length;
      const presented = await hostB.changeHostKey();
      const err = await rejection(connector.connect(lab.target(hostB), { expected: `${old} root@old-comment` }));
      expect(err, err.message).to.be.instanceOf(SshHostKeyMismatchError);
      const mismatch = err as SshHostKeyMismatchError;
      expect(mismatch.reason).to.equal("HostKeyMismatch");
      expect(mismatch.expected).to.equal(old);
      expect(sameHostKey(mismatch.presented, presented)).to.equal(true);
      expect(results.at(-1)).to.equal("host_key_mismatch");
      expect(await acceptedLogins(hostB)).to.equal(loginsBefore);
      expect((await hostB.rebuildRecords()).length).to.equal(rebuildsBefore);
      // The new key, once accepted, works.
      const s = await connect(hostB);
      expect(s.hostKey).to.equal(presented);
    });

    it("refuses a pinned key of another type (the server has no such key)", async () => {
      const rsa = await generateKey(lab.dir, "pinned-rsa", "rsa");
      const err = await rejection(connector.connect(lab.target(hostA), { expected: rsa.publicKey }));
      expect(err).to.be.instanceOf(SshHostKeyMismatchError);
      expect((err as SshHostKeyMismatchError).presented).to.equal(await hostA.hostPublicKey());
    });

    it("refuses a malformed expected key without connecting", async () => {
      const err = await rejection(connector.connect(lab.target(hostA), { expected: "ssh-ed25519 not-base64!" }));
      expect(err).to.be.instanceOf(SshInvalidArgumentError);
    });
  });

  describe("connection failures", () => {
    it("fails fast with SshUnreachableError when nothing listens", async () => {
      const port = await freePort("127.0.0.1");
      const t0 = Date.now();
      const err = await rejection(
        connector.connect({ ...lab.target(hostA), host: "127.0.0.1", port }, {}, { timeoutMs: 10_000 }),
      );
      expect(err).to.be.instanceOf(SshUnreachableError);
      expect((err as SshUnreachableError).code).to.equal("ECONNREFUSED");
      expect((err as SshUnreachableError).reason).to.equal("Unreachable");
      expect(Date.now() - t0).to.be.lessThan(2000);
      expect(results.at(-1)).to.equal("unreachable");
    });

    it("gives up within the connect budget on a server that never speaks", async () => {
      const sockets: Socket[] = [];
      const server: Server = createServer((sock) => sockets.push(sock));
      await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
      const { port } = server.address() as { port: number };
      try {
        const t0 = Date.now();
        const err = await rejection(
          connector.connect({ ...lab.target(hostA), host: "127.0.0.1", port }, {}, { timeoutMs: 700 }),
        );
        const took = Date.now() - t0;
        expect(err).to.be.instanceOf(SshUnreachableError);
        expect((err as SshUnreachableError).code).to.equal("ETIMEDOUT");
        expect(took).to.be.within(600, 2500);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise((res) => server.close(res));
      }
    });

    it("reports a refused key as SshAuthError", async () => {
      const stranger = await generateKey(lab.dir, "stranger");
      const err = await rejection(
        connector.connect(
          { ...lab.target(hostA), privateKey: stranger.privateKey },
          { expected: await hostA.hostPublicKey() },
        ),
      );
      expect(err).to.be.instanceOf(SshAuthError);
      expect((err as SshAuthError).reason).to.equal("SshAuthenticationFailed");
      expect(results.at(-1)).to.equal("auth_failed");
    });

    it("refuses an unusable private key without connecting", async () => {
      const before = results.length;
      for (const privateKey of [Buffer.from("not a key"), Buffer.from(lab.key.publicKey), Buffer.alloc(0)]) {
        const err = await rejection(connector.connect({ ...lab.target(hostA), privateKey }, {}));
        expect(err).to.be.instanceOf(SshInvalidKeyError);
        expect(err.message).to.not.include("AAAA");
      }
      expect(results.length).to.equal(before);
    });

    it("reports a connection dropped during a command as SshConnectionLostError (outcome unknown)", async () => {
      const s = await connect(hostB);
      const lost = rejection(s.exec(["sh", "-c", "echo working; sleep 20"]));
      await waitFor("sleep to start", async () => ((await processesNamed(hostB, "sleep")) > 0 ? true : undefined), {
        timeoutMs: 5000,
        intervalMs: 20,
      });
      try {
        await hostB.stop();
        const err = await lost;
        expect(err).to.be.instanceOf(SshConnectionLostError);
        expect((err as SshConnectionLostError).reason).to.equal("ConnectionLost");
        expect((err as SshConnectionLostError).tail).to.equal("working\n");
        await waitFor("the session to notice", async () => (s.closed ? true : undefined), { timeoutMs: 5000 });
        expect(await rejection(s.exec(["true"]))).to.be.instanceOf(SshConnectionLostError);
        // The host is down now: refused at once.
        const t0 = Date.now();
        const down = await rejection(connect(hostB));
        expect(down).to.be.instanceOf(SshUnreachableError);
        expect(Date.now() - t0).to.be.lessThan(2000);
      } finally {
        await hostB.start();
      }
      expect((await (await connect(hostB)).exec(["echo", "back"])).stdout).to.equal("back\n");
    });
  });

  describe("files", () => {
    async function makeSourceTree(name: string): Promise<string> {
      const src = join(lab.dir, name);
      await mkdir(join(src, "sub", "dir"), { recursive: true });
      await writeFile(join(src, "flake.nix"), "{ outputs = _: { }; }\n");
      await writeFile(join(src, "sub", "dir", "data.bin"), ALL_BYTES);
      await writeFile(join(src, "it's $(touch x).txt"), "odd name\n");
      await writeFile(join(src, "run.sh"), "#!/bin/sh\n");
      await chmod(join(src, "run.sh"), 0o755);
      await symlink("flake.nix", join(src, "link.nix"));
      return src;
    }

    function tarOf(dir: string): NodeJS.ReadableStream {
      const child = spawn("tar", ["-C", dir, "-cf", "-", "."], { stdio: ["ignore", "pipe", "inherit"] });
      return child.stdout;
    }

    async function leftovers(host: Host, dir: string): Promise<string[]> {
      return (await readdir(await host.realPath(dir))).filter((n) => n.includes(".tmp-") || n.startsWith(".nio-tmp"));
    }

    it("uploads a tar stream atomically and skips content already there", async () => {
      const src = await makeSourceTree("upload-src");
      const s = await connect(hostA);
      const dir = "/var/lib/nio/src/0123abcd";
      expect(await s.uploadTar(tarOf(src), dir)).to.deep.equal({ alreadyPresent: false });
      expect((await hostA.readFile(`${dir}/flake.nix`)).toString()).to.equal("{ outputs = _: { }; }\n");
      expect((await hostA.readFile(`${dir}/sub/dir/data.bin`)).equals(ALL_BYTES)).to.equal(true);
      expect((await hostA.readFile(`${dir}/it's $(touch x).txt`)).toString()).to.equal("odd name\n");
      expect(await hostA.exists("/x")).to.equal(false);
      expect(await hostA.exists(`${dir}/x`)).to.equal(false);
      expect((await hostA.fileMode(`${dir}/run.sh`)) & 0o100).to.equal(0o100);
      expect(await hostA.fileMode(dir)).to.equal(0o700);
      expect(await hostA.fileMode("/var/lib/nio")).to.equal(0o700);
      expect(await leftovers(hostA, "/var/lib/nio/src")).to.deep.equal([]);

      let called = false;
      const again = await s.uploadTar(() => {
        called = true;
        return tarOf(src);
      }, dir);
      expect(again).to.deep.equal({ alreadyPresent: true });
      expect(called).to.equal(false);
    });

    it("uploads as a sudo user into root-owned files", async () => {
      const src = await makeSourceTree("upload-src-sudo");
      const s = await connect(hostA, "deploy");
      const dir = "/var/lib/nio/src/sudo-0001";
      expect(await s.uploadTar(() => tarOf(src), dir, { sudo: true })).to.deep.equal({ alreadyPresent: false });
      const st = await hostA.fileStat(`${dir}/sub/dir/data.bin`);
      expect([st.uid, st.gid]).to.deep.equal([0, 0]);
    });

    it("leaves nothing behind when the archive is broken", async () => {
      const s = await connect(hostA);
      const dir = "/var/lib/nio/src/broken-01";
      const err = await rejection(
        s.uploadTar(Readable.from([Buffer.from("this is not a tar archive\n".repeat(100))]), dir),
      );
      expect(err).to.be.instanceOf(SshRemoteCommandError);
      expect(err.message).to.match(/does not look like a tar archive/);
      expect(await hostA.exists(dir)).to.equal(false);
      expect(await leftovers(hostA, "/var/lib/nio/src")).to.deep.equal([]);
    });

    for (const [user, sudo] of [
      ["root", false],
      ["deploy", true],
    ] as const) {
      it(`writes a root-owned file atomically with its mode, binary-safe (${user})`, async () => {
        const s = await connect(hostA, user);
        const path = `/var/lib/nico-${user}/secrets/join-token`;
        await s.writeFileAtomic(path, ALL_BYTES, { mode: 0o400, sudo });
        const st = await hostA.fileStat(path);
        expect(st).to.include({ mode: 0o400, uid: 0, gid: 0, size: ALL_BYTES.length, type: "file" });
        expect((await hostA.readFile(path)).equals(ALL_BYTES)).to.equal(true);
        expect(await hostA.fileMode(`/var/lib/nico-${user}/secrets`)).to.equal(0o755);
        // Replacing it keeps no temporary file behind.
        await s.writeFileAtomic(path, Buffer.from("rotated"), { mode: 0o600, sudo });
        expect((await hostA.readFile(path)).toString()).to.equal("rotated");
        expect(await hostA.fileMode(path)).to.equal(0o600);
        expect(await leftovers(hostA, `/var/lib/nico-${user}/secrets`)).to.deep.equal([]);
        // And it reads back, root-only file included.
        expect((await s.readFile(path, { sudo })).toString()).to.equal("rotated");
      });
    }

    it("writes to paths with shell metacharacters literally", async () => {
      const s = await connect(hostA);
      const path = "/etc/nio test/it's $(touch /tmp/pwned-path) `x`.key";
      await s.writeFileAtomic(path, Buffer.from("k"), { mode: 0o600 });
      expect((await hostA.readFile(path)).toString()).to.equal("k");
      expect(await hostA.exists("/tmp/pwned-path")).to.equal(false);
    });

    it("refuses bad modes and paths, and writing over a directory", async () => {
      const s = await connect(hostA);
      for (const mode of [0o4755, -1, 1.5, 0o1000]) {
        expect(await rejection(s.writeFileAtomic("/etc/x", Buffer.from(""), { mode }))).to.be.instanceOf(
          SshInvalidArgumentError,
        );
      }
      for (const path of ["relative", "/etc/../x", "/"]) {
        expect(await rejection(s.writeFileAtomic(path, Buffer.from(""), { mode: 0o600 }))).to.be.instanceOf(
          SshInvalidArgumentError,
        );
      }
      const err = await rejection(s.writeFileAtomic("/etc/ssh", Buffer.from("x"), { mode: 0o600 }));
      expect(err).to.be.instanceOf(SshRemoteCommandError);
      expect(await leftovers(hostA, "/etc")).to.deep.equal([]);
    });

    it("reads files with typed failures", async () => {
      const s = await connect(hostA, "deploy");
      await hostA.writeFile("/etc/rancher/k3s/k3s.yaml", "apiVersion: v1\n", { mode: 0o600, uid: 0, gid: 0 });
      expect((await s.readFile("/etc/rancher/k3s/k3s.yaml", { sudo: true })).toString()).to.equal("apiVersion: v1\n");
      expect(await rejection(s.readFile("/etc/rancher/k3s/k3s.yaml"))).to.be.instanceOf(SshRemoteCommandError);
      expect(await rejection(s.readFile("/etc/rancher/nope", { sudo: true }))).to.be.instanceOf(SshFileNotFoundError);
      const big = await rejection(s.readFile("/etc/rancher/k3s/k3s.yaml", { sudo: true, maxBytes: 5 }));
      expect(big).to.be.instanceOf(SshRemoteCommandError);
      expect(big.message).to.match(/larger than 5 bytes/);
    });
  });
});

/**
 * The apply's remote side (apply/remote-run.ts) against real sshd hosts: one SSH command uploads a missing source,
 * runs the command detached, follows its log and reports status, log tail and /run/current-system; a dropped
 * connection leaves the run going and its outcome readable; old sources and finished runs are pruned. Also the
 * shared workspaces of concurrent applies (apply/workspaces.ts).
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";

import { expect } from "chai";
import pino from "pino";
import { Registry } from "prom-client";

import { GitFixture, sleep, startGitServer, waitFor, type GitServer, type Host } from "@nio/testbed";

import { executeApply } from "../src/apply/executor.js";
import { ApplySlots, Semaphore } from "../src/apply/limits.js";
import { awaitApply, startApply, stopApply, type ApplyRun } from "../src/apply/remote-run.js";
import { WorkspacePool, workspaceKey } from "../src/apply/workspaces.js";
import { loadNioConfig } from "../src/config.js";
import { createGitSource } from "../src/git/index.js";
import { createNioMetrics } from "../src/metrics.js";
import {
  createSshConnector,
  SshCommandTimeoutError,
  SshConnectionLostError,
  SshRemoteCommandError,
  type SshSession,
} from "../src/ssh/index.js";
import { tarOf, type Workspace } from "../src/workspace/index.js";
import { configurationNix, fleetFlake } from "./support/env.js";
import { rejection } from "./support/expect.js";
import { startHostLab, type HostLab } from "./support/hosts.js";

describe("apply: the remote run on real sshd hosts", function () {
  this.timeout(120_000);

  let lab: HostLab;
  let host: Host;
  const connector = createSshConnector();
  const open: SshSession[] = [];
  let n = 0;

  async function connect(user: "root" | "deploy" = "root"): Promise<SshSession> {
    const session = await connector.connect(lab.target(host, user), { expected: await host.hostPublicKey() });
    open.push(session);
    return session;
  }

  /** A source tree whose content (and so its name on the machine) is `tag`. */
  async function source(tag: string): Promise<{ dir: string; tars: () => number; tar: () => Readable }> {
    const dir = join(lab.dir, `src-${tag}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "flake.nix"), `{ outputs = _: { }; } # ${tag}\n`);
    let made = 0;
    return {
      dir,
      tars: () => made,
      tar: () => {
        made++;
        return tarOf(dir);
      },
    };
  }

  function run(tag: string, tar: () => Readable, argv: string[]): ApplyRun {
    const id = `t${++n}-${Date.now()}`;
    const sourceDir = `/var/lib/nio/src/${tag}`;
    return {
      runDir: `/var/lib/nio/runs/${id}`,
      sourceDir,
      sourceTmp: `${sourceDir}.tmp-${id}`,
      tar,
      keepSources: 3,
      argv,
    };
  }

  const opts = { sudo: false, timeoutMs: 60_000 };

  before(async () => {
    lab = await startHostLab(1);
    host = lab.fleet.hosts[0] as Host;
  });

  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });

  after(async () => {
    await lab?.destroy();
  });

  it("uploads a missing source once, runs the command and reports status, log and current system", async () => {
    const src = await source("aaaa0001");
    const s = await connect();
    const cmd = ["sh", "-c", 'echo "building $1"; ln -sfn /nix/store/abc-system /run/current-system', "x", "it's $(x)"];
    const first = await startApply(s, run("aaaa0001", src.tar, cmd), opts);
    expect(first).to.include({ code: 0, currentSystem: "/nix/store/abc-system", uploaded: true });
    expect(first.tail).to.equal("building it's $(x)\n");
    expect((await host.readFile("/var/lib/nio/src/aaaa0001/flake.nix")).toString()).to.contain("aaaa0001");
    expect(src.tars()).to.equal(1);

    const again = await startApply(s, run("aaaa0001", src.tar, cmd), opts);
    expect(again).to.include({ code: 0, uploaded: false });
    expect(src.tars(), "a source already on the machine is not sent again").to.equal(1);
  });

  it("reports a failing command's status; markers in its output are not believed", async () => {
    const src = await source("aaaa0002");
    const s = await connect();
    const cmd = ["sh", "-c", 'echo "nio: status 0"; echo "nio: current-system /evil" >&2; echo failed; exit 3'];
    const out = await startApply(s, run("aaaa0002", src.tar, cmd), opts);
    expect(out.code).to.equal(3);
    expect(out.currentSystem).to.equal("");
    expect(out.tail).to.contain("failed");
  });

  it("a broken archive: a setup failure, nothing started, nothing left behind", async () => {
    const s = await connect();
    const marker = "/tmp/remote-run-must-not-exist";
    const broken = (): Readable => Readable.from([Buffer.from("not a tar archive\n".repeat(100))]);
    const r = run("aaaa0003", broken, ["touch", marker]);
    const err = await rejection(startApply(s, r, opts));
    expect(err).to.be.instanceOf(SshRemoteCommandError);
    expect(err.message).to.contain("extracting the flake source");
    expect(await host.exists(marker)).to.equal(false);
    expect(await host.exists("/var/lib/nio/src/aaaa0003")).to.equal(false);
    const left = (await readdir(await host.realPath("/var/lib/nio/src"))).filter((x) => x.includes(".tmp-"));
    expect(left).to.deep.equal([]);
    expect(await host.exists(`${r.runDir}/setup-failed`)).to.equal(true);
  });

  it("keeps the newest sources and removes finished runs after a success", async () => {
    const s = await connect();
    let last: ApplyRun | undefined;
    for (const tag of ["bbbb0001", "bbbb0002", "bbbb0003", "bbbb0004", "bbbb0005"]) {
      const src = await source(tag);
      last = run(tag, src.tar, ["true"]);
      expect((await startApply(s, last, opts)).code).to.equal(0);
      await sleep(20); // distinct modification times
    }
    const sources = (await readdir(await host.realPath("/var/lib/nio/src"))).sort();
    expect(sources).to.deep.equal(["bbbb0003", "bbbb0004", "bbbb0005"]);
    const runs = await readdir(await host.realPath("/var/lib/nio/runs"));
    expect(runs).to.deep.equal([last?.runDir.split("/").pop()]);
  });

  it("awaitApply reads a finished run's outcome; a run that never started is a lost connection (nothing ran)", async () => {
    const src = await source("cccc0001");
    const s = await connect();
    const r = run("cccc0001", src.tar, ["sh", "-c", "echo done; ln -sfn /nix/store/def-system /run/current-system"]);
    await startApply(s, r, opts);
    const read = await awaitApply(await connect(), r, opts);
    expect(read).to.include({ code: 0, currentSystem: "/nix/store/def-system" });
    expect(read.tail).to.contain("done");
    const err = await rejection(awaitApply(s, run("cccc0001", src.tar, ["true"]), opts));
    expect(err).to.be.instanceOf(SshConnectionLostError);
    expect(err.message).to.contain("nothing ran");
  });

  it("a dropped connection leaves the run going; its outcome is read on a new session", async () => {
    const src = await source("cccc0002");
    const s = await connect();
    const r = run("cccc0002", src.tar, ["sh", "-c", "sleep 2; echo finished; exit 4"]);
    const started = startApply(s, r, opts);
    await waitFor("the run started", async () => ((await host.exists(`${r.runDir}/pid`)) ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    s.close();
    expect(await rejection(started)).to.be.instanceOf(SshConnectionLostError);
    const read = await awaitApply(await connect(), r, opts);
    expect(read.code).to.equal(4);
    expect(read.tail).to.contain("finished");
  });

  it("runs through sudo for a non-root user", async () => {
    const src = await source("dddd0001");
    const s = await connect("deploy");
    const out = await startApply(s, run("dddd0001", src.tar, ["sh", "-c", "id -u"]), { ...opts, sudo: true });
    expect(out).to.include({ code: 0, uploaded: true });
    expect(out.tail.trim()).to.equal("0");
  });

  it("a timeout kills the wrapper and the detached run; stopApply is harmless afterwards", async () => {
    const src = await source("dddd0002");
    const s = await connect();
    const r = run("dddd0002", src.tar, ["sleep", "37"]);
    const err = await rejection(startApply(s, r, { ...opts, timeoutMs: 1500 }));
    expect(err).to.be.instanceOf(SshCommandTimeoutError);
    await stopApply(s, r.runDir, false);
    await waitFor(
      "no sleep left",
      async () => ((await host.processes()).some((p) => p.comm === "sleep") ? undefined : true),
      { timeoutMs: 10_000, intervalMs: 100 },
    );
  });
});

describe("apply: shared workspaces", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nio-pool-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function fakeWorkspace(name: string, counters: { made: number; tars: number; cleaned: number }): Workspace {
    counters.made++;
    return {
      dir: join(dir, name),
      contentHash: name,
      tarStream: () => {
        counters.tars++;
        return Readable.from([Buffer.from(`tar of ${name}`)]);
      },
      cleanup: async () => {
        counters.cleaned++;
      },
    };
  }

  async function read(stream: NodeJS.ReadableStream): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
    return Buffer.concat(chunks).toString();
  }

  it("concurrent holders of one key share one workspace and one tar; the last release removes it", async () => {
    const pool = new WorkspacePool();
    const c = { made: 0, tars: 0, cleaned: 0 };
    const make = async (): Promise<Workspace> => fakeWorkspace("w1", c);
    const [a, b] = await Promise.all([pool.acquire("k", make), pool.acquire("k", make)]);
    expect(c.made).to.equal(1);
    expect(a?.ws).to.equal(b?.ws);
    expect(await read(a.tar())).to.equal("tar of w1");
    expect(await read(b.tar())).to.equal("tar of w1");
    expect(c.tars).to.equal(1);
    await a.release();
    await a.release();
    expect(c.cleaned).to.equal(0);
    await b.release();
    expect(c.cleaned).to.equal(1);
    expect(pool.size).to.equal(0);
    const again = await pool.acquire("k", make);
    expect(c.made, "nothing is kept after the last release").to.equal(2);
    await again.release();
  });

  it("a failed workspace is not kept", async () => {
    const pool = new WorkspacePool();
    const err = await rejection(pool.acquire("k", () => Promise.reject(new Error("bad path"))));
    expect(err.message).to.equal("bad path");
    expect(pool.size).to.equal(0);
  });

  it("keys differ by tree, subdir and every additional file's content", () => {
    const base = { baseDir: "/b", treeDir: "/t", commit: "c", subdir: "", additionalFiles: [] };
    const k = workspaceKey(base);
    expect(workspaceKey({ ...base })).to.equal(k);
    expect(workspaceKey({ ...base, treeDir: "/t2" })).to.not.equal(k);
    expect(workspaceKey({ ...base, subdir: "x" })).to.not.equal(k);
    const f = (content: string): { path: string; content: Buffer }[] => [
      { path: "a.nix", content: Buffer.from(content) },
    ];
    expect(workspaceKey({ ...base, additionalFiles: f("1") })).to.not.equal(
      workspaceKey({ ...base, additionalFiles: f("2") }),
    );
  });
});

describe("apply: slots (NIO_MAX_CONCURRENT_APPLIES)", function () {
  this.timeout(120_000);

  it("a semaphore's tryAcquire takes only a free slot, and never one a waiter is owed", async () => {
    const sem = new Semaphore(1);
    const first = sem.tryAcquire();
    expect(first).to.be.a("function");
    expect(sem.tryAcquire()).to.equal(undefined);
    let waiterGotIt = false;
    const waiter = sem.acquire().then((release) => {
      waiterGotIt = true;
      return release;
    });
    first?.();
    expect(sem.tryAcquire()).to.equal(undefined);
    const release = await waiter;
    expect(waiterGotIt).to.equal(true);
    release();
    release(); // idempotent
    expect(sem.inUse).to.equal(0);
    expect(sem.tryAcquire()).to.be.a("function");
  });

  describe("on real sshd hosts", () => {
    let lab: HostLab;
    let hosts: readonly Host[];
    let server: GitServer;
    let commit: string;

    before(async () => {
      lab = await startHostLab(3);
      hosts = lab.fleet.hosts;
      server = await startGitServer({ rootDir: join(lab.dir, "git") });
      const repo = await GitFixture.create({ server, repo: "fleet", workDir: join(lab.dir, "fleet") });
      commit = await repo.commitAndPush(
        { "flake.nix": fleetFlake(), "configuration.nix": configurationNix("slots") },
        "v1",
      );
      await Promise.all(hosts.map(async (h) => h.setInstantApply(true)));
      await Promise.all(hosts.map(async (h) => h.setSlowApply(2)));
    });

    after(async () => {
      await server?.stop();
      await lab?.destroy();
    });

    it("one limit bounds running switches; the next machine is connected and has its source before a slot frees", async () => {
      const git = createGitSource({ cacheDir: join(lab.dir, "git-cache") });
      const config = loadNioConfig({ NIO_BASE_CONFIG_PATH: join(lab.dir, "nio"), NIO_MAX_CONCURRENT_APPLIES: "1" });
      const deps = {
        ssh: createSshConnector(),
        git,
        config,
        metrics: createNioMetrics(new Registry()),
        slots: new ApplySlots(config.maxConcurrentApplies),
      };
      const logger = pino({ level: "silent" });
      const apply = (h: Host, i: number): Promise<unknown> =>
        executeApply(deps, {
          mode: "switch",
          metricMode: "switch",
          target: lab.target(h),
          expectedHostKey: undefined,
          sudo: false,
          git: { url: server.repoUrl("fleet") },
          desired: {
            commit,
            flake: { dir: "", attr: `node-${i}` },
            additionalFiles: [],
            hostFiles: [],
            secretValues: [],
            secretsInFlake: [],
            digest: commit,
          },
          writeHostFiles: true,
          logger,
        });
      const [h0, h1, h2] = hosts as [Host, Host, Host];
      const all = Promise.all(hosts.map(apply));
      // While the first switch runs (no record yet: written when it ends), the second machine is prepared...
      await waitFor("a prepared source on the second machine", async () =>
        (await h1.exists("/var/lib/nio/src")) && (await readDirInHost(h1, "/var/lib/nio/src")).length > 0
          ? true
          : undefined,
      );
      const running = (await Promise.all([h0, h1].map(async (h) => (await h.rebuildRecords()).length))).reduce(
        (a, b) => a + b,
      );
      expect(running, "no switch has ended yet").to.equal(0);
      // ...and the third one waits for a prepare slot: nothing on it yet.
      expect(await h2.exists("/var/lib/nio/src")).to.equal(false);
      await all;
      const spans = (await Promise.all(hosts.map(async (h) => (await h.rebuildRecords()).pop())))
        .map((r) => ({ start: Date.parse(r?.time ?? ""), end: Date.parse(r?.time ?? "") + (r?.durationMs ?? 0) }))
        .sort((a, b) => a.start - b.start);
      for (let i = 1; i < spans.length; i++) {
        expect(spans[i]?.start, "switches never overlap with a limit of 1").to.be.at.least(spans[i - 1]?.end ?? 0);
      }
      expect(deps.slots.run.inUse + deps.slots.prepare.inUse).to.equal(0);
    });
  });
});

async function readDirInHost(h: Host, path: string): Promise<string[]> {
  return readdir(await h.realPath(path));
}

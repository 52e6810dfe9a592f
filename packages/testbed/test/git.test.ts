import { expect } from "chai";
import * as fs from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import git from "isomorphic-git";
import http from "isomorphic-git/http/node";
import { GitFixture } from "../src/git-fixture.js";
import { readGitRequestLog, startGitServer, type GitServer } from "../src/git-server.js";
import { run, startProcess, waitFor, type ManagedProcess } from "../src/util/process.js";

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function rawRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? "GET", headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

function pktLine(s: string): string {
  return (s.length + 4).toString(16).padStart(4, "0") + s;
}

describe("testbed git server (smart HTTP via git http-backend)", function () {
  this.timeout(60_000);
  let root: string;
  let server: GitServer;
  const cleanups: (() => Promise<void>)[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "nio-git-test-"));
    server = await startGitServer({ rootDir: join(root, "repos") });
  });

  afterEach(() => server.setToken(undefined));

  after(async () => {
    for (const c of cleanups) await c();
    await server?.stop();
    await rm(root, { recursive: true, force: true });
  });

  async function fixture(repo: string, token?: string): Promise<GitFixture> {
    const fx = await GitFixture.create({ server, repo, token });
    cleanups.push(() => fx.cleanup());
    return fx;
  }

  it("accepts a push and lists branches and tags (annotated tags peeled) to isomorphic-git", async () => {
    const fx = await fixture("refs");
    await fx.writeFiles({ "flake.nix": "{ outputs = _: { }; }\n", "nodes/a/b.nix": Buffer.from([0x7b, 0x7d, 0x0a]) });
    const first = await fx.commit("first");
    expect(await fx.push()).to.equal(first);
    await fx.tag("v1");
    const second = await fx.commitAndPush({ "nodes/c.nix": "{ }\n" }, "second");
    const tagObject = await fx.tag("v2", { message: "release 2" }).then(() => fx.pushTag("v2"));
    await fx.pushTag("v1");

    const refs = await git.listServerRefs({ http, url: server.repoUrl("refs"), peelTags: true, symrefs: true });
    const byName = new Map(refs.map((r) => [r.ref, r]));
    expect(byName.get("refs/heads/main")?.oid).to.equal(second);
    expect(byName.get("refs/tags/v1")?.oid).to.equal(first);
    expect(byName.get("refs/tags/v2")?.oid).to.equal(tagObject);
    expect(tagObject).to.not.equal(second);
    expect(byName.get("refs/tags/v2")?.peeled).to.equal(second);

    const info = await git.getRemoteInfo2({ http, url: server.repoUrl("refs"), protocolVersion: 1 });
    expect(info.protocolVersion).to.equal(1);
    const v1Refs = info.protocolVersion === 1 ? (info.refs ?? []) : [];
    expect(v1Refs.find((r) => r.ref === "refs/heads/main")?.oid).to.equal(second);
    expect(v1Refs.find((r) => r.ref === "refs/tags/v2")?.peeled).to.equal(second);
  });

  it("serves a shallow single-branch clone of a ref to isomorphic-git in two upload-pack requests", async () => {
    const fx = await fixture("shallow");
    await fx.commitAndPush({ "README.md": "one\n" }, "one");
    const tagged = await fx.commitAndPush({ "README.md": "two\n", "nix/flake.nix": "{ }\n" }, "two");
    await fx.tag("v2", { message: "two" });
    await fx.pushTag("v2");
    const head = await fx.commitAndPush({ "README.md": "three\n" }, "three");

    server.resetCounts();
    const dir = await mkdtemp(join(tmpdir(), "nio-git-clone-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await git.clone({ fs, http, dir, url: server.repoUrl("shallow"), ref: "main", singleBranch: true, depth: 1 });
    expect(await git.resolveRef({ fs, dir, ref: "HEAD" })).to.equal(head);
    expect(await readFile(join(dir, "README.md"), "utf8")).to.equal("three\n");
    const log = await git.log({ fs, dir });
    expect(log.map((c) => c.oid)).to.deep.equal([head]);

    expect(server.countRequests({ repo: "shallow.git", service: "git-upload-pack", method: "GET" })).to.equal(1);
    expect(server.countRequests({ repo: "shallow.git", service: "git-upload-pack", method: "POST" })).to.equal(1);
    expect(server.countRequests()).to.equal(2);
    expect(server.requests.every((r) => r.status === 200)).to.equal(true);

    // an annotated tag as the ref
    const dir2 = await mkdtemp(join(tmpdir(), "nio-git-clone-"));
    cleanups.push(() => rm(dir2, { recursive: true, force: true }));
    await git.clone({ fs, http, dir: dir2, url: server.repoUrl("shallow"), ref: "v2", singleBranch: true, depth: 1 });
    expect(await readFile(join(dir2, "README.md"), "utf8")).to.equal("two\n");
    expect(
      await git.resolveRef({ fs, dir: dir2, ref: "refs/tags/v2" }).then((oid) => git.readTag({ fs, dir: dir2, oid })),
    ).to.have.nested.property("tag.object", tagged);
  });

  it("lets the git CLI fetch a commit by id that no ref points to (shallow, protocol v2)", async () => {
    const fx = await fixture("by-id");
    const old = await fx.commitAndPush({ "a.txt": "old\n" }, "old");
    await fx.commitAndPush({ "a.txt": "new\n" }, "new");
    const dir = await mkdtemp(join(tmpdir(), "nio-git-fetch-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const other = await GitFixture.create({ url: server.repoUrl("by-id"), workDir: dir });
    await other.git(["-c", "protocol.version=2", "fetch", "--quiet", "--depth", "1", "origin", old]);
    expect((await other.git(["cat-file", "-p", `${old}:a.txt`])).trim()).to.equal("old");
  });

  it("accepts gzip-compressed upload-pack request bodies", async () => {
    const fx = await fixture("gzip");
    const commit = await fx.commitAndPush({ "x.txt": "x\n" }, "x");
    const body = gzipSync(Buffer.from(`${pktLine(`want ${commit} ofs-delta\n`)}0000${pktLine("done\n")}`));
    const res = await rawRequest(`${server.repoUrl("gzip")}/git-upload-pack`, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-git-upload-pack-request",
        "Content-Encoding": "gzip",
        "Content-Length": String(body.length),
      },
      body,
    });
    expect(res.status).to.equal(200);
    expect(res.headers["content-type"]).to.equal("application/x-git-upload-pack-result");
    expect(res.body.subarray(0, 8).toString("latin1")).to.equal("0008NAK\n");
    expect(res.body.includes(Buffer.from("PACK"))).to.equal(true);
  });

  it("streams large packs both ways (chunked push bigger than http.postBuffer)", async () => {
    const fx = await fixture("big");
    const blob = randomBytes(3 * 1024 * 1024);
    const commit = await fx.commitAndPush({ "big.bin": blob }, "big");
    const dir = await mkdtemp(join(tmpdir(), "nio-git-clone-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await git.clone({ fs, http, dir, url: server.repoUrl("big"), singleBranch: true, depth: 1 });
    expect(await git.resolveRef({ fs, dir, ref: "HEAD" })).to.equal(commit);
    expect((await readFile(join(dir, "big.bin"))).equals(blob)).to.equal(true);
  });

  it("passes the CGI status through (404 for a missing repository)", async () => {
    server.resetCounts();
    const res = await rawRequest(`${server.repoUrl("missing")}/info/refs?service=git-upload-pack`);
    expect(res.status).to.equal(404);
    expect(server.requests).to.have.length(1);
    expect(server.requests[0]).to.include({
      method: "GET",
      repo: "missing.git",
      service: "git-upload-pack",
      status: 404,
    });
  });

  describe("with token auth", () => {
    const token = "s3cret-token-value";

    it("answers 401 with a Basic challenge when the token is missing or wrong", async () => {
      await fixture("auth");
      server.setToken(token);
      const none = await rawRequest(`${server.repoUrl("auth")}/info/refs?service=git-upload-pack`);
      expect(none.status).to.equal(401);
      expect(none.headers["www-authenticate"]).to.match(/^Basic realm="[^"]+"$/);
      const wrong = await rawRequest(`${server.repoUrl("auth")}/info/refs?service=git-upload-pack`, {
        headers: { Authorization: `Basic ${Buffer.from("x:nope").toString("base64")}` },
      });
      expect(wrong.status).to.equal(401);

      let err: unknown;
      try {
        await git.listServerRefs({ http, url: server.repoUrl("auth") });
      } catch (e) {
        err = e;
      }
      expect(err).to.have.property("code", "HttpError");
      expect(err).to.have.nested.property("data.statusCode", 401);

      err = undefined;
      let failures = 0;
      try {
        await git.listServerRefs({
          http,
          url: server.repoUrl("auth"),
          onAuth: () => ({ username: "nio", password: "wrong" }),
          onAuthFailure: () => {
            failures++;
            return { cancel: true };
          },
        });
      } catch (e) {
        err = e;
      }
      expect(failures).to.equal(1);
      expect(err).to.have.property("code", "UserCanceledError");
    });

    it("accepts pushes and clones with the right token and never records it", async () => {
      const fx = await fixture("auth2", token);
      server.setToken(token);
      const commit = await fx.commitAndPush({ "f.txt": "f\n" }, "with token");

      const noToken = await GitFixture.clone({ url: server.repoUrl("auth2") }).catch((e: unknown) => e);
      expect(noToken).to.be.instanceOf(Error);
      expect(String(noToken)).to.not.include(token);

      const dir = await mkdtemp(join(tmpdir(), "nio-git-clone-"));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      await git.clone({
        fs,
        http,
        dir,
        url: server.repoUrl("auth2"),
        singleBranch: true,
        depth: 1,
        onAuth: () => ({ username: "nio", password: token }),
      });
      expect(await git.resolveRef({ fs, dir, ref: "HEAD" })).to.equal(commit);
      expect(JSON.stringify(server.requests)).to.not.include(token);
      expect(server.countRequests({ repo: "auth2.git", status: 401 })).to.be.greaterThan(0);
      expect(await run("git", ["-C", fx.workDir, "config", "--list", "--local"]).then((r) => r.stdout)).to.not.include(
        token,
      );
    });
  });

  describe("as a detached process", () => {
    let proc: ManagedProcess | undefined;
    after(async () => {
      await proc?.stop();
    });

    it("prints its URL, serves pushes and clones, and logs every request to a file", async () => {
      const self = fileURLToPath(import.meta.url);
      const ts = self.endsWith(".ts");
      const main = fileURLToPath(new URL(`../src/git-server-main.${ts ? "ts" : "js"}`, import.meta.url));
      const dir = join(root, "detached");
      const logFile = join(root, "detached.out");
      const requestLog = join(root, "detached-requests.log");
      const tokenFile = join(root, "detached-token");
      await writeFile(tokenFile, "tok-123\n");
      proc = startProcess({
        name: "git-server",
        command: process.execPath,
        args: [
          ...(ts ? ["--import", "tsx"] : []),
          main,
          "--root",
          dir,
          "--port",
          "0",
          "--token-file",
          tokenFile,
          "--log-file",
          requestLog,
        ],
        logFile,
        detached: true,
      });
      const started = await waitFor(
        "git-server-main to print its URL",
        async () => {
          const line = (await readFile(logFile, "utf8")).split("\n").find((l) => l.startsWith("{"));
          return line ? (JSON.parse(line) as { url: string; port: number; pid: number }) : undefined;
        },
        { timeoutMs: 20_000 },
      );
      expect(started.url).to.equal(`http://127.0.0.1:${started.port}`);
      expect(started.pid).to.equal(proc.pid);

      const remote = {
        repoUrl: (name: string) => `${started.url}/${name}.git`,
        createRepo: async (name: string) => {
          const { createBareRepo } = await import("../src/git-server.js");
          return createBareRepo(dir, name);
        },
      };
      const fx = await GitFixture.create({ server: remote, repo: "d", token: "tok-123" });
      cleanups.push(() => fx.cleanup());
      const commit = await fx.commitAndPush({ "a.txt": "a\n" }, "a");
      const clone = await mkdtemp(join(tmpdir(), "nio-git-clone-"));
      cleanups.push(() => rm(clone, { recursive: true, force: true }));
      await git.clone({
        fs,
        http,
        dir: clone,
        url: remote.repoUrl("d"),
        singleBranch: true,
        depth: 1,
        onAuth: () => ({ username: "x", password: "tok-123" }),
      });
      expect(await git.resolveRef({ fs, dir: clone, ref: "HEAD" })).to.equal(commit);

      const records = await waitFor("request log lines", async () => {
        const recs = await readGitRequestLog(requestLog);
        return recs.some((r) => r.service === "git-upload-pack" && r.method === "POST" && r.status === 200)
          ? recs
          : undefined;
      });
      expect(records.filter((r) => r.service === "git-receive-pack" && r.method === "POST")).to.have.length(1);
      expect(records.filter((r) => r.service === "git-upload-pack" && r.status === 200)).to.have.length(2);
      expect(records.some((r) => r.status === 401)).to.equal(true);
      expect(await readFile(requestLog, "utf8")).to.not.include("tok-123");
    });
  });
});

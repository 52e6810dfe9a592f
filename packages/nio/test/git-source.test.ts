import { expect } from "chai";
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { GitFixture, startGitServer, type GitServer } from "@nio/testbed";
import { createGitSource, GitError, type GitSource, type TreeLease } from "../src/git/index.js";

const uploadPackPosts = { method: "POST", service: "git-upload-pack" } as const;

async function expectGitError(p: Promise<unknown>, reason: GitError["reason"]): Promise<GitError> {
  try {
    await p;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(GitError);
    const e = err as GitError;
    expect(e.reason, e.message).to.equal(reason);
    return e;
  }
  throw new Error(`expected a GitError ${reason}`);
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

describe("GitSource (real smart-HTTP git server)", function () {
  this.timeout(60_000);
  let root: string;
  let server: GitServer;
  let fx: GitFixture;
  let url: string;
  /** The first commit: flake.nix, an executable script, a symlink, a nested file. */
  let c1: string;
  /** Second commit on main (HEAD). */
  let c2: string;
  /** On branch `feature` only. */
  let cFeature: string;
  let annotatedTagObject: string;
  let caches = 0;
  const newCacheDir = (): string => join(root, `cache-${++caches}`);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "nio-git-source-"));
    server = await startGitServer({ rootDir: join(root, "srv") });
    fx = await GitFixture.create({ server, repo: "configs" });
    url = server.repoUrl("configs");
    await fx.writeFiles({
      "flake.nix": "{ outputs = _: { }; }\n",
      "bin/run.sh": "#!/bin/sh\necho hi\n",
      "hosts/a/default.nix": "{ }\n",
      "data.bin": Buffer.from([0, 1, 2, 255, 254, 0]),
    });
    await chmod(join(fx.workDir, "bin/run.sh"), 0o755);
    await symlink("flake.nix", join(fx.workDir, "link.nix"));
    c1 = await fx.commit("one");
    await fx.push();
    await fx.tag("light");
    await fx.pushTag("light");
    await fx.tag("v1", { message: "release v1" });
    annotatedTagObject = await fx.pushTag("v1");
    c2 = await fx.commitAndPush({ "flake.nix": "{ outputs = _: { two = true; }; }\n" }, "two");
    await fx.checkout("feature");
    cFeature = await fx.commitAndPush({ "feature.txt": "f\n" }, "feature");
    await fx.checkout("main");
  });

  after(async () => {
    await fx?.cleanup();
    await server?.stop();
    await rm(root, { recursive: true, force: true });
  });

  describe("resolveRef", () => {
    let gs: GitSource;
    beforeEach(() => {
      gs = createGitSource({ cacheDir: newCacheDir() });
      server.resetCounts();
    });

    it("resolves a branch name, a full branch ref and the remote HEAD", async () => {
      expect(await gs.resolveRef(url, "main")).to.deep.equal({ commit: c2, ref: "refs/heads/main" });
      expect(await gs.resolveRef(url, "refs/heads/feature")).to.deep.equal({
        commit: cFeature,
        ref: "refs/heads/feature",
      });
      expect(await gs.resolveRef(url, "feature")).to.deep.equal({ commit: cFeature, ref: "refs/heads/feature" });
      expect(await gs.resolveRef(url, undefined)).to.deep.equal({ commit: c2, ref: "refs/heads/main" });
      expect(await gs.resolveRef(url, "HEAD")).to.deep.equal({ commit: c2, ref: "refs/heads/main" });
    });

    it("resolves a lightweight tag and peels an annotated tag to its commit", async () => {
      expect(await gs.resolveRef(url, "light")).to.deep.equal({ commit: c1, ref: "refs/tags/light" });
      const v1 = await gs.resolveRef(url, "v1");
      expect(v1).to.deep.equal({ commit: c1, ref: "refs/tags/v1" });
      expect(v1.commit).to.not.equal(annotatedTagObject);
      expect(await gs.resolveRef(url, "refs/tags/v1")).to.deep.equal({ commit: c1, ref: "refs/tags/v1" });
    });

    it("makes only ref-listing requests (GET info/refs), never a pack fetch", async () => {
      await gs.resolveRef(url, "main");
      await gs.resolveRef(url, "v1");
      await gs.resolveRef(url, undefined);
      expect(server.countRequests()).to.equal(3);
      expect(server.countRequests({ method: "GET", path: "/configs.git/info/refs" })).to.equal(3);
      expect(server.countRequests(uploadPackPosts)).to.equal(0);
      expect(gs.stats().resolves).to.equal(3);
    });

    it("returns a full commit id as is without any request", async () => {
      expect(await gs.resolveRef(url, c1)).to.deep.equal({ commit: c1, ref: c1 });
      expect(await gs.resolveRef(url, c1.toUpperCase())).to.deep.equal({ commit: c1, ref: c1 });
      expect(server.countRequests()).to.equal(0);
      expect(gs.stats().resolves).to.equal(0);
    });

    it("reports an unknown ref as RefNotFound naming the ref, the repository and what exists", async () => {
      const e = await expectGitError(gs.resolveRef(url, "nope"), "RefNotFound");
      expect(e.message).to.include('"nope"').and.include(url).and.include("main").and.include("tag v1");
      const short = await expectGitError(gs.resolveRef(url, c1.slice(0, 7)), "RefNotFound");
      expect(short.message).to.include("abbreviated");
    });

    it("refuses invalid refs and URLs with embedded credentials, without repeating the password", async () => {
      await expectGitError(gs.resolveRef(url, "a..b"), "InvalidSpec");
      await expectGitError(gs.resolveRef(url, "main\n"), "InvalidSpec");
      const withCreds = url.replace("http://", "http://user:hunter2@");
      const e = await expectGitError(gs.resolveRef(withCreds, "main"), "InvalidSpec");
      expect(e.message).to.include("credentials").and.not.include("hunter2");
      await expectGitError(gs.resolveRef("ssh://git@example.com/x.git", "main"), "InvalidSpec");
      await expectGitError(gs.checkout(withCreds, c1), "InvalidSpec");
      expect(server.countRequests()).to.equal(0);
    });
  });

  describe("checkout", () => {
    it("exports the commit's tree: contents, executable bit, symlink, no .git, read-only files", async () => {
      const gs = createGitSource({ cacheDir: newCacheDir() });
      const lease = await gs.checkout(url, c1, undefined, { ref: "refs/tags/v1" });
      try {
        expect(lease.commit).to.equal(c1);
        expect((await readdir(lease.dir)).sort()).to.deep.equal(["bin", "data.bin", "flake.nix", "hosts", "link.nix"]);
        expect(await readFile(join(lease.dir, "flake.nix"), "utf8")).to.equal("{ outputs = _: { }; }\n");
        expect(await readFile(join(lease.dir, "hosts/a/default.nix"), "utf8")).to.equal("{ }\n");
        expect([...(await readFile(join(lease.dir, "data.bin")))]).to.deep.equal([0, 1, 2, 255, 254, 0]);
        const script = await lstat(join(lease.dir, "bin/run.sh"));
        expect(script.mode & 0o777).to.equal(0o555);
        expect((await lstat(join(lease.dir, "flake.nix"))).mode & 0o777).to.equal(0o444);
        expect((await lstat(join(lease.dir, "link.nix"))).isSymbolicLink()).to.equal(true);
        expect(await readlink(join(lease.dir, "link.nix"))).to.equal("flake.nix");
        expect(await exists(join(lease.dir, ".git"))).to.equal(false);
      } finally {
        await lease.release();
      }
    });

    it("fetches a commit once for 10 concurrent checkouts; a later checkout is a cache hit without requests", async () => {
      const fetched: number[] = [];
      const gs = createGitSource({ cacheDir: newCacheDir(), onFetch: () => fetched.push(1) });
      server.resetCounts();
      const leases = await Promise.all(
        Array.from({ length: 10 }, () => gs.checkout(url, c2, undefined, { ref: "refs/heads/main" })),
      );
      expect(server.countRequests(uploadPackPosts)).to.equal(1);
      expect(fetched).to.have.length(1);
      expect(new Set(leases.map((l) => l.dir)).size).to.equal(1);
      expect(leases.filter((l) => l.source === "joined")).to.have.length(9);
      expect(leases.filter((l) => l.source === "commit")).to.have.length(1);
      for (const l of leases) await l.release();

      server.resetCounts();
      const again = await gs.checkout(url, c2);
      expect(again.source).to.equal("cache");
      expect(again.dir).to.equal(leases[0]?.dir);
      expect(server.countRequests()).to.equal(0);
      await again.release();
      expect(gs.stats()).to.include({ fetches: 1, exports: 1, joins: 9, cacheHits: 1, entries: 1 });
    });

    it("fetches a new commit of the same repository incrementally and keeps both trees", async () => {
      const gs = createGitSource({ cacheDir: newCacheDir() });
      const first = await gs.checkout(url, c1);
      expect(first.source).to.equal("commit");
      server.resetCounts();
      const second = await gs.checkout(url, c2);
      expect(second.source).to.equal("incremental");
      expect(server.countRequests(uploadPackPosts)).to.equal(1);
      expect(second.dir).to.not.equal(first.dir);
      expect(await readFile(join(first.dir, "flake.nix"), "utf8")).to.include("{ }");
      expect(await readFile(join(second.dir, "flake.nix"), "utf8")).to.include("two = true");
      await first.release();
      await second.release();
      expect(gs.stats()).to.include({ entries: 2, fetches: 2 });
    });

    it("exports a commit that brings back an older file version (objects the shallow store never had)", async () => {
      const rfx = await GitFixture.create({ server, repo: "revert" });
      const rurl = server.repoUrl("revert");
      try {
        const a = await rfx.commitAndPush({ "x.txt": "version A\n", "y.txt": "y\n" }, "A", {
          date: new Date("2020-01-01"),
        });
        const b = await rfx.commitAndPush({ "x.txt": "version B\n" }, "B", { date: new Date("2021-01-01") });
        await rfx.git(["revert", "--no-edit", b]);
        const c = await rfx.push();
        const gs = createGitSource({ cacheDir: newCacheDir() });
        const lb = await gs.checkout(rurl, b);
        const lc = await gs.checkout(rurl, c);
        expect(lc.source).to.equal("incremental");
        expect(await readFile(join(lc.dir, "x.txt"), "utf8")).to.equal("version A\n");
        // an older commit than the last fetched one: incremental yields nothing, fetched by id
        const la = await gs.checkout(rurl, a);
        expect(la.source).to.equal("commit");
        expect(await readFile(join(la.dir, "x.txt"), "utf8")).to.equal("version A\n");
        for (const l of [la, lb, lc]) await l.release();
      } finally {
        await rfx.cleanup();
      }
    });

    it("fetches a commit the ref has moved away from, by id or (for strict servers) by deepening the ref", async () => {
      const mfx = await GitFixture.create({ server, repo: "moving" });
      const murl = server.repoUrl("moving");
      try {
        const old = await mfx.commitAndPush({ "f.txt": "old\n" }, "old");
        const resolved = await createGitSource({ cacheDir: newCacheDir() }).resolveRef(murl, "main");
        expect(resolved.commit).to.equal(old);
        for (let i = 0; i < 3; i++) await mfx.commitAndPush({ "f.txt": `new ${i}\n` }, `new ${i}`);

        const byId = createGitSource({ cacheDir: newCacheDir() });
        const l1 = await byId.checkout(murl, old, undefined, { ref: resolved.ref });
        expect(l1.source).to.equal("commit");
        expect(await readFile(join(l1.dir, "f.txt"), "utf8")).to.equal("old\n");
        await l1.release();

        const viaRef = createGitSource({ cacheDir: newCacheDir(), fetchByCommitId: false });
        server.resetCounts();
        const l2 = await viaRef.checkout(murl, old, undefined, { ref: resolved.ref });
        expect(l2.source).to.equal("ref@64");
        expect(server.countRequests(uploadPackPosts)).to.equal(2);
        expect(await readFile(join(l2.dir, "f.txt"), "utf8")).to.equal("old\n");
        await l2.release();
      } finally {
        await mfx.cleanup();
      }
    });

    it("reports a commit the server does not have as RefNotFound", async () => {
      const gs = createGitSource({ cacheDir: newCacheDir() });
      const missing = "0123456789abcdef0123456789abcdef01234567";
      const e = await expectGitError(gs.checkout(url, missing), "RefNotFound");
      expect(e.message).to.include(missing).and.include(url);
      await expectGitError(gs.checkout(url, "abc123"), "InvalidSpec");
    });

    it("adopts the trees a previous process left in the cache directory", async () => {
      const cacheDir = newCacheDir();
      const first = createGitSource({ cacheDir });
      await (await first.checkout(url, c1)).release();
      server.resetCounts();
      const second = createGitSource({ cacheDir });
      const lease = await second.checkout(url, c1);
      expect(lease.source).to.equal("cache");
      // no fetch; one ref listing to learn whether the repository needs credentials
      expect(server.countRequests(uploadPackPosts)).to.equal(0);
      expect(server.countRequests({ method: "GET" })).to.equal(1);
      expect(second.stats().accessChecks).to.equal(1);
      await lease.release();
      server.resetCounts();
      await (await second.checkout(url, c1)).release();
      expect(server.countRequests()).to.equal(0);
    });
  });

  describe("eviction", () => {
    it("keeps the cache within maxEntries, least recently used first, and never evicts a tree in use", async () => {
      const efx = await GitFixture.create({ server, repo: "evict" });
      const eurl = server.repoUrl("evict");
      try {
        const commits: string[] = [];
        for (let i = 0; i < 5; i++) commits.push(await efx.commitAndPush({ "n.txt": `${i}\n` }, `c${i}`));
        const gs = createGitSource({ cacheDir: newCacheDir(), maxEntries: 2 });
        const held = await gs.checkout(eurl, commits[0] ?? "");
        const dirs: string[] = [held.dir];
        for (const c of commits.slice(1)) {
          const l = await gs.checkout(eurl, c);
          dirs.push(l.dir);
          await l.release();
          expect(gs.stats().entries).to.be.at.most(2);
          expect(await exists(held.dir), "the held tree is never evicted").to.equal(true);
        }
        expect(await readFile(join(held.dir, "n.txt"), "utf8")).to.equal("0\n");
        expect(gs.stats().evictions).to.equal(3);
        // the newest tree and the held one remain; the evicted ones are gone from disk
        expect(await exists(dirs[4] ?? "")).to.equal(true);
        for (const d of dirs.slice(1, 4)) expect(await exists(d)).to.equal(false);

        // all leased: the cache goes over its bound rather than evicting a tree in use, and recovers on release
        const l3 = await gs.checkout(eurl, commits[3] ?? "");
        const l4 = await gs.checkout(eurl, commits[4] ?? "");
        const leases: TreeLease[] = [held, l3, l4];
        expect(gs.stats().entries).to.equal(3);
        for (const l of leases) expect(await exists(l.dir)).to.equal(true);
        await held.release();
        expect(gs.stats().entries).to.equal(2);
        expect(await exists(held.dir)).to.equal(false);
        await l3.release();
        await l4.release();
        await l4.release(); // idempotent
        expect(gs.stats().entries).to.equal(2);
      } finally {
        await efx.cleanup();
      }
    });

    it("bounds the cache by bytes too", async () => {
      const bfx = await GitFixture.create({ server, repo: "bytes" });
      const burl = server.repoUrl("bytes");
      try {
        const a = await bfx.commitAndPush({ "big.bin": Buffer.alloc(40_000, 1) }, "a");
        const b = await bfx.commitAndPush({ "big.bin": Buffer.alloc(40_000, 2) }, "b");
        const gs = createGitSource({ cacheDir: newCacheDir(), maxBytes: 60_000 });
        await (await gs.checkout(burl, a)).release();
        const lb = await gs.checkout(burl, b);
        expect(gs.stats()).to.include({ entries: 1, evictions: 1 });
        expect(gs.stats().bytes).to.be.at.most(60_000);
        await lb.release();
      } finally {
        await bfx.cleanup();
      }
    });
  });

  describe("auth and failures", () => {
    const token = "s3cr3t-T0KEN-value";
    let authServer: GitServer;
    let aurl: string;
    let ac: string;

    before(async () => {
      authServer = await startGitServer({ rootDir: join(root, "auth-srv"), token });
      const afx = await GitFixture.create({ server: authServer, repo: "private", token });
      ac = await afx.commitAndPush({ "flake.nix": "{ }\n" }, "private");
      await afx.cleanup();
      aurl = authServer.repoUrl("private");
    });

    after(async () => {
      await authServer?.stop();
    });

    it("authenticates with the token (HTTP Basic via onAuth) for resolve and checkout", async () => {
      const cacheDir = newCacheDir();
      const gs = createGitSource({ cacheDir });
      expect(await gs.resolveRef(aurl, "main", { token })).to.deep.equal({ commit: ac, ref: "refs/heads/main" });
      const lease = await gs.checkout(aurl, ac, { token, username: "someone" }, { ref: "refs/heads/main" });
      expect(await readFile(join(lease.dir, "flake.nix"), "utf8")).to.equal("{ }\n");
      await lease.release();
      // the token is stored nowhere in the cache (e.g. not in the remote URL of the object store)
      const repos = await readdir(join(cacheDir, "repos"));
      for (const r of repos) expect(await readFile(join(cacheDir, "repos", r, "config"), "utf8")).to.not.include(token);
    });

    it("hands a cached private tree only to callers whose credentials the server accepts", async () => {
      const gs = createGitSource({ cacheDir: newCacheDir() });
      await (await gs.checkout(aurl, ac, { token })).release();
      authServer.resetCounts();
      // same credentials: cache hit without any request
      await (await gs.checkout(aurl, ac, { token })).release();
      expect(authServer.countRequests()).to.equal(0);
      // no or wrong credentials: refused although the tree is cached (a commit id resolves without the server)
      expect((await gs.resolveRef(aurl, ac)).commit).to.equal(ac);
      await expectGitError(gs.checkout(aurl, ac), "AuthFailed");
      await expectGitError(gs.checkout(aurl, ac, { token: "nope" }), "AuthFailed");
      expect(authServer.countRequests({ method: "POST" })).to.equal(0);
      // other accepted credentials: one ref listing, then remembered
      authServer.resetCounts();
      await (await gs.checkout(aurl, ac, { token, username: "other" })).release();
      await (await gs.checkout(aurl, ac, { token, username: "other" })).release();
      expect(authServer.countRequests({ method: "POST" })).to.equal(0);
      expect(authServer.countRequests({ status: 200 })).to.equal(1);
      expect(gs.stats()).to.include({ fetches: 1, entries: 1 });
    });

    it("reports a wrong or missing token as AuthFailed and never shows the token", async () => {
      const gs = createGitSource({ cacheDir: newCacheDir() });
      const wrong = await expectGitError(gs.resolveRef(aurl, "main", { token: "wrong-token" }), "AuthFailed");
      expect(wrong.message).to.include("rejected the credentials").and.include(aurl);
      const missing = await expectGitError(gs.resolveRef(aurl, "main"), "AuthFailed");
      expect(missing.message).to.include("spec.credentialsRef");
      const checkoutErr = await expectGitError(gs.checkout(aurl, ac, { token: `${token}-bad` }), "AuthFailed");
      for (const e of [wrong, missing, checkoutErr]) {
        const all = `${e.message}\n${e.stack ?? ""}\n${inspect(e, { depth: 20 })}\n${JSON.stringify(e)}`;
        expect(all).to.not.include(token);
        expect(all).to.not.include("wrong-token");
        expect(all).to.not.include(Buffer.from(`x-access-token:wrong-token`).toString("base64"));
      }
    });

    it("reports a stopped server as Unreachable", async () => {
      const down = await startGitServer({ rootDir: join(root, "down-srv") });
      const dfx = await GitFixture.create({ server: down, repo: "d" });
      const dc = await dfx.commitAndPush({ a: "a" }, "a");
      await dfx.cleanup();
      const durl = down.repoUrl("d");
      await down.stop();
      const gs = createGitSource({ cacheDir: newCacheDir() });
      const e = await expectGitError(gs.resolveRef(durl, "main"), "Unreachable");
      expect(e.message).to.include(durl);
      await expectGitError(gs.checkout(durl, dc), "Unreachable");
    });

    it("reports a server that accepts but never answers as Unreachable after the timeout", async () => {
      const sockets = new Set<Socket>();
      const silent = createServer((sock) => {
        sockets.add(sock);
        sock.on("error", () => undefined);
      });
      await new Promise<void>((ok) => silent.listen(0, "127.0.0.1", ok));
      const port = (silent.address() as AddressInfo).port;
      try {
        const gs = createGitSource({ cacheDir: newCacheDir(), timeoutMs: 300 });
        const started = Date.now();
        await expectGitError(gs.resolveRef(`http://127.0.0.1:${port}/x.git`, "main"), "Unreachable");
        expect(Date.now() - started).to.be.below(5000);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise<void>((ok) => silent.close(() => ok()));
      }
    });

    it("reports an empty repository as RefNotFound", async () => {
      await server.createRepo("empty");
      const gs = createGitSource({ cacheDir: newCacheDir() });
      const e = await expectGitError(gs.resolveRef(server.repoUrl("empty"), undefined), "RefNotFound");
      expect(e.message).to.include("no branches or tags");
    });

    it("reports a repository that does not exist as GitError", async () => {
      const gs = createGitSource({ cacheDir: newCacheDir() });
      const e = await expectGitError(gs.resolveRef(server.repoUrl("nothing-here"), "main"), "GitError");
      expect(e.message).to.include("not found");
    });
  });

  it("survives an unusable cache path with a GitError", async () => {
    const file = join(root, "not-a-dir");
    await writeFile(file, "x");
    await mkdir(join(root, "ok"), { recursive: true });
    const gs = createGitSource({ cacheDir: join(file, "cache") });
    await expectGitError(gs.checkout(url, c1), "GitError");
  });
});

import { expect } from "chai";
import { spawn } from "node:child_process";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import {
  hashTree,
  materializeWorkspace,
  validateRelativePath,
  WorkspacePathError,
  type AdditionalFile,
  type Workspace,
} from "../src/workspace/index.js";

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function untar(data: Buffer, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  await new Promise<void>((ok, fail) => {
    const child = spawn("tar", ["-x", "-p", "-f", "-", "-C", dest], { stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", fail);
    child.on("close", (code) => (code === 0 ? ok() : fail(new Error(`tar -x exited ${code}: ${err}`))));
    child.stdin.end(data);
  });
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Every path below `dir` (relative), sorted. */
async function listAll(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const rel = prefix === "" ? d.name : `${prefix}/${d.name}`;
    out.push(rel);
    if (d.isDirectory()) out.push(...(await listAll(join(dir, d.name), rel)));
  }
  return out.sort();
}

describe("workspace", () => {
  let root: string;
  /** Stand-in for an exported tree (what GitSource.checkout returns). */
  let source: string;
  /** A directory outside every workspace that symlinks in the "repository" point to. */
  let outside: string;
  let baseDir: string;
  const open: Workspace[] = [];

  const make = async (
    additionalFiles: AdditionalFile[] = [],
    extra: { subdir?: string; sourceDir?: string } = {},
  ): Promise<Workspace> => {
    const ws = await materializeWorkspace({
      baseDir,
      sourceDir: extra.sourceDir ?? source,
      subdir: extra.subdir,
      additionalFiles,
    });
    open.push(ws);
    return ws;
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "nio-workspace-"));
    source = join(root, "tree");
    outside = join(root, "outside");
    baseDir = join(root, "base", "nixos-config");
    await mkdir(outside);
    await mkdir(join(source, "hosts", "a"), { recursive: true });
    await mkdir(join(source, "bin"));
    await writeFile(join(source, "flake.nix"), "{ outputs = _: { }; }\n");
    await writeFile(join(source, "hosts", "a", "flake.nix"), "{ a = 1; }\n");
    await writeFile(join(source, "bin", "run.sh"), "#!/bin/sh\n");
    await chmod(join(source, "bin", "run.sh"), 0o555);
    await chmod(join(source, "flake.nix"), 0o444);
    await symlink("flake.nix", join(source, "link.nix"));
    await symlink(outside, join(source, "evil"));
    await symlink(join(outside, "target"), join(source, "cfg"));
    await symlink("../../..", join(source, "hosts", "up"));
  });

  afterEach(async () => {
    for (const ws of open.splice(0)) await ws.cleanup();
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("creates a private 0700 directory (and a 0700 base dir) with a copy of the tree", async () => {
    const ws = await make();
    expect((await stat(ws.dir)).mode & 0o777).to.equal(0o700);
    expect((await stat(baseDir)).mode & 0o777).to.equal(0o700);
    expect(ws.dir.startsWith(`${baseDir}/`)).to.equal(true);
    expect(await listAll(ws.dir)).to.deep.equal(await listAll(source));
    expect(await readFile(join(ws.dir, "hosts/a/flake.nix"), "utf8")).to.equal("{ a = 1; }\n");
    expect((await stat(join(ws.dir, "bin/run.sh"))).mode & 0o777).to.equal(0o755);
    expect((await stat(join(ws.dir, "flake.nix"))).mode & 0o777).to.equal(0o644);
    expect(await readlink(join(ws.dir, "evil"))).to.equal(outside);
    expect(await readlink(join(ws.dir, "link.nix"))).to.equal("flake.nix");
    expect(ws.contentHash).to.match(/^[0-9a-f]{64}$/);
  });

  it("cleanup removes the directory and is idempotent", async () => {
    const ws = await make();
    await ws.cleanup();
    expect(await exists(ws.dir)).to.equal(false);
    await ws.cleanup();
  });

  it("takes only configurationSubdir, whose root holds the flake", async () => {
    const ws = await make([{ path: "extra.nix", content: Buffer.from("{ }") }], { subdir: "hosts/a" });
    expect(await listAll(ws.dir)).to.deep.equal(["extra.nix", "flake.nix"]);
    expect(await readFile(join(ws.dir, "flake.nix"), "utf8")).to.equal("{ a = 1; }\n");
  });

  it("refuses a missing, symlinked or escaping configurationSubdir naming the field", async () => {
    const cases: [string, string][] = [
      ["hosts/b", "does not exist"],
      ["evil", "symbolic link"],
      ["hosts/up/etc", "symbolic link"],
      ["flake.nix", "not a directory"],
      ["../x", "'..'"],
      ["/etc", "relative"],
    ];
    for (const [subdir, rule] of cases) {
      try {
        await make([], { subdir });
        expect.fail(`subdir ${subdir} accepted`);
      } catch (err) {
        expect(err).to.be.instanceOf(WorkspacePathError);
        const e = err as WorkspacePathError;
        expect(e.field).to.equal("spec.configurationSubdir");
        expect(e.message).to.include("spec.configurationSubdir").and.include(rule);
        expect(e.reason).to.equal("InvalidSpec");
      }
    }
    expect(await readdir(baseDir)).to.deep.equal([]);
  });

  it("writes additionalFiles binary-safe with mode 0644, creating parents", async () => {
    const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const ws = await make([
      { path: "secrets/database-password", content: Buffer.from("pw\n") },
      { path: "facts/deep/system-info.json", content: binary },
      { path: "flake.nix", content: Buffer.from("{ replaced = true; }") },
    ]);
    expect(await readFile(join(ws.dir, "secrets/database-password"), "utf8")).to.equal("pw\n");
    expect((await readFile(join(ws.dir, "facts/deep/system-info.json"))).equals(binary)).to.equal(true);
    expect((await stat(join(ws.dir, "facts/deep/system-info.json"))).mode & 0o777).to.equal(0o644);
    expect(await readFile(join(ws.dir, "flake.nix"), "utf8")).to.equal("{ replaced = true; }");
    expect(await readFile(join(source, "flake.nix"), "utf8"), "the source tree is untouched").to.equal(
      "{ outputs = _: { }; }\n",
    );
    expect((await readdir(ws.dir)).filter((n) => n.startsWith(".nio-write-"))).to.deep.equal([]);
  });

  it("replaces a repository symlink at the file's own path instead of writing through it", async () => {
    const ws = await make([{ path: "cfg", content: Buffer.from("mine") }]);
    const st = await lstat(join(ws.dir, "cfg"));
    expect(st.isFile()).to.equal(true);
    expect(await readFile(join(ws.dir, "cfg"), "utf8")).to.equal("mine");
    expect(await exists(join(outside, "target"))).to.equal(false);
  });

  describe("path attacks are refused with the field name and nothing is written outside", () => {
    const attacks: { path: string; rule: string }[] = [
      { path: "../x", rule: "'..'" },
      { path: "/etc/x", rule: "relative" },
      { path: "a/../../x", rule: "'..'" },
      { path: "a\0b", rule: "NUL" },
      { path: "evil/passwd", rule: "symbolic link 'evil'" },
      { path: "evil/sub/dir/passwd", rule: "symbolic link 'evil'" },
      { path: "hosts/up/tmp/x", rule: "symbolic link 'hosts/up'" },
      { path: "flake.nix/x", rule: "directory" },
      { path: "hosts", rule: "directory" },
      { path: "a//b", rule: "empty segments" },
      { path: "./x", rule: "'.'" },
      { path: "x/", rule: "empty segments" },
      { path: "", rule: "empty" },
      { path: "x\ny", rule: "control characters" },
      { path: "-rf", rule: "'-'" },
      { path: "a\\..\\x", rule: "backslashes" },
      { path: `${"a".repeat(300)}/x`, rule: "longer than 255" },
    ];
    for (const { path, rule } of attacks) {
      it(`${JSON.stringify(path.slice(0, 40))}: ${rule}`, async () => {
        const before = await listAll(root);
        try {
          await make([
            { path: "ok.txt", content: Buffer.from("fine") },
            { path, content: Buffer.from("pwned") },
          ]);
          expect.fail(`${JSON.stringify(path)} accepted`);
        } catch (err) {
          expect(err, String(err)).to.be.instanceOf(WorkspacePathError);
          const e = err as WorkspacePathError;
          expect(e.field).to.equal("spec.additionalFiles[1].path");
          expect(e.message).to.include("spec.additionalFiles[1].path").and.include(rule);
        }
        expect(await readdir(outside)).to.deep.equal([]);
        expect(await readdir(baseDir), "the failed workspace is removed").to.deep.equal([]);
        expect(await listAll(root)).to.deep.equal(before);
      });
    }

    it("refuses two files with the same path", async () => {
      try {
        await make([
          { path: "a.txt", content: Buffer.from("1") },
          { path: "a.txt", content: Buffer.from("2") },
        ]);
        expect.fail("duplicate accepted");
      } catch (err) {
        expect(err).to.be.instanceOf(WorkspacePathError);
        expect((err as Error).message)
          .to.include("spec.additionalFiles[1].path")
          .and.include("spec.additionalFiles[0].path");
      }
    });

    it("validateRelativePath returns good paths and names the field", () => {
      expect(validateRelativePath("config/custom.nix", "spec.additionalFiles[0].path")).to.equal("config/custom.nix");
      expect(() => validateRelativePath("../x", "spec.hostFiles[3].path")).to.throw(
        WorkspacePathError,
        /^spec\.hostFiles\[3\]\.path "\.\.\/x" must not contain '\.\.' segments$/,
      );
    });
  });

  describe("contentHash", () => {
    it("is stable for the same inputs", async () => {
      const files = [{ path: "x/y.txt", content: Buffer.from("y") }];
      const a = await make(files);
      const b = await make(files);
      expect(a.dir).to.not.equal(b.dir);
      expect(a.contentHash).to.equal(b.contentHash);
    });

    it("changes with any content, name, mode, link target or added file", async () => {
      const base = await make([{ path: "x.txt", content: Buffer.from("x") }]);
      const variants: { name: string; ws: () => Promise<Workspace> }[] = [
        { name: "added file content", ws: () => make([{ path: "x.txt", content: Buffer.from("X") }]) },
        { name: "added file name", ws: () => make([{ path: "z.txt", content: Buffer.from("x") }]) },
        {
          name: "another added file",
          ws: () =>
            make([
              { path: "x.txt", content: Buffer.from("x") },
              { path: "w.txt", content: Buffer.alloc(0) },
            ]),
        },
      ];
      const hashes = new Set([base.contentHash]);
      for (const v of variants) {
        const ws = await v.ws();
        expect(hashes.has(ws.contentHash), v.name).to.equal(false);
        hashes.add(ws.contentHash);
      }
      // changes in the tree itself: content, mode, name, link target
      const tree = join(root, "tree2");
      await mkdir(tree);
      await writeFile(join(tree, "a.nix"), "a");
      await symlink("a.nix", join(tree, "l"));
      const treeHashes = new Set<string>();
      const check = async (name: string): Promise<void> => {
        const ws = await make([], { sourceDir: tree });
        expect(treeHashes.has(ws.contentHash), name).to.equal(false);
        treeHashes.add(ws.contentHash);
      };
      await check("initial");
      await writeFile(join(tree, "a.nix"), "b");
      await check("content");
      await chmod(join(tree, "a.nix"), 0o755);
      await check("mode");
      await rm(join(tree, "l"));
      await symlink("other", join(tree, "l"));
      await check("link target");
      await rm(join(tree, "l"));
      await symlink("other", join(tree, "m"));
      await check("name");
      await mkdir(join(tree, "empty"));
      await check("empty directory");
    });

    it("hashTree of the workspace equals contentHash", async () => {
      const ws = await make([{ path: "q", content: Buffer.from("q") }]);
      expect(await hashTree(ws.dir)).to.equal(ws.contentHash);
    });
  });

  describe("tarStream", () => {
    it("round-trips through tar -x with the same content hash, owner 0 and mtime 0", async () => {
      const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));
      const ws = await make([{ path: "facts/bin.dat", content: binary }]);
      const data = await collect(ws.tarStream());
      const dest = join(root, "untarred");
      await untar(data, dest);
      try {
        expect(await hashTree(dest)).to.equal(ws.contentHash);
        expect((await readFile(join(dest, "facts/bin.dat"))).equals(binary)).to.equal(true);
        expect(await readlink(join(dest, "evil"))).to.equal(outside);
        expect((await stat(join(dest, "bin/run.sh"))).mode & 0o777).to.equal(0o755);
        const listing = await new Promise<string>((ok, fail) => {
          const child = spawn("tar", ["-tvf", "-", "--numeric-owner"], { stdio: ["pipe", "pipe", "inherit"] });
          let out = "";
          child.stdout.on("data", (d: Buffer) => (out += d.toString()));
          child.on("error", fail);
          child.on("close", () => ok(out));
          child.stdin.end(data);
        });
        for (const line of listing.trim().split("\n")) {
          expect(line).to.match(/ 0\/0 /);
          expect(line).to.include("1970-01-01");
        }
      } finally {
        await rm(dest, { recursive: true, force: true });
      }
    });

    it("is deterministic: the same content gives the same bytes", async () => {
      const a = await make([{ path: "x", content: Buffer.from("x") }]);
      const b = await make([{ path: "x", content: Buffer.from("x") }]);
      const ta = await collect(a.tarStream());
      const tb = await collect(b.tarStream());
      expect(ta.equals(tb)).to.equal(true);
    });

    it("surfaces a tar failure as a stream error", async () => {
      const ws = await make();
      await ws.cleanup();
      let error: unknown;
      try {
        await collect(ws.tarStream());
      } catch (err) {
        error = err;
      }
      expect(String(error)).to.match(/tar exited with 2/);
    });
  });
});

/**
 * GitFixture: a work tree for tests that writes files, commits them with a fixed identity (no global git config
 * needed) and pushes branches and tags to the testbed git server over HTTP with the real `git` CLI. Commands always
 * run with argv arrays; a token is passed as an `http.extraHeader` through GIT_CONFIG_* environment variables, never
 * in a URL or on a command line.
 */
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, isAbsolute, join, normalize, relative, resolve } from "node:path";
import { run } from "./util/process.js";

export interface GitIdentity {
  name: string;
  email: string;
}

export const FIXTURE_IDENTITY: GitIdentity = { name: "NIO Testbed", email: "testbed@nio.invalid" };

/** What a fixture needs from a server: satisfied by `GitServer` from `git-server.ts`. */
export interface GitRemote {
  repoUrl(name: string): string;
  createRepo?(name: string): Promise<string>;
}

export interface GitFixtureOptions {
  /** Remote URL to push to (or give `server` + `repo`). */
  url?: string;
  server?: GitRemote;
  /** Repository name on `server`; it is created there unless `createRepo` is false. */
  repo?: string;
  createRepo?: boolean;
  /** Password for HTTP Basic auth (any user name); omit for a server without auth. */
  token?: string;
  /** Work tree directory (default: a fresh temporary directory, removed by `cleanup`). */
  workDir?: string;
  /** Initial branch (default `main`). */
  branch?: string;
  identity?: GitIdentity;
  gitBin?: string;
}

export type FileContent = string | Buffer | Uint8Array;

export interface CommitOptions {
  allowEmpty?: boolean;
  /** Author and committer date (default now). */
  date?: Date;
}

export interface TagOptions {
  /** Makes an annotated tag with this message (default: lightweight). */
  message?: string;
  /** What to tag (default HEAD). */
  target?: string;
  force?: boolean;
}

export class GitFixture {
  private token: string | undefined;
  private readonly ownsWorkDir: boolean;

  private constructor(
    readonly workDir: string,
    readonly remoteUrl: string,
    private readonly identity: GitIdentity,
    private readonly gitBin: string,
    opts: { token?: string; ownsWorkDir: boolean },
  ) {
    this.token = opts.token;
    this.ownsWorkDir = opts.ownsWorkDir;
  }

  /** A new, empty work tree whose `origin` is the remote (the remote repository is created on `server`). */
  static async create(opts: GitFixtureOptions): Promise<GitFixture> {
    const fx = await GitFixture.prepare(opts);
    await fx.git(["init", "--quiet", `--initial-branch=${opts.branch ?? "main"}`, "."]);
    await fx.git(["remote", "add", "origin", fx.remoteUrl]);
    return fx;
  }

  /** A clone of the remote repository (which must exist). */
  static async clone(opts: GitFixtureOptions): Promise<GitFixture> {
    const fx = await GitFixture.prepare({ ...opts, createRepo: false });
    await fx.git(["clone", "--quiet", "--origin", "origin", fx.remoteUrl, "."]);
    if (opts.branch) await fx.git(["checkout", "--quiet", "-B", opts.branch]);
    return fx;
  }

  private static async prepare(opts: GitFixtureOptions): Promise<GitFixture> {
    let url = opts.url;
    if (url === undefined) {
      if (!opts.server || !opts.repo) throw new Error("GitFixture needs `url` or `server` and `repo`");
      if (opts.createRepo !== false && opts.server.createRepo) await opts.server.createRepo(opts.repo);
      url = opts.server.repoUrl(opts.repo);
    }
    if (/\/\/[^/]*@/.test(url)) throw new Error("GitFixture: pass the token as `token`, not in the URL");
    const workDir = opts.workDir ? resolve(opts.workDir) : await mkdtemp(join(tmpdir(), "nio-git-fixture-"));
    await mkdir(workDir, { recursive: true });
    return new GitFixture(workDir, url, opts.identity ?? FIXTURE_IDENTITY, opts.gitBin ?? "git", {
      token: opts.token,
      ownsWorkDir: opts.workDir === undefined,
    });
  }

  setToken(token: string | undefined): void {
    this.token = token;
  }

  /** Environment for every git command: no user/system config, fixed identity, no prompts, auth header if any. */
  env(date?: Date): NodeJS.ProcessEnv {
    const when = date ? `${Math.floor(date.getTime() / 1000)} +0000` : undefined;
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
      HOME: this.workDir,
      LANG: "C",
      LC_ALL: "C",
      TZ: "UTC",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_TERMINAL_PROMPT: "0",
      GIT_ASKPASS: "/bin/false",
      SSH_ASKPASS: "/bin/false",
      GIT_AUTHOR_NAME: this.identity.name,
      GIT_AUTHOR_EMAIL: this.identity.email,
      GIT_COMMITTER_NAME: this.identity.name,
      GIT_COMMITTER_EMAIL: this.identity.email,
      ...(when ? { GIT_AUTHOR_DATE: when, GIT_COMMITTER_DATE: when } : {}),
    };
    const config: [string, string][] = [
      ["commit.gpgSign", "false"],
      ["tag.gpgSign", "false"],
      ["core.autocrlf", "false"],
      ["advice.detachedHead", "false"],
    ];
    if (this.token !== undefined) {
      const basic = Buffer.from(`git:${this.token}`, "utf8").toString("base64");
      config.push(["http.extraHeader", `Authorization: Basic ${basic}`]);
    }
    env.GIT_CONFIG_COUNT = String(config.length);
    config.forEach(([key, value], i) => {
      env[`GIT_CONFIG_KEY_${i}`] = key;
      env[`GIT_CONFIG_VALUE_${i}`] = value;
    });
    return env;
  }

  /** Runs `git <args>` in the work tree; throws with git's stderr (never the token) on failure. */
  async git(args: readonly string[], opts: { date?: Date; input?: string } = {}): Promise<string> {
    const res = await run(this.gitBin, args, { cwd: this.workDir, env: this.env(opts.date), input: opts.input });
    if (res.code !== 0) {
      throw new Error(`git ${args.join(" ")} exited ${res.code}: ${(res.stderr || res.stdout).trim()}`);
    }
    return res.stdout;
  }

  private path(rel: string): string {
    const p = normalize(join(this.workDir, rel));
    const r = relative(this.workDir, p);
    if (isAbsolute(rel) || r.startsWith("..") || r === "" || r.split(/[\\/]/)[0] === ".git") {
      throw new Error(`GitFixture: ${JSON.stringify(rel)} is not a file path inside the work tree`);
    }
    return p;
  }

  /** Writes files (nested paths create directories). */
  async writeFiles(files: Record<string, FileContent>): Promise<void> {
    for (const [rel, content] of Object.entries(files)) {
      const p = this.path(rel);
      await mkdir(dirname(p), { recursive: true });
      await writeFile(p, content);
    }
  }

  async removeFiles(paths: readonly string[]): Promise<void> {
    for (const rel of paths) await rm(this.path(rel), { recursive: true, force: true });
  }

  /**
   * Copies a directory tree (e.g. the project's `nix/` flake) into the work tree at `dest` (default: same base
   * name, use "." for the root). `.git`, `result*` links and anything `skip` rejects are left out.
   */
  async copyDir(src: string, dest?: string, skip?: (relPath: string) => boolean): Promise<void> {
    const from = resolve(src);
    const target = dest === "." ? this.workDir : this.path(dest ?? basename(from));
    await cp(from, target, {
      recursive: true,
      force: true,
      filter: (source) => {
        const rel = relative(from, source);
        if (rel === "") return true;
        const name = basename(source);
        if (name === ".git" || /^result(-.*)?$/.test(name)) return false;
        return !skip?.(rel);
      },
    });
  }

  /** Stages everything and commits; returns the new commit id. */
  async commit(message: string, opts: CommitOptions = {}): Promise<string> {
    await this.git(["add", "--all"]);
    const args = ["commit", "--quiet", "--no-verify", "--file", "-"];
    if (opts.allowEmpty) args.push("--allow-empty");
    await this.git(args, { date: opts.date, input: message });
    return this.revParse("HEAD");
  }

  async revParse(rev: string): Promise<string> {
    return (await this.git(["rev-parse", "--verify", `${rev}^{}`])).trim();
  }

  async currentBranch(): Promise<string> {
    return (await this.git(["symbolic-ref", "--short", "HEAD"])).trim();
  }

  /** Switches to a branch, creating it at the current commit when it does not exist. */
  async checkout(branch: string): Promise<void> {
    const exists = await run(this.gitBin, ["rev-parse", "--verify", "--quiet", `refs/heads/${branch}`], {
      cwd: this.workDir,
      env: this.env(),
    });
    await this.git(exists.code === 0 ? ["checkout", "--quiet", branch] : ["checkout", "--quiet", "-b", branch]);
  }

  /** Pushes HEAD (or `source`) to `refs/heads/<branch>` (default: the current branch); returns the pushed commit. */
  async push(branch?: string, opts: { force?: boolean; source?: string } = {}): Promise<string> {
    const target = branch ?? (await this.currentBranch());
    const source = opts.source ?? "HEAD";
    const commit = await this.revParse(source);
    await this.git(["push", "--quiet", "origin", `${opts.force ? "+" : ""}${commit}:refs/heads/${target}`]);
    return commit;
  }

  /** Creates a tag (lightweight, or annotated with `message`); returns the id of the tagged commit. */
  async tag(name: string, opts: TagOptions = {}): Promise<string> {
    const args = ["tag"];
    if (opts.force) args.push("--force");
    if (opts.message !== undefined) args.push("--annotate", "--file", "-");
    args.push(name, opts.target ?? "HEAD");
    await this.git(args, { input: opts.message });
    return this.revParse(`refs/tags/${name}`);
  }

  /** Pushes a tag; returns the id the tag ref points to (the tag object for annotated tags). */
  async pushTag(name: string, opts: { force?: boolean } = {}): Promise<string> {
    await this.git(["push", "--quiet", "origin", `${opts.force ? "+" : ""}refs/tags/${name}:refs/tags/${name}`]);
    return (await this.git(["rev-parse", "--verify", `refs/tags/${name}`])).trim();
  }

  /** Writes files, commits and pushes the current branch; returns the commit id. */
  async commitAndPush(files: Record<string, FileContent>, message: string, opts: CommitOptions = {}): Promise<string> {
    await this.writeFiles(files);
    const commit = await this.commit(message, opts);
    await this.push();
    return commit;
  }

  /** Copies a directory into the repository (see `copyDir`), commits and pushes; returns the commit id. */
  async pushDir(src: string, message: string, dest?: string): Promise<string> {
    await this.copyDir(src, dest);
    const commit = await this.commit(message);
    await this.push();
    return commit;
  }

  /** Removes the work tree when the fixture created it. */
  async cleanup(): Promise<void> {
    if (this.ownsWorkDir) await rm(this.workDir, { recursive: true, force: true });
  }
}

/**
 * The files of a directory tree as `{ "<prefix>/<relative path>": content }`, ready for `commitAndPush` — e.g. the
 * project's own nix/ flake pushed under the seed's configurationSubdir "nix".
 */
export async function readTreeFiles(root: string, prefix: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out[`${prefix}/${relative(root, p)}`] = await readFile(p, "utf8");
    }
  };
  await walk(root);
  return out;
}

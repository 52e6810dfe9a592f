/**
 * A real smart-HTTP git server for the testbed: a small `node:http` server that runs `git http-backend` as a CGI
 * program per request. It serves fetch/clone (upload-pack, protocol v0/v1/v2, shallow, fetch of any commit by id)
 * and push (receive-pack), with optional HTTP Basic token auth, and records every request so tests and benchmarks
 * can count git traffic (in memory and, optionally, as JSON lines in a log file).
 */
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createHash, timingSafeEqual } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { isAbsolute, join, resolve, sep } from "node:path";
import { runChecked } from "./util/process.js";

export type GitService = "git-upload-pack" | "git-receive-pack";

/** One HTTP request the server answered. Never contains credentials. */
export interface GitRequestRecord {
  method: string;
  /** Repository path relative to the root dir, e.g. `configs.git` (empty when the URL names none). */
  repo: string;
  /** The git service the request belongs to, when it is a smart-HTTP request. */
  service: GitService | undefined;
  /** Request path without the query string. */
  path: string;
  status: number;
  /** Epoch milliseconds when the request arrived. */
  time: number;
  durationMs: number;
}

export type GitRequestFilter =
  | Partial<Pick<GitRequestRecord, "method" | "repo" | "service" | "status" | "path">>
  | ((record: GitRequestRecord) => boolean);

export interface GitServerOptions {
  /** Directory holding the bare repositories (created when missing). */
  rootDir: string;
  host?: string;
  /** TCP port; a free one is chosen when omitted or 0. */
  port?: number;
  /** When set, every request needs HTTP Basic auth with this password (any user name). */
  token?: string;
  /** Append one JSON line per request (a {@link GitRequestRecord}) to this file. */
  requestLogFile?: string;
  /** The git executable (default `git` from PATH). */
  gitBin?: string;
}

export interface GitServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly rootDir: string;
  /** The request log since the start or the last {@link resetCounts}. */
  readonly requests: readonly GitRequestRecord[];
  /** Whether a token is currently required. */
  readonly authRequired: boolean;
  /** Clone URL of a repository (`name` gets a `.git` suffix when it has none). */
  repoUrl(name: string): string;
  /** Creates a bare repository that accepts pushes; returns its directory. Existing repositories are kept. */
  createRepo(name: string): Promise<string>;
  countRequests(filter?: GitRequestFilter): number;
  resetCounts(): void;
  /** Turns token auth on (with this token) or off (`undefined`). */
  setToken(token: string | undefined): void;
  stop(): Promise<void>;
}

const REALM = "nio-testbed-git";
const MAX_CGI_HEADER_BYTES = 64 * 1024;

/** Settings every http-backend (and the upload-pack/receive-pack it starts) runs with. */
const BACKEND_CONFIG: readonly (readonly [string, string])[] = [
  ["http.receivepack", "true"],
  ["http.uploadpack", "true"],
  ["uploadpack.allowReachableSHA1InWant", "true"],
  ["uploadpack.allowAnySHA1InWant", "true"],
  ["uploadpack.allowTipSHA1InWant", "true"],
  ["uploadpack.allowFilter", "true"],
  ["receive.denyCurrentBranch", "ignore"],
  ["core.bigFileThreshold", "512m"],
];

/** Normalises a repository name: no leading slash, `.git` suffix, no `..` or empty segments. */
export function repoName(name: string): string {
  const trimmed = name.replace(/^\/+|\/+$/g, "");
  const segments = trimmed.split("/");
  if (trimmed === "" || segments.some((s) => s === "" || s === "." || s === "..")) {
    throw new Error(`invalid repository name ${JSON.stringify(name)}`);
  }
  return trimmed.endsWith(".git") ? trimmed : `${trimmed}.git`;
}

/** Splits a smart-HTTP request path into repository and service. */
export function classifyGitPath(
  path: string,
  query: URLSearchParams,
): { repo: string; service: GitService | undefined } {
  const suffixes: readonly (readonly [RegExp, GitService | "query" | undefined])[] = [
    [/\/info\/refs$/, "query"],
    [/\/git-upload-pack$/, "git-upload-pack"],
    [/\/git-receive-pack$/, "git-receive-pack"],
    [/\/(HEAD|objects\/.*|info\/.*)$/, undefined],
  ];
  for (const [re, svc] of suffixes) {
    const m = re.exec(path);
    if (!m) continue;
    const repo = path.slice(0, m.index).replace(/^\/+/, "");
    if (svc !== "query") return { repo, service: svc };
    const q = query.get("service");
    return { repo, service: q === "git-upload-pack" || q === "git-receive-pack" ? q : undefined };
  }
  return { repo: path.replace(/^\/+/, ""), service: undefined };
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/** Constant-time check of an `Authorization: Basic ...` header against the token. Returns the user name on success. */
export function checkBasicAuth(header: string | undefined, token: string): string | undefined {
  if (!header) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m?.[1]) return undefined;
  const decoded = Buffer.from(m[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  // compare fixed-length digests so neither content nor length leaks through timing
  return timingSafeEqual(digest(password), digest(token)) ? user || "git" : undefined;
}

/** Reads the JSON-lines request log a server wrote with `requestLogFile` (e.g. a detached `git-server-main`). */
export async function readGitRequestLog(file: string): Promise<GitRequestRecord[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return [];
  }
  const out: GitRequestRecord[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      out.push(JSON.parse(line) as GitRequestRecord);
    } catch {
      // a line being written concurrently; skip it
    }
  }
  return out;
}

export function matchesFilter(record: GitRequestRecord, filter: GitRequestFilter | undefined): boolean {
  if (filter === undefined) return true;
  if (typeof filter === "function") return filter(record);
  return (Object.keys(filter) as (keyof typeof filter)[]).every((k) => filter[k] === record[k]);
}

/** Creates (or keeps) a bare repository under `rootDir` configured for pushes over HTTP and fetch by commit id. */
export async function createBareRepo(rootDir: string, name: string, gitBin = "git"): Promise<string> {
  const dir = join(rootDir, repoName(name));
  await mkdir(dir, { recursive: true });
  const env = gitEnv();
  await runChecked(gitBin, ["init", "--quiet", "--bare", "--initial-branch=main", dir], { env });
  for (const [key, value] of BACKEND_CONFIG) {
    await runChecked(gitBin, ["--git-dir", dir, "config", key, value], { env });
  }
  return dir;
}

/** Environment for git commands that must not read the user's or system's git configuration. */
function gitEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: process.env.HOME ?? "/",
    LANG: "C",
    LC_ALL: "C",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    ...extra,
  };
}

function backendEnv(
  rootDir: string,
  req: IncomingMessage,
  url: URL,
  remoteUser: string | undefined,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = gitEnv({
    GIT_PROJECT_ROOT: rootDir,
    GIT_HTTP_EXPORT_ALL: "1",
    GIT_HTTP_MAX_REQUEST_BUFFER: "100M",
    GATEWAY_INTERFACE: "CGI/1.1",
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    SERVER_SOFTWARE: "nio-testbed-git",
    REQUEST_METHOD: req.method ?? "GET",
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.replace(/^\?/, ""),
    REMOTE_ADDR: req.socket.remoteAddress ?? "127.0.0.1",
    GIT_CONFIG_COUNT: String(BACKEND_CONFIG.length),
  });
  BACKEND_CONFIG.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  const h = req.headers;
  if (h["content-type"]) env.CONTENT_TYPE = h["content-type"];
  if (h["content-length"]) env.CONTENT_LENGTH = h["content-length"];
  if (h["content-encoding"]) env.HTTP_CONTENT_ENCODING = h["content-encoding"];
  const proto = h["git-protocol"];
  if (typeof proto === "string") env.HTTP_GIT_PROTOCOL = proto;
  if (remoteUser !== undefined) {
    env.REMOTE_USER = remoteUser;
    env.AUTH_TYPE = "Basic";
  }
  return env;
}

/** Finds the end of the CGI header block (`\r\n\r\n` or `\n\n`); returns [headerEnd, bodyStart]. */
function findHeaderEnd(buf: Buffer): [number, number] | undefined {
  const crlf = buf.indexOf("\r\n\r\n");
  const lf = buf.indexOf("\n\n");
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return [crlf, crlf + 4];
  if (lf >= 0) return [lf, lf + 2];
  return undefined;
}

function parseCgiHeaders(block: string): { status: number; headers: [string, string][] } {
  let status = 200;
  const headers: [string, string][] = [];
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === "status") {
      const code = Number.parseInt(value, 10);
      if (Number.isFinite(code)) status = code;
    } else {
      headers.push([name, value]);
    }
  }
  return { status, headers };
}

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", ...headers });
  res.end(`${text}\n`);
}

class GitHttpServer implements GitServer {
  readonly rootDir: string;
  readonly host: string;
  port = 0;
  private token: string | undefined;
  private readonly log: GitRequestRecord[] = [];
  private readonly children = new Set<ChildProcess>();
  private logStream: WriteStream | undefined;
  private readonly server: Server;
  private readonly gitBin: string;

  constructor(private readonly opts: GitServerOptions) {
    this.rootDir = resolve(opts.rootDir);
    this.host = opts.host ?? "127.0.0.1";
    this.token = opts.token === "" ? undefined : opts.token;
    this.gitBin = opts.gitBin ?? "git";
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  get url(): string {
    const host = this.host.includes(":") ? `[${this.host}]` : this.host;
    return `http://${host}:${this.port}`;
  }

  get requests(): readonly GitRequestRecord[] {
    return this.log;
  }

  get authRequired(): boolean {
    return this.token !== undefined;
  }

  async listen(): Promise<void> {
    await mkdir(this.rootDir, { recursive: true });
    if (this.opts.requestLogFile) this.logStream = createWriteStream(this.opts.requestLogFile, { flags: "a" });
    await new Promise<void>((ok, fail) => {
      this.server.once("error", fail);
      this.server.listen({ host: this.host, port: this.opts.port ?? 0 }, () => {
        this.server.off("error", fail);
        ok();
      });
    });
    const addr = this.server.address();
    if (!addr || typeof addr === "string") throw new Error("git server has no TCP address");
    this.port = addr.port;
  }

  repoUrl(name: string): string {
    return `${this.url}/${repoName(name)}`;
  }

  createRepo(name: string): Promise<string> {
    return createBareRepo(this.rootDir, name, this.gitBin);
  }

  countRequests(filter?: GitRequestFilter): number {
    return this.log.filter((r) => matchesFilter(r, filter)).length;
  }

  resetCounts(): void {
    this.log.length = 0;
  }

  setToken(token: string | undefined): void {
    this.token = token === "" ? undefined : token;
  }

  async stop(): Promise<void> {
    for (const child of this.children) child.kill("SIGKILL");
    await new Promise<void>((ok) => {
      this.server.close(() => ok());
      this.server.closeAllConnections();
    });
    const stream = this.logStream;
    this.logStream = undefined;
    if (stream) await new Promise<void>((ok) => stream.end(() => ok()));
  }

  private record(req: IncomingMessage, url: URL, status: number, started: number): void {
    const { repo, service } = classifyGitPath(url.pathname, url.searchParams);
    const rec: GitRequestRecord = {
      method: req.method ?? "GET",
      repo,
      service,
      path: url.pathname,
      status,
      time: started,
      durationMs: Date.now() - started,
    };
    this.log.push(rec);
    this.logStream?.write(`${JSON.stringify(rec)}\n`);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const started = Date.now();
    const url = new URL(req.url ?? "/", "http://git.invalid");
    let recorded = false;
    const finish = (status: number): void => {
      if (recorded) return;
      recorded = true;
      this.record(req, url, status, started);
    };
    res.once("finish", () => finish(res.statusCode));
    res.once("close", () => finish(res.headersSent ? res.statusCode : 499));

    let remoteUser: string | undefined;
    if (this.token !== undefined) {
      remoteUser = checkBasicAuth(req.headers.authorization, this.token);
      if (remoteUser === undefined) {
        req.resume();
        plain(res, 401, "authentication required", { "WWW-Authenticate": `Basic realm="${REALM}"` });
        return;
      }
    }
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      plain(res, 400, "bad path");
      return;
    }
    if (path.split("/").some((s) => s === "..") || !isAbsolute(path) || path.includes(`${sep}${sep}`)) {
      plain(res, 400, "bad path");
      return;
    }
    this.runBackend(req, res, url, remoteUser);
  }

  private runBackend(req: IncomingMessage, res: ServerResponse, url: URL, remoteUser: string | undefined): void {
    const child = spawn(this.gitBin, ["http-backend"], {
      env: backendEnv(this.rootDir, req, url, remoteUser),
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.children.add(child);
    const stderr: Buffer[] = [];
    let stderrBytes = 0;
    child.stderr.on("data", (d: Buffer) => {
      if (stderrBytes < 16 * 1024) stderr.push(d);
      stderrBytes += d.length;
    });
    child.once("error", (err) => {
      this.children.delete(child);
      plain(res, 500, `cannot run git http-backend: ${err.message}`);
    });
    child.once("close", (code) => {
      this.children.delete(child);
      if (!res.headersSent) {
        const detail = Buffer.concat(stderr).toString("utf8").trim();
        plain(res, 502, `git http-backend exited ${code ?? "?"} without a response${detail ? `: ${detail}` : ""}`);
      }
    });
    // request body -> CGI stdin (streamed; a client that goes away just closes the pipe)
    child.stdin.on("error", () => undefined);
    req.pipe(child.stdin);
    req.once("aborted", () => child.kill("SIGTERM"));
    res.once("close", () => {
      if (child.exitCode === null && !res.writableFinished) child.kill("SIGTERM");
    });
    this.pipeResponse(child, res);
  }

  /** Parses the CGI header block from stdout, then streams the rest of stdout as the response body. */
  private pipeResponse(child: ChildProcessWithoutNullStreams, res: ServerResponse): void {
    const stdout = child.stdout;
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = findHeaderEnd(head);
      if (!end) {
        if (head.length > MAX_CGI_HEADER_BYTES) {
          stdout.removeListener("data", onData);
          child.kill("SIGKILL");
          plain(res, 502, "git http-backend sent no header block");
        }
        return;
      }
      stdout.removeListener("data", onData);
      stdout.pause();
      const { status, headers } = parseCgiHeaders(head.subarray(0, end[0]).toString("latin1"));
      res.statusCode = status;
      for (const [name, value] of headers) res.appendHeader(name, value);
      const rest = head.subarray(end[1]);
      if (rest.length > 0) res.write(rest);
      stdout.pipe(res);
    };
    stdout.on("data", onData);
  }
}

/** Starts a git smart-HTTP server in this process. */
export async function startGitServer(opts: GitServerOptions): Promise<GitServer> {
  const server = new GitHttpServer(opts);
  await server.listen();
  return server;
}

/**
 * Runs the testbed git server as its own (detached) process:
 *
 *   node dist/src/git-server-main.js --root <dir> [--host 127.0.0.1] [--port 0] [--token-file <file>] [--log-file <file>]
 *
 * Prints one JSON line `{"url":...,"port":...,"pid":...}` on stdout once it listens. Every request is appended to
 * the log file (default `<root>/requests.log`) as a JSON line; count them with `readGitRequestLog`. SIGHUP re-reads
 * the token file (a missing or empty file turns auth off); SIGTERM/SIGINT stop the server.
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { startGitServer, type GitServer } from "./git-server.js";

async function readToken(file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return undefined;
  try {
    const token = (await readFile(file, "utf8")).trim();
    return token === "" ? undefined : token;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      root: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      "token-file": { type: "string" },
      "log-file": { type: "string" },
    },
    strict: true,
  });
  if (!values.root) throw new Error("--root <dir> is required");
  const rootDir = resolve(values.root);
  const port = Number.parseInt(values.port ?? "0", 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${values.port}`);
  const tokenFile = values["token-file"];
  const server: GitServer = await startGitServer({
    rootDir,
    host: values.host,
    port,
    token: await readToken(tokenFile),
    requestLogFile: resolve(values["log-file"] ?? join(rootDir, "requests.log")),
  });
  process.on("SIGHUP", () => {
    readToken(tokenFile).then(
      (token) => server.setToken(token),
      () => undefined,
    );
  });
  const shutdown = (): void => {
    server.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
  process.stdout.write(`${JSON.stringify({ url: server.url, port: server.port, pid: process.pid })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`git-server: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

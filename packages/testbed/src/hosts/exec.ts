/** Running a command on a simulated host over SSH (ssh2, host key verified), for tests and tools. */
import { Client } from "ssh2";

import type { Host, HostUser } from "./host.js";

export interface HostExecOptions {
  /** The client's private key (OpenSSH format), authorized on the host for `user`. */
  privateKey: Buffer | string;
  /** Default root. */
  user?: HostUser;
  stdin?: Buffer | string;
  /** Pin this host key ("ssh-ed25519 AAAA..."); default: the host's current key. */
  hostKey?: string;
  /** Default 60 s; the command is abandoned (and the connection closed) after that. */
  timeoutMs?: number;
}

export interface HostExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `command` (a shell command line, as sshd runs it) on `host`; resolves with its exit code and output. */
export async function hostExec(host: Host, command: string, opts: HostExecOptions): Promise<HostExecResult> {
  const pinned = opts.hostKey ?? (await host.hostPublicKey());
  return new Promise((resolve, reject) => {
    const client = new Client();
    const timer = setTimeout(() => {
      client.end();
      reject(new Error(`${command} on ${host.name}: no answer within ${opts.timeoutMs ?? 60_000} ms`));
    }, opts.timeoutMs ?? 60_000);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      client.end();
      reject(err);
    };
    client.on("error", fail);
    // Without this every small SSH packet waits for the peer's delayed ACK (~40 ms each on loopback).
    client.once("connect", () => client.setNoDelay(true));
    client.on("ready", () => {
      client.exec(command, (err, stream) => {
        if (err) {
          fail(err);
          return;
        }
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let code = -1;
        stream.on("data", (d: Buffer) => out.push(d));
        stream.stderr.on("data", (d: Buffer) => errOut.push(d));
        stream.on("exit", (c: number | null) => (code = c ?? 255));
        stream.on("close", () => {
          clearTimeout(timer);
          client.end();
          resolve({
            code,
            stdout: Buffer.concat(out).toString("utf8"),
            stderr: Buffer.concat(errOut).toString("utf8"),
          });
        });
        stream.end(opts.stdin ?? "");
      });
    });
    client.connect({
      host: host.address,
      port: host.port,
      username: opts.user ?? "root",
      privateKey: opts.privateKey,
      readyTimeout: 10_000,
      hostVerifier: (key: Buffer): boolean => `ssh-ed25519 ${key.toString("base64")}` === pinned,
    });
  });
}

/** Like {@link hostExec}, but throws when the command exits non-zero; resolves with its stdout. */
export async function hostExecChecked(host: Host, command: string, opts: HostExecOptions): Promise<string> {
  const res = await hostExec(host, command, opts);
  if (res.code !== 0) throw new Error(`${command} on ${host.name} exited ${res.code}: ${res.stderr}`);
  return res.stdout;
}

/** Small network probes against a host's sshd. */
import { connect } from "node:net";

import { Client } from "ssh2";

/** Resolves true once the server at address:port has sent its SSH identification line. */
export function sshBanner(address: string, port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: address, port });
    let data = "";
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.on("data", (d: Buffer) => {
      data += d.toString("latin1");
      if (data.includes("\n")) done(data.startsWith("SSH-"));
    });
    sock.on("error", () => done(false));
    sock.on("close", () => done(false));
  });
}

/**
 * The host key the server at address:port presents, as "ssh-ed25519 AAAA..." (the key exchange is abandoned right
 * after the server proved it holds the key, so no user is ever authenticated).
 */
export function scanHostKey(address: string, port: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let key: Buffer | undefined;
    const timer = setTimeout(() => finish(new Error("timed out")), timeoutMs);
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      client.removeAllListeners();
      client.on("error", () => undefined);
      client.end();
      if (key) resolve(`${keyType(key)} ${key.toString("base64")}`);
      else reject(err ?? new Error("no host key received"));
    };
    client.on("error", (err) => finish(err));
    client.on("close", () => finish());
    client.connect({
      host: address,
      port,
      username: "testbed-probe",
      readyTimeout: timeoutMs,
      algorithms: { serverHostKey: ["ssh-ed25519"] },
      hostVerifier: (k: Buffer): boolean => {
        key = k;
        return false;
      },
    });
  });
}

/** The key type named at the start of an SSH wire-format public key blob. */
export function keyType(blob: Buffer): string {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString("latin1");
}

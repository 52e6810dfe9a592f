/** Simulated hosts for SSH-level tests: a fleet from the testbed plus an operator key authorized on it. */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { startHosts, type Fleet, type Host } from "@nio/testbed";

import type { SshTarget } from "../../src/ssh/index.js";

const run = promisify(execFile);

export interface KeyPair {
  privateKey: Buffer;
  /** "ssh-ed25519 AAAA… comment" */
  publicKey: string;
}

/** A fresh unencrypted key pair made by ssh-keygen in `dir`. */
export async function generateKey(
  dir: string,
  name: string,
  type: "ed25519" | "rsa" | "ecdsa" = "ed25519",
): Promise<KeyPair> {
  const file = join(dir, name);
  await run("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", `nio-test-${name}`, "-f", file]);
  return { privateKey: await readFile(file), publicKey: (await readFile(`${file}.pub`, "utf8")).trim() };
}

export interface HostLab {
  dir: string;
  fleet: Fleet;
  /** The operator key, authorized for root and deploy on every host. */
  key: KeyPair;
  target(host: Host, user?: "root" | "deploy"): SshTarget;
  destroy(): Promise<void>;
}

/** Starts `count` hosts in a fresh temp dir with a fresh operator key. */
export async function startHostLab(count: number, opts: { toolsDir?: string } = {}): Promise<HostLab> {
  const dir = await mkdtemp(join(tmpdir(), "nio-ssh-test-"));
  const key = await generateKey(dir, "operator");
  let fleet: Fleet;
  try {
    fleet = await startHosts({ dir, count, operatorPublicKey: key.publicKey, toolsDir: opts.toolsDir });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    fleet,
    key,
    target: (host, user = "root") => ({ host: host.address, port: host.port, user, privateKey: key.privateKey }),
    destroy: async () => {
      await fleet.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** How many logins the host's sshd accepted so far (one per authenticated connection). */
export async function acceptedLogins(host: Host): Promise<number> {
  const log = await readFile(host.logFile, "utf8");
  return log.split("\n").filter((l) => l.startsWith("Accepted publickey for ")).length;
}

/** Arguments that would do harm (or at least change meaning) if a shell saw them unquoted. */
export const NASTY_ARGS: readonly string[] = [
  "; rm -rf /",
  "$(touch /tmp/pwned-subst)",
  "`touch /tmp/pwned-backtick`",
  "a'b\"c",
  "'",
  "''",
  '"',
  "\\",
  "back\\slash\\",
  "\\'",
  "'\\''",
  "line1\nline2",
  "\n",
  "*",
  "/*",
  "?",
  "[a-z]*",
  "~",
  "~root",
  "$HOME",
  "${IFS}",
  "$'\\x41'",
  "!!",
  "#comment",
  "a #b",
  ">/tmp/pwned-redirect",
  "< /etc/passwd",
  "| touch /tmp/pwned-pipe",
  "&& touch /tmp/pwned-and",
  "& touch /tmp/pwned-bg",
  "{a,b}",
  "-n",
  "--",
  "",
  " ",
  "\t",
  "tab\there",
  "ünïcødé ✓ 日本",
  "\x01\x1b[31mred\x7f",
  "x".repeat(10_000),
];

/** Files NASTY_ARGS would create if any of them were run by a shell. */
export const NASTY_MARKERS: readonly string[] = [
  "/tmp/pwned-subst",
  "/tmp/pwned-backtick",
  "/tmp/pwned-redirect",
  "/tmp/pwned-pipe",
  "/tmp/pwned-and",
  "/tmp/pwned-bg",
  "/tmp/pwned-prog",
];

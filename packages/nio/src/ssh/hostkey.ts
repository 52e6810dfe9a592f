/**
 * Host keys in OpenSSH one-line format ("ssh-ed25519 AAAA…"), the form status.sshHostKey and spec.sshHostKey use.
 * The base64 part is the SSH wire-format blob (string key type, then key data) that ssh2's hostVerifier receives.
 */
import type { ServerHostKeyAlgorithm } from "ssh2";

import { SshInvalidArgumentError } from "./errors.js";

const KEY_TYPE = /^[A-Za-z0-9][A-Za-z0-9@.+_-]{0,63}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The key type named at the start of a wire-format public key blob, or undefined if the blob is malformed. */
export function blobKeyType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len >= blob.length) return undefined;
  const type = blob.subarray(4, 4 + len).toString("latin1");
  return KEY_TYPE.test(type) ? type : undefined;
}

/** "ssh-ed25519 AAAA…" from the raw key blob the server presented. Throws on a malformed blob. */
export function formatHostKey(keyBlob: Buffer): string {
  const type = blobKeyType(keyBlob);
  if (type === undefined) throw new TypeError("malformed SSH public key blob");
  return `${type} ${keyBlob.toString("base64")}`;
}

export interface ParsedHostKey {
  type: string;
  blob: Buffer;
}

/** Parses "<type> <base64> [comment]"; undefined unless the base64 decodes to a blob of that same type. */
export function parseHostKey(line: string): ParsedHostKey | undefined {
  if (typeof line !== "string" || line.length > 16384) return undefined;
  const [type, b64] = line.trim().split(/\s+/);
  if (type === undefined || b64 === undefined || !KEY_TYPE.test(type) || !BASE64.test(b64)) return undefined;
  const blob = Buffer.from(b64, "base64");
  if (blobKeyType(blob) !== type) return undefined;
  return { type, blob };
}

/** The canonical "<type> <base64>" form (comment dropped); throws {@link SshInvalidArgumentError} if malformed. */
export function normalizeHostKey(line: string): string {
  const parsed = parseHostKey(line);
  if (!parsed) {
    throw new SshInvalidArgumentError("the expected host key is not an OpenSSH public key line ('<type> <base64>')");
  }
  return `${parsed.type} ${parsed.blob.toString("base64")}`;
}

/** Whether two key lines name the same key (type and key blob; comments and spacing ignored). False if malformed. */
export function sameHostKey(a: string, b: string): boolean {
  const x = parseHostKey(a);
  const y = parseHostKey(b);
  return x !== undefined && y !== undefined && x.type === y.type && x.blob.equals(y.blob);
}

/** ssh2's default host key algorithms, in its order (Node 20 always supports ed25519). */
const DEFAULT_HOST_KEY_ALGORITHMS: readonly ServerHostKeyAlgorithm[] = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
];

const ALGORITHMS_FOR_KEY_TYPE: Record<string, readonly ServerHostKeyAlgorithm[]> = {
  "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
};

/**
 * Host key algorithms to offer, the expected key's first (as OpenSSH does with known_hosts), so a server with keys of
 * several types presents the one we know instead of failing verification with another. The others stay allowed: a
 * server that lost the expected key then presents a different one, which fails as a reported mismatch.
 */
export function hostKeyAlgorithms(expected: string | undefined): ServerHostKeyAlgorithm[] {
  const type = expected === undefined ? undefined : parseHostKey(expected)?.type;
  if (type === undefined) return [...DEFAULT_HOST_KEY_ALGORITHMS];
  const preferred = DEFAULT_HOST_KEY_ALGORITHMS.filter((a) => (ALGORITHMS_FOR_KEY_TYPE[type] ?? [type]).includes(a));
  return [...preferred, ...DEFAULT_HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a))];
}

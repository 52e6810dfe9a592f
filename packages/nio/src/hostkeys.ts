import { createHash } from "node:crypto";
import { sameHostKey } from "./ssh/index.js";

/** OpenSSH-style fingerprint of a public key line ("ssh-ed25519 AAAA… [comment]"): `SHA256:<base64, no padding>`. */
export function fingerprint(keyLine: string): string {
  const blob = keyLine.trim().split(/\s+/)[1] ?? "";
  return `SHA256:${createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64").replace(/=+$/, "")}`;
}

/** Whether an accept-host-key annotation value names this key: the key line itself or its SHA256 fingerprint. */
export function acceptsKey(annotation: string | undefined, presented: string): boolean {
  if (!annotation) return false;
  const a = annotation.trim();
  return a === fingerprint(presented) || sameHostKey(a, presented);
}

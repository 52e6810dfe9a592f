import { createHash } from "node:crypto";

/** OpenSSH-style fingerprint of a public key line ("ssh-ed25519 AAAA… [comment]"): `SHA256:<base64, no padding>`. */
export function fingerprint(keyLine: string): string {
  const blob = keyLine.trim().split(/\s+/)[1] ?? "";
  return `SHA256:${createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64").replace(/=+$/, "")}`;
}

/** Type and key material of a public key line, without the comment. */
export function normalizeHostKey(keyLine: string): string {
  const [type = "", blob = ""] = keyLine.trim().split(/\s+/);
  return `${type} ${blob}`;
}

/** Whether an accept-host-key annotation value names this key: the key line itself or its SHA256 fingerprint. */
export function acceptsKey(annotation: string | undefined, presented: string): boolean {
  if (!annotation) return false;
  const a = annotation.trim();
  return a === fingerprint(presented) || normalizeHostKey(a) === normalizeHostKey(presented);
}

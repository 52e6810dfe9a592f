import { readFile } from "node:fs/promises";
import { DEFAULT_SSH_KEY_SECRET_KEY } from "@nio/api";
import { StalledError, type Informer } from "@nio/runtime";
import type { NioConfig } from "./config.js";
import type { MachineObject, SecretObject } from "./resources.js";
import { secretValue } from "./secrets.js";
import type { SshTarget } from "./ssh/index.js";

/** Where NIO connects: spec.ipAddress when set, else spec.hostname. */
export function machineAddress(m: MachineObject): string {
  return m.spec.ipAddress ?? m.spec.hostname;
}

/** The key in force: pinned (spec.sshHostKey) wins over recorded (status.sshHostKey); none on first contact. */
export function expectedHostKey(m: MachineObject): string | undefined {
  return m.spec.sshHostKey ?? m.status?.sshHostKey;
}

export function usesSudo(m: MachineObject): boolean {
  return (m.spec.sshUser ?? "root") !== "root";
}

/** The SSH target of a Machine: its key from spec.sshKeySecretRef (same namespace), else the operator's SSH_KEY_PATH. */
export async function machineTarget(
  m: MachineObject,
  secrets: Informer<SecretObject>,
  config: Pick<NioConfig, "defaultSshKeyPath">,
): Promise<SshTarget> {
  const ref = m.spec.sshKeySecretRef;
  let privateKey: Buffer;
  if (ref) {
    privateKey = secretValue(secrets, m.metadata.namespace ?? "", ref.name, ref.key ?? DEFAULT_SSH_KEY_SECRET_KEY);
  } else if (config.defaultSshKeyPath) {
    privateKey = await readFile(config.defaultSshKeyPath);
  } else {
    throw new StalledError(
      "InvalidSpec",
      "spec.sshKeySecretRef: required when the operator has no default key (SSH_KEY_PATH is not set)",
    );
  }
  return {
    host: machineAddress(m),
    port: m.spec.sshPort ?? 22,
    user: m.spec.sshUser ?? "root",
    privateKey,
  };
}

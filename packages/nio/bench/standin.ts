// A nixos-rebuild stand-in for diagnostics (BENCH_STANDIN=sleep / PROFILE_STANDIN=sleep): it only sleeps the host's
// slow-apply seconds, links /run/current-system and appends a minimal record (no bash, jq or sha256sum), so the hosts'
// CPU time is what NIO itself causes there (sshd, the apply wrapper, the upload).
import { chmod, cp, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot } from "@nio/testbed";

const SLEEP_STANDIN = `#!/bin/sh
start=$(date +%s%3N) time=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
slow=$(cat /opt/testbed/control/slow-apply 2>/dev/null) || slow=0
sleep "\${slow:-0}"
sys=/nix/store/00000000000000000000000000000000-nixos-system-bench
mkdir -p "$sys" /var/log/testbed && ln -sfn "$sys" /run/current-system
printf '{"tool":"nixos-rebuild","time":"%s","durationMs":%s,"argv":[],"user":"root","result":"success","exitCode":0}\\n' \\
  "$time" "$(($(date +%s%3N) - start))" >> /var/log/testbed/nixos-rebuild.jsonl
`;

/** A copy of the testbed's host tools in `dir` with the sleeping stand-in as nixos-rebuild; returns its path. */
export async function sleepStandInTools(dir: string): Promise<string> {
  const toolsDir = join(dir, "host-tools");
  await cp(join(repoRoot, "packages/testbed/host-tools"), toolsDir, { recursive: true });
  await writeFile(join(toolsDir, "nixos-rebuild"), SLEEP_STANDIN);
  await chmod(join(toolsDir, "nixos-rebuild"), 0o755);
  return toolsDir;
}

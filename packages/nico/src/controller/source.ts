import { Reason } from "@nio/api";
import { WaitingError, classifyError } from "@nio/runtime";
import { gitAuthFromSecret, type git as gitApi } from "@nio/nio";
import type { ClusterControllerDeps, Scope } from "./controller.js";

/**
 * The commit the cluster rolls out: `spec.ref` resolved with a ref listing (no clone), at most once per
 * NICO_CLUSTER_RECONCILE_INTERVAL or when the source or the reconcile-requested-at annotation changes. Nodes get
 * the commit id, not the ref, so a push rolls through the nodes in order instead of reaching all of them at once.
 * When the git server is unreachable the last resolved commit stays in force.
 */
export async function resolveClusterCommit(deps: ClusterControllerDeps, s: Scope): Promise<string> {
  const spec = s.cluster.spec;
  const source = `${spec.gitRepo}#${spec.ref ?? ""}#${spec.credentialsRef?.name ?? ""}`;
  const cached = deps.commits.get(s.key);
  if (cached && isFresh(deps, s, cached, source)) return cached.commit;
  try {
    const resolved = await deps.git.resolveRef(spec.gitRepo, spec.ref, gitAuth(deps, s));
    deps.commits.set(s.key, { commit: resolved.commit, at: s.now.getTime(), source });
    if (s.status.commit && s.status.commit !== resolved.commit) {
      deps.recorder.event(
        s.cluster,
        "Normal",
        "NewCommit",
        `${spec.ref ?? "HEAD"} moved to ${resolved.commit.slice(0, 12)}: rolling out control plane first, then workers`,
      );
    }
    s.status.commit = resolved.commit;
    return resolved.commit;
  } catch (err) {
    const c = classifyError(err);
    if (s.status.commit && cached?.source === source) return s.status.commit;
    throw new WaitingError(
      c.reason === "AuthFailed" ? Reason.GitAuthenticationFailed : Reason.GitError,
      `cannot resolve ${spec.ref ?? "HEAD"} of ${spec.gitRepo}: ${c.message}`,
      30_000,
    );
  }
}

type CachedCommit = { commit: string; at: number; source: string };

function isFresh(deps: ClusterControllerDeps, s: Scope, cached: CachedCommit, source: string): boolean {
  if (cached.source !== source) return false;
  return s.now.getTime() - cached.at < deps.config.clusterReconcileIntervalSeconds * 1000;
}

function gitAuth(deps: ClusterControllerDeps, s: Scope): gitApi.GitAuth | undefined {
  return gitAuthFromSecret(deps.secrets, s.cluster.metadata.namespace ?? "", s.cluster.spec.credentialsRef);
}

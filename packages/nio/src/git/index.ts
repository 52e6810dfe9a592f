export { GitError, isGitError, type GitErrorReason } from "./errors.js";
export { DEFAULT_GIT_USERNAME, type GitAuth, type ResolvedRef } from "./remote.js";
export { normaliseGitUrl, isCommitId } from "./url.js";
export type { FetchStep } from "./fetch.js";
export {
  createGitSource,
  type GitSource,
  type GitSourceLogger,
  type GitSourceOptions,
  type GitSourceStats,
  type TreeLease,
} from "./source.js";

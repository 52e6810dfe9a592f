export { WorkspacePathError, validateRelativePath, writeFileInside } from "./paths.js";
export {
  hashTree,
  materializeWorkspace,
  tarOf,
  type AdditionalFile,
  type MaterializeOptions,
  type Workspace,
} from "./workspace.js";

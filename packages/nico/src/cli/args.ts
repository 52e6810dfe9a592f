/** Command-line arguments of `nico render`. */
import { parseArgs } from "node:util";
import { formats } from "@nio/api";

/** A mistake in how the command was called: exit code 2 with the usage text. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export type RenderSource =
  | { kind: "api"; cluster: string; namespace: string; kubeconfig: string | undefined }
  | { kind: "file"; file: string; cluster: string | undefined; namespace: string | undefined };

export interface RenderOptions {
  source: RenderSource;
  /** The flake directory to copy (its root becomes the output's root). */
  flake: string;
  /** Where the copy with cluster.nix goes. */
  out: string;
  /** Write into an existing non-empty --out. */
  force: boolean;
}

export type ParsedRenderArgs = { help: true } | ({ help: false } & RenderOptions);

export const DEFAULT_NAMESPACE = "default";

export const RENDER_USAGE = `Usage:
  nico render --cluster <name> [-n <namespace>] [--kubeconfig <path>] --flake <dir> --out <dir> [--force]
  nico render -f <file.yaml> [--cluster <name>] [-n <namespace>] --flake <dir> --out <dir> [--force]

Renders the cluster.nix NICO would render for a KubernetesCluster into a copy of a flake directory, so the flake can
be inspected and built offline (e.g. \`nix flake show <out>\`).

The cluster, its Machines and the Secrets their sshKeySecretRef name come from the Kubernetes API (--cluster), or
from a multi-document YAML file (-f) holding a KubernetesCluster, Machines and optional Secrets. Nodes are selected
as the operator selects them (spec.controlPlane / spec.dataPlane; control plane first). A Machine whose Secret is
missing contributes no authorized key (a warning says so).

Options:
  --cluster <name>       KubernetesCluster to render (with -f: which one, when the file holds several)
  -n, --namespace <ns>   its namespace (default "default"; with -f: objects without a namespace are in it)
  --kubeconfig <path>    kubeconfig (default $KUBECONFIG, then ~/.kube/config)
  -f, --file <path>      read the objects from this YAML file instead of the API
  --flake <dir>          flake directory to copy (e.g. nix/); symlinks leaving it are skipped, never followed
  --out <dir>            output directory; must not exist or be empty
  --force                write into a non-empty --out (files of the same name are replaced; others are kept)
  -h, --help             show this help

Exit codes: 0 rendered, 1 error (the message names the field), 2 usage error.
`;

const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const OBJECT_NAME = new RegExp(formats.OBJECT_NAME.pattern, "u");

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") throw new UsageError(`${flag} <dir> is required`);
  return value;
}

/** Parses the arguments after `nico render` (a leading "render" is tolerated). Throws {@link UsageError}. */
export function parseRenderArgs(argv: readonly string[]): ParsedRenderArgs {
  const args = argv[0] === "render" ? argv.slice(1) : [...argv];
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        cluster: { type: "string" },
        namespace: { type: "string", short: "n" },
        kubeconfig: { type: "string" },
        file: { type: "string", short: "f" },
        flake: { type: "string" },
        out: { type: "string" },
        force: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return { help: true };
  return { help: false, source: sourceOf(values), ...outputOf(values) };
}

interface Values {
  cluster?: string;
  namespace?: string;
  kubeconfig?: string;
  file?: string;
  flake?: string;
  out?: string;
  force?: boolean;
}

function sourceOf(v: Values): RenderSource {
  if (v.cluster !== undefined && (v.cluster.length > 253 || !OBJECT_NAME.test(v.cluster))) {
    throw new UsageError(`--cluster ${JSON.stringify(v.cluster)}: ${formats.OBJECT_NAME.patternMessage}`);
  }
  if (v.namespace !== undefined && !NAMESPACE.test(v.namespace)) {
    throw new UsageError(`--namespace ${JSON.stringify(v.namespace)}: must be a namespace name (a DNS label)`);
  }
  if (v.file !== undefined) {
    if (v.file === "") throw new UsageError("-f needs a file name");
    if (v.kubeconfig !== undefined)
      throw new UsageError("--kubeconfig cannot be combined with -f (nothing is read from the API)");
    return { kind: "file", file: v.file, cluster: v.cluster, namespace: v.namespace };
  }
  if (v.cluster === undefined) throw new UsageError("one of --cluster <name> or -f <file.yaml> is required");
  return { kind: "api", cluster: v.cluster, namespace: v.namespace ?? DEFAULT_NAMESPACE, kubeconfig: v.kubeconfig };
}

function outputOf(v: Values): Omit<RenderOptions, "source"> {
  return { flake: required(v.flake, "--flake"), out: required(v.out, "--out"), force: v.force ?? false };
}

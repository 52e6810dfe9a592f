/** NixosConfiguration (nio.homystack.com/v1alpha1): this machine runs this flake attribute from this git commit. */
import {
  dateTime,
  gitSourceProperties,
  localObjectRef,
  resourceSchema,
  secretKeyRef,
  statusBasics,
  type Resource,
} from "./common.js";
import { ABSOLUTE_PATH, FILE_MODE, FLAKE_REF, RELATIVE_PATH } from "./formats.js";
import { ATTEMPT_RESULTS } from "./names.js";
import { arr, bool, obj, str, type Infer } from "./schema.js";

/** Largest inline file content, in characters. */
export const MAX_INLINE_LENGTH = 262144;
export const MAX_FILES = 64;

const inline = str({ description: "The file content, inline.", maxLength: MAX_INLINE_LENGTH });

const fileSecretRef = secretKeyRef(
  "Secret in the same namespace holding the file content.",
  "Key in the Secret. Default: the file name (the last segment of path).",
);

const count = (...set: boolean[]): number => set.filter(Boolean).length;

export const additionalFileValueSchema = obj({
  description: "The file content: exactly one of inline, secretRef or nixosFacter: true.",
  properties: {
    inline,
    secretRef: fileSecretRef,
    nixosFacter: bool({
      description: "true: the machine's nixos-facter hardware report (JSON), generated on the machine.",
    }),
  },
  rules: [
    {
      name: "exactlyOneFileValue",
      rule: "(has(self.inline) ? 1 : 0) + (has(self.secretRef) ? 1 : 0) + (has(self.nixosFacter) && self.nixosFacter ? 1 : 0) == 1",
      message: "must set exactly one of inline, secretRef or nixosFacter: true",
      check: (v) => count(v.inline !== undefined, v.secretRef !== undefined, v.nixosFacter === true) === 1,
    },
  ],
});

export const hostFileValueSchema = obj({
  description: "The file content: exactly one of inline or secretRef.",
  properties: { inline, secretRef: fileSecretRef },
  rules: [
    {
      name: "exactlyOneHostFileValue",
      rule: "(has(self.inline) ? 1 : 0) + (has(self.secretRef) ? 1 : 0) == 1",
      message: "must set exactly one of inline or secretRef",
      check: (v) => count(v.inline !== undefined, v.secretRef !== undefined) === 1,
    },
  ],
});

export const nixosConfigurationSpecSchema = obj({
  description: "Which flake attribute from which git repository runs on which machine.",
  properties: {
    ...gitSourceProperties(
      "Directory of the flake inside the repository, relative (no leading '/' or '-', no '.' or '..' segments). Default: the repository root.",
    ),
    flake: str({
      ...FLAKE_REF,
      description:
        "Flake attribute to apply, relative to configurationSubdir: '#attr', '.#attr' or 'relative/dir#attr' (attr names nixosConfigurations.<attr>).",
    }),
    fullInstall: bool({
      default: false,
      description:
        "true: install the machine from scratch with nixos-anywhere (wipes its disks) the first time; later changes use nixos-rebuild switch. Reinstall with the nio.homystack.com/reinstall-requested-at annotation.",
    }),
    machineRef: localObjectRef("The Machine (same namespace) to apply the configuration to.", "Name of the Machine."),
    additionalFiles: arr(
      obj({
        description: "A file written into the flake source before building.",
        properties: {
          path: str({
            ...RELATIVE_PATH,
            description:
              "Path of the file relative to configurationSubdir (no leading '/' or '-', no '.' or '..' segments).",
          }),
          value: additionalFileValueSchema,
        },
        required: ["path", "value"],
      }),
      {
        description:
          "Files written into the flake source before building. They end up in the world-readable Nix store: use hostFiles for secrets (a secretRef here draws a Warning event).",
        maxItems: MAX_FILES,
        listType: "map",
        listMapKeys: ["path"],
      },
    ),
    hostFiles: arr(
      obj({
        description: "A file delivered over SSH onto the machine, atomically, owned by root; never in the Nix store.",
        properties: {
          path: str({ ...ABSOLUTE_PATH, description: "Absolute path of the file on the machine." }),
          mode: str({
            ...FILE_MODE,
            default: "0400",
            description: 'Octal file mode, e.g. "0600" or "640" (no setuid, setgid or sticky bits).',
          }),
          value: hostFileValueSchema,
        },
        required: ["path", "value"],
      }),
      {
        description:
          "Files delivered over SSH straight onto the machine (e.g. secrets the configuration reads by path string).",
        maxItems: MAX_FILES,
        listType: "map",
        listMapKeys: ["path"],
      },
    ),
    onRemoveFlake: str({
      ...FLAKE_REF,
      description:
        "Flake attribute applied when the NixosConfiguration is deleted, e.g. '#minimal' (same syntax and source as flake).",
    }),
    suspend: bool({ default: false, description: "true: stop reconciling (deletion still runs)." }),
  },
  required: ["gitRepo", "flake", "machineRef"],
});

export const nixosConfigurationStatusSchema = obj({
  description: "Observed state of the configuration, written by NIO.",
  properties: {
    ...statusBasics("Ready, Suspended and the kstatus conditions Reconciling and Stalled."),
    appliedCommit: str({
      description: "Git commit last applied completely; kept when a later apply fails or the machine is unreachable.",
      maxLength: 64,
    }),
    lastAppliedTime: dateTime("When appliedCommit was applied."),
    targetMachine: str({ description: "Name of the Machine the configuration is applied to.", maxLength: 253 }),
    fullInstallCompleted: bool({ description: "Whether the full install (nixos-anywhere) has completed." }),
    appliedDigest: str({
      description:
        "Digest of everything the last complete apply used: commit, flake, subdirectory and the content of additionalFiles and hostFiles, referenced Secrets included. A different desired digest re-applies; an equal one never does.",
      maxLength: 80,
    }),
    lastHandledReinstallAt: str({
      description:
        "The value of the nio.homystack.com/reinstall-requested-at annotation the last full install handled.",
      maxLength: 256,
    }),
    lastAttempt: obj({
      description: "The last apply attempt, successful or not (secrets redacted).",
      properties: {
        commit: str({ description: "Git commit the attempt applied.", maxLength: 64 }),
        started: dateTime("When the attempt started."),
        finished: dateTime("When the attempt finished."),
        result: str({ description: "Outcome of the attempt.", enum: ATTEMPT_RESULTS }),
        message: str({ description: "Summary of the outcome.", maxLength: 32768 }),
        logTail: str({ description: "Last lines of the apply log.", maxLength: 65536 }),
      },
    }),
  },
});

export const nixosConfigurationSchema = resourceSchema(
  "A NixosConfiguration keeps one Machine on one flake attribute from one git repository and records the commit it runs.",
  nixosConfigurationSpecSchema,
  nixosConfigurationStatusSchema,
);

export type NixosConfigurationSpec = Infer<typeof nixosConfigurationSpecSchema>;
export type NixosConfigurationSpecInput = Infer<typeof nixosConfigurationSpecSchema, "input">;
export type NixosConfigurationStatus = Infer<typeof nixosConfigurationStatusSchema>;
export type AdditionalFile = NonNullable<NixosConfigurationSpec["additionalFiles"]>[number];
export type HostFile = NonNullable<NixosConfigurationSpec["hostFiles"]>[number];
export type NixosConfiguration = Resource<NixosConfigurationSpec, NixosConfigurationStatus>;

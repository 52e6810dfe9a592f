/** Per-kind validators (what the controllers call before acting, reporting Stalled=True, reason=InvalidSpec). */
import { kubernetesClusterSchema, type KubernetesCluster } from "./kubernetescluster.js";
import { machineSchema, type Machine } from "./machine.js";
import { nixosConfigurationSchema, type NixosConfiguration } from "./nixosconfiguration.js";
import type { ObjectNode } from "./schema.js";
import { applyDefaults, validate, type ValidationError } from "./validate.js";

export type ParseResult<T> = { ok: true; value: T } | { ok: false; errors: ValidationError[] };

function parser<T>(schema: ObjectNode): (obj: unknown) => ParseResult<T> {
  return (obj) => {
    const errors = validate(schema, obj);
    return errors.length > 0 ? { ok: false, errors } : { ok: true, value: applyDefaults(schema, obj) as T };
  };
}

/** Validates a whole Machine object (apiVersion, kind, metadata, spec, status); [] when valid. */
export function validateMachine(obj: unknown): ValidationError[] {
  return validate(machineSchema, obj);
}

/** Validates a whole NixosConfiguration object; [] when valid. */
export function validateNixosConfiguration(obj: unknown): ValidationError[] {
  return validate(nixosConfigurationSchema, obj);
}

/** Validates a whole KubernetesCluster object; [] when valid. */
export function validateKubernetesCluster(obj: unknown): ValidationError[] {
  return validate(kubernetesClusterSchema, obj);
}

/** Validates and returns a defaulted copy typed as a Machine. */
export const parseMachine: (obj: unknown) => ParseResult<Machine> = parser(machineSchema);
/** Validates and returns a defaulted copy typed as a NixosConfiguration. */
export const parseNixosConfiguration: (obj: unknown) => ParseResult<NixosConfiguration> =
  parser(nixosConfigurationSchema);
/** Validates and returns a defaulted copy typed as a KubernetesCluster. */
export const parseKubernetesCluster: (obj: unknown) => ParseResult<KubernetesCluster> = parser(kubernetesClusterSchema);

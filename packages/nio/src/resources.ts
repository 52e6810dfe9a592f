import { MACHINE, NIXOS_CONFIGURATION, type Machine, type NixosConfiguration } from "@nio/api";
import type { KubeObject, ResourceType } from "@nio/runtime";

export const machines: ResourceType = { ...pick(MACHINE), namespaced: true };
export const nixosConfigurations: ResourceType = { ...pick(NIXOS_CONFIGURATION), namespaced: true };
export const secrets: ResourceType = { group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true };

function pick(k: { group: string; version: string; plural: string; kind: string }): Omit<ResourceType, "namespaced"> {
  return { group: k.group, version: k.version, plural: k.plural, kind: k.kind };
}

export type MachineObject = Machine & KubeObject;
export type ConfigObject = NixosConfiguration & KubeObject;

export interface SecretObject extends KubeObject {
  data?: Record<string, string>;
  type?: string;
}

/**
 * Compile-time checks: the types inferred from the schemas are what the controllers expect, and our objects fit
 * client-node's KubernetesObject. A mismatch fails `tsc -b`, not a test run.
 */
import { expect } from "chai";
import type { KubernetesObject, V1ObjectMeta } from "@kubernetes/client-node";
import type {
  AdditionalFile,
  ClusterNetwork,
  ClusterNode,
  Condition,
  HostFile,
  KubernetesCluster,
  KubernetesClusterSpec,
  Machine,
  MachinePlacement,
  MachineSpec,
  MachineSpecInput,
  MachineStatus,
  NixosConfiguration,
  NixosConfigurationSpec,
  NixosConfigurationStatus,
  ObjectMeta,
} from "../src/index.js";

/** Mutual assignability (catches optional vs required, missing or extra fields, wider or narrower types). */
type Equal<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;

type SecretRef = { name: string; key?: string };

export type Checks = [
  Assert<
    Equal<
      MachineSpec,
      {
        hostname: string;
        sshUser: string;
        sshPort: number;
        ipAddress?: string;
        sshKeySecretRef?: { name: string; key: string };
        sshHostKey?: string;
      }
    >
  >,
  Assert<
    Equal<
      MachineSpecInput,
      {
        hostname: string;
        sshUser?: string;
        sshPort?: number;
        ipAddress?: string;
        sshKeySecretRef?: { name: string; key?: string };
        sshHostKey?: string;
      }
    >
  >,
  Assert<
    Equal<
      MachineStatus["hardwareFacts"],
      | {
          system?: string;
          virtualisation?: string;
          cpu?: { model?: string; cores?: number; threads?: number };
          memoryBytes?: number;
          disks?: { name?: string; model?: string; sizeBytes?: number }[];
          nics?: { name?: string; macAddress?: string; driver?: string }[];
        }
      | undefined
    >
  >,
  Assert<
    Equal<
      Condition,
      {
        type: string;
        status: "True" | "False" | "Unknown";
        lastTransitionTime: string;
        reason: string;
        message: string;
        observedGeneration?: number;
      }
    >
  >,
  Assert<
    Equal<AdditionalFile, { path: string; value: { inline?: string; secretRef?: SecretRef; nixosFacter?: boolean } }>
  >,
  Assert<Equal<HostFile, { path: string; mode: string; value: { inline?: string; secretRef?: SecretRef } }>>,
  Assert<Equal<NixosConfigurationSpec["flake"], string>>,
  Assert<Equal<NixosConfigurationSpec["fullInstall"], boolean>>,
  Assert<Equal<NixosConfigurationSpec["suspend"], boolean>>,
  Assert<Equal<NixosConfigurationSpec["machineRef"], { name: string }>>,
  Assert<
    Equal<
      NonNullable<NixosConfigurationStatus["lastAttempt"]>["result"],
      "Succeeded" | "Failed" | "Unknown" | "InProgress" | undefined
    >
  >,
  Assert<
    Equal<
      ClusterNetwork,
      { interface: string; prefixLength: number; virtualRouterId: number; gateway?: string; nameservers?: string[] }
    >
  >,
  Assert<Equal<KubernetesClusterSpec["rollout"], { maxUnavailable: number }>>,
  Assert<Equal<MachinePlacement["machines"], string[] | undefined>>,
  Assert<Equal<KubernetesClusterSpec["dataPlane"], MachinePlacement | undefined>>,
  Assert<Equal<ClusterNode["role"], "control-plane" | "worker" | undefined>>,
  Assert<
    Equal<
      NonNullable<KubernetesCluster["status"]>["phase"],
      "Pending" | "Provisioning" | "Ready" | "Degraded" | "Deleting" | "Failed" | undefined
    >
  >,
];

// Our kinds are client-node KubernetesObjects, and client-node metadata is our ObjectMeta.
const asKubernetesObjects = (m: Machine, c: NixosConfiguration, k: KubernetesCluster): KubernetesObject[] => [m, c, k];
const asObjectMeta = (m: V1ObjectMeta): ObjectMeta => m;

describe("types", () => {
  it("are checked at compile time", () => {
    expect(asKubernetesObjects).to.be.a("function");
    expect(asObjectMeta).to.be.a("function");
  });
});

import { expect } from "chai";
import {
  ANNOTATIONS,
  ConditionType,
  FINALIZERS,
  KUBERNETES_CLUSTER,
  LABELS,
  MACHINE,
  NIXOS_CONFIGURATION,
  OWNED_CONDITIONS,
  Reason,
  conditionSchema,
  formats,
} from "../src/index.js";

const reasonPattern = new RegExp((conditionSchema.properties.reason as { pattern: string }).pattern, "u");
const typePattern = new RegExp((conditionSchema.properties.type as { pattern: string }).pattern, "u");
const labelKey = new RegExp(formats.LABEL_KEY_PATTERN, "u");

describe("names and conditions", () => {
  it("groups, versions, kinds and plurals", () => {
    expect(MACHINE).to.deep.include({
      apiVersion: "nio.homystack.com/v1alpha1",
      kind: "Machine",
      plural: "machines",
      crdName: "machines.nio.homystack.com",
    });
    expect(NIXOS_CONFIGURATION).to.deep.include({
      apiVersion: "nio.homystack.com/v1alpha1",
      kind: "NixosConfiguration",
      plural: "nixosconfigurations",
    });
    expect(KUBERNETES_CLUSTER).to.deep.include({
      apiVersion: "nico.homystack.com/v1alpha1",
      kind: "KubernetesCluster",
      plural: "kubernetesclusters",
    });
  });

  it("label, annotation and finalizer keys are qualified names", () => {
    for (const key of [...Object.values(LABELS), ...Object.values(ANNOTATIONS), ...Object.values(FINALIZERS)]) {
      expect(labelKey.test(key), key).to.equal(true);
    }
    expect(LABELS.cluster).to.equal("nico.homystack.com/cluster");
    expect(ANNOTATIONS.reconcileRequestedAt).to.equal("nio.homystack.com/reconcile-requested-at");
  });

  it("condition types and reasons are valid metav1.Condition values", () => {
    for (const t of Object.values(ConditionType)) expect(typePattern.test(t), t).to.equal(true);
    for (const r of Object.values(Reason)) expect(reasonPattern.test(r), r).to.equal(true);
    for (const r of ["InvalidSpec", "GitError", "Unreachable", "HostKeyMismatch", "BuildFailed", "Timeout"]) {
      expect(Object.values(Reason)).to.include(r);
    }
    for (const owned of Object.values(OWNED_CONDITIONS)) {
      expect(owned).to.include.members(["Ready", "Reconciling", "Stalled"]);
    }
  });
});

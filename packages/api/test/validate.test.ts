import { expect } from "chai";
import {
  applyDefaults,
  formatValidationErrors,
  kubernetesClusterSchema,
  machineSchema,
  parseKubernetesCluster,
  parseMachine,
  validateMachine,
  validateNixosConfiguration,
} from "../src/index.js";
import { BAD_CASES, GOOD_CASES } from "./cases.js";
import { VALIDATORS, edited, fixture } from "./support.js";

describe("runtime validator", () => {
  describe("refuses every bad case, naming the field and the rule", () => {
    for (const c of BAD_CASES) {
      it(`${c.kind}: ${c.name}`, () => {
        const errors = VALIDATORS[c.kind](edited(c.kind, c));
        const hit = errors.find((e) => e.field === c.field && e.rule === c.rule);
        expect(hit, JSON.stringify(errors)).to.not.equal(undefined);
        expect(hit?.message).to.match(new RegExp(`^${c.field.replace(/[.[\]]/gu, "\\$&")}: \\S`, "u"));
      });
    }
  });

  describe("accepts every good case", () => {
    for (const c of GOOD_CASES) {
      it(`${c.kind}: ${c.name}`, () => {
        expect(VALIDATORS[c.kind](edited(c.kind, c))).to.deep.equal([]);
      });
    }
  });

  it("phrases messages as '<field>: <rule>'", () => {
    const errors = validateNixosConfiguration(
      edited("NixosConfiguration", {
        set: { "spec.configurationSubdir": "../x", "spec.additionalFiles[1].path": "/x" },
      }),
    );
    expect(errors.map((e) => e.message)).to.deep.equal([
      "spec.configurationSubdir: must be a relative path without '.' or '..' segments",
      "spec.additionalFiles[1].path: must be a relative path (no leading '/')",
    ]);
    expect(formatValidationErrors(errors)).to.equal(errors.map((e) => e.message).join("; "));
  });

  it("reports unknown fields (the API server prunes them)", () => {
    const errors = validateMachine(edited("Machine", { set: { "spec.sshPassword": "hunter2" } }));
    expect(errors).to.deep.equal([
      { field: "spec.sshPassword", rule: "unknownField", message: "spec.sshPassword: is not a known field" },
    ]);
  });

  it("skips the CEL twins when a blocking error exists, as the API server does", () => {
    // A pattern error does not block: the CEL twin on the same field still runs.
    const o = edited("NixosConfiguration", { set: { "spec.configurationSubdir": "/a b" } });
    expect(validateNixosConfiguration(o).map((e) => e.rule)).to.deep.equal(["pathCharset", "relativePath"]);
    // A required field is missing: only the structural error is reported.
    const blocked = edited("NixosConfiguration", {
      set: { "spec.configurationSubdir": "/a b", "spec.flake": undefined },
    });
    expect(validateNixosConfiguration(blocked).map((e) => e.rule)).to.deep.equal(["required", "pathCharset"]);
  });

  it("requires spec and an object", () => {
    expect(validateMachine({ apiVersion: "nio.homystack.com/v1alpha1", kind: "Machine" })[0]?.field).to.equal("spec");
    expect(validateMachine("machine")[0]?.rule).to.equal("type");
    expect(validateMachine({ spec: null })[0]?.rule).to.equal("required");
  });

  it("applies the same defaults as the API server", () => {
    expect((applyDefaults(machineSchema, fixture("machine.yaml")) as { spec: unknown }).spec).to.deep.equal({
      hostname: "worker-01",
      ipAddress: "192.168.1.100",
      sshUser: "root",
      sshPort: 22,
      sshKeySecretRef: { name: "worker-ssh-key", key: "ssh-privatekey" },
    });
    const cluster = applyDefaults(kubernetesClusterSchema, fixture("kubernetescluster.yaml")) as {
      spec: Record<string, unknown>;
    };
    expect(cluster.spec.network).to.deep.equal({ interface: "eth0", prefixLength: 24, virtualRouterId: 51 });
    expect(cluster.spec.rollout).to.deep.equal({ maxUnavailable: 1 });
    expect(cluster.spec.fullInstall).to.equal(false);
    expect(cluster.spec.suspend).to.equal(false);
  });

  it("does not modify its input", () => {
    const o = fixture("machine.yaml");
    const copy = structuredClone(o);
    validateMachine(o);
    applyDefaults(machineSchema, o);
    expect(o).to.deep.equal(copy);
  });

  it("parse returns a typed, defaulted copy or the errors", () => {
    const ok = parseMachine(fixture("machine-nico.yaml"));
    expect(ok.ok).to.equal(true);
    if (ok.ok) {
      expect(ok.value.spec.sshPort).to.equal(22);
      expect(ok.value.spec.sshKeySecretRef?.key).to.equal("ssh-privatekey");
    }
    const bad = parseKubernetesCluster(edited("KubernetesCluster", { set: { "spec.controlPlane.count": 9 } }));
    expect(bad.ok).to.equal(false);
    if (!bad.ok) expect(bad.errors[0]?.message).to.equal("spec.controlPlane.count: must be at most 7");
  });
});

import { expect } from "chai";
import { LABELS } from "@nio/api";
import { planSelection, matchesSelector, describeSelector } from "../src/selection/select.js";
import type { ClusterObject, MachineObject } from "../src/resources.js";

function machine(name: string, labels: Record<string, string> = {}, spec: Record<string, unknown> = {}): MachineObject {
  return {
    apiVersion: "nio.homystack.com/v1alpha1",
    kind: "Machine",
    metadata: { name, namespace: "default", labels },
    spec: { hostname: name, ipAddress: "10.0.0.1", ...spec },
  } as MachineObject;
}

function cluster(name: string, spec: Record<string, unknown>): ClusterObject {
  return {
    apiVersion: "nico.homystack.com/v1alpha1",
    kind: "KubernetesCluster",
    metadata: { name, namespace: "default" },
    spec: { gitRepo: "https://git.example/r.git", ...spec },
  } as unknown as ClusterObject;
}

const bySelector = (role: string, count: number): Record<string, unknown> => ({
  machineSelector: { matchLabels: { role } },
  count,
});
const names = (ms: MachineObject[]): string[] => ms.map((m) => m.metadata.name ?? "");

describe("planSelection", () => {
  it("picks count matching machines by name, control plane first, never overlapping", () => {
    const ms = [
      machine("c", { role: "cp" }),
      machine("a", { role: "cp" }),
      machine("b", { role: "cp" }),
      machine("d", { role: "cp" }),
      machine("w2", { role: "w" }),
      machine("w1", { role: "w" }),
    ];
    const plan = planSelection(cluster("k", { controlPlane: bySelector("cp", 3), dataPlane: bySelector("w", 2) }), ms);
    expect(names(plan.controlPlane)).to.deep.equal(["a", "b", "c"]);
    expect(names(plan.workers)).to.deep.equal(["w1", "w2"]);
    expect(plan.shortages).to.deep.equal([]);
    expect(plan.controlPlaneShort).to.equal(false);
  });

  it("keeps machines it already holds (selection persists) and skips machines claimed by another cluster", () => {
    const ms = [
      machine("a", { role: "cp", [LABELS.cluster]: "other", [LABELS.role]: "control-plane" }),
      machine("b", { role: "cp" }),
      machine("z", { role: "cp", [LABELS.cluster]: "k", [LABELS.role]: "control-plane" }),
      machine("y", { role: "cp" }),
    ];
    const plan = planSelection(cluster("k", { controlPlane: bySelector("cp", 2) }), ms);
    expect(names(plan.controlPlane)).to.deep.equal(["z", "b"]);
  });

  it("reports a control-plane shortage naming the selector and the free count", () => {
    const ms = [machine("a", { role: "cp" }), machine("b", { role: "cp", [LABELS.cluster]: "other" })];
    const plan = planSelection(cluster("k", { controlPlane: bySelector("cp", 3) }), ms);
    expect(plan.controlPlaneShort).to.equal(true);
    expect(plan.shortages[0]).to.match(/^need 3 control-plane machines matching role=cp, 1 free/);
    expect(plan.shortages[0]).to.include("b: claimed by cluster other");
  });

  it("refuses machines without an IP, with a non-DNS-label name, or being deleted", () => {
    const ms = [
      machine("noip", { role: "cp" }, { ipAddress: undefined }),
      machine("dotted.name", { role: "cp" }),
      {
        ...machine("gone", { role: "cp" }),
        metadata: { ...machine("gone").metadata, labels: { role: "cp" }, deletionTimestamp: "2026-01-01T00:00:00Z" },
      },
      machine("ok", { role: "cp" }),
    ] as MachineObject[];
    const plan = planSelection(cluster("k", { controlPlane: bySelector("cp", 1) }), ms);
    expect(names(plan.controlPlane)).to.deep.equal(["ok"]);
    const short = planSelection(cluster("k", { controlPlane: bySelector("cp", 2) }), ms);
    expect(short.shortages[0]).to.include("noip: no spec.ipAddress");
    expect(short.shortages[0]).to.include("dotted.name: its name is not a DNS label");
    expect(short.shortages[0]).to.include("gone: being deleted");
  });

  it("explicit machines keep their order; a missing or foreign one is a shortage", () => {
    const ms = [machine("m1"), machine("m2"), machine("m3", { [LABELS.cluster]: "other" })];
    const ok = planSelection(cluster("k", { controlPlane: { machines: ["m2", "m1"] } }), ms);
    expect(names(ok.controlPlane)).to.deep.equal(["m2", "m1"]);
    const bad = planSelection(cluster("k", { controlPlane: { machines: ["m1", "m3", "m9"] } }), ms);
    expect(bad.controlPlaneShort).to.equal(true);
    expect(bad.shortages[0]).to.include("Machine m3: claimed by cluster other");
    expect(bad.shortages[0]).to.include("Machine m9: not found");
  });

  it("a worker shortage does not block the control plane", () => {
    const ms = [machine("a", { role: "cp" }), machine("w1", { role: "w" })];
    const plan = planSelection(cluster("k", { controlPlane: bySelector("cp", 1), dataPlane: bySelector("w", 3) }), ms);
    expect(plan.controlPlaneShort).to.equal(false);
    expect(names(plan.workers)).to.deep.equal(["w1"]);
    expect(plan.shortages[0]).to.match(/^need 3 workers matching role=w, 1 free/);
  });

  it("a machine matching both selectors serves the control plane only; held workers stay workers", () => {
    const ms = [
      machine("a", { kind: "node" }),
      machine("b", { kind: "node" }),
      machine("c", { kind: "node", [LABELS.cluster]: "k", [LABELS.role]: "worker" }),
    ];
    const sel = { machineSelector: { matchLabels: { kind: "node" } } };
    const plan = planSelection(
      cluster("k", { controlPlane: { ...sel, count: 1 }, dataPlane: { ...sel, count: 2 } }),
      ms,
    );
    expect(names(plan.controlPlane)).to.deep.equal(["a"]);
    expect(names(plan.workers)).to.deep.equal(["c", "b"]);
  });

  it("only looks at machines in the cluster's namespace", () => {
    const foreign = {
      ...machine("a", { role: "cp" }),
      metadata: { name: "a", namespace: "elsewhere", labels: { role: "cp" } },
    };
    const plan = planSelection(cluster("k", { controlPlane: bySelector("cp", 1) }), [foreign as MachineObject]);
    expect(plan.controlPlane).to.have.length(0);
  });
});

describe("label selectors", () => {
  const sel = {
    matchLabels: { role: "cp" },
    matchExpressions: [
      { key: "zone", operator: "In" as const, values: ["a", "b"] },
      { key: "broken", operator: "DoesNotExist" as const },
      { key: "rack", operator: "Exists" as const },
      { key: "tier", operator: "NotIn" as const, values: ["old"] },
    ],
  };
  const table: [Record<string, string>, boolean][] = [
    [{ role: "cp", zone: "a", rack: "1" }, true],
    [{ role: "cp", zone: "b", rack: "1", tier: "new" }, true],
    [{ role: "cp", zone: "c", rack: "1" }, false],
    [{ role: "cp", zone: "a" }, false],
    [{ role: "cp", zone: "a", rack: "1", broken: "" }, false],
    [{ role: "cp", zone: "a", rack: "1", tier: "old" }, false],
    [{ role: "worker", zone: "a", rack: "1" }, false],
  ];
  for (const [labels, want] of table) {
    it(`${JSON.stringify(labels)} → ${want}`, () => expect(matchesSelector(labels, sel)).to.equal(want));
  }
  it("describes itself like kubectl", () => {
    expect(describeSelector(sel)).to.equal("role=cp,zone in (a,b),!broken,rack,tier notin (old)");
  });
});

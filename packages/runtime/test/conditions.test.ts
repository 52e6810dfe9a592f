import { expect } from "chai";
import {
  checkKstatusInvariants,
  formatTime,
  getCondition,
  isFalse,
  isTrue,
  markNotReady,
  markReady,
  markReconciling,
  markStalled,
  removeCondition,
  setCondition,
  summarizeReady,
  type Condition,
  type ConditionedObject,
} from "../src/conditions.js";

const T0 = "2025-01-01T00:00:00Z";
const T1 = "2025-01-01T00:05:00Z";
const at0 = { generation: 1, now: T0 };
const at1 = { generation: 2, now: new Date(T1) };

function cond(type: string, status: Condition["status"], reason = "R", extra: Partial<Condition> = {}): Condition {
  return { type, status, reason, message: "m", lastTransitionTime: T0, observedGeneration: 1, ...extra };
}

describe("conditions", () => {
  describe("setCondition", () => {
    const table: {
      name: string;
      list: Condition[] | undefined;
      input: Parameters<typeof setCondition>[1];
      want: Condition[];
    }[] = [
      {
        name: "adds to an empty/undefined list with the current time and generation",
        list: undefined,
        input: { type: "Ready", status: "True", reason: "Succeeded", message: "ok" },
        want: [
          {
            type: "Ready",
            status: "True",
            observedGeneration: 2,
            lastTransitionTime: T1,
            reason: "Succeeded",
            message: "ok",
          },
        ],
      },
      {
        name: "same status: keeps lastTransitionTime, updates reason/message/generation",
        list: [cond("Ready", "False", "Old")],
        input: { type: "Ready", status: "False", reason: "New", message: "new message" },
        want: [
          {
            type: "Ready",
            status: "False",
            observedGeneration: 2,
            lastTransitionTime: T0,
            reason: "New",
            message: "new message",
          },
        ],
      },
      {
        name: "status change: new lastTransitionTime",
        list: [cond("Ready", "False")],
        input: { type: "Ready", status: "True", reason: "Succeeded", message: "ok" },
        want: [
          {
            type: "Ready",
            status: "True",
            observedGeneration: 2,
            lastTransitionTime: T1,
            reason: "Succeeded",
            message: "ok",
          },
        ],
      },
      {
        name: "keeps the order of other conditions and appends new ones",
        list: [cond("A", "True"), cond("B", "True")],
        input: { type: "A", status: "False", reason: "X", message: "x" },
        want: [
          { ...cond("A", "False", "X"), message: "x", lastTransitionTime: T1, observedGeneration: 2 },
          cond("B", "True"),
        ],
      },
    ];
    for (const t of table) {
      it(t.name, () => {
        const before = structuredClone(t.list);
        expect(setCondition(t.list, t.input, at1)).to.deep.equal(t.want);
        expect(t.list, "input not modified").to.deep.equal(before);
      });
    }

    it("is idempotent: setting the same again gives an equal list", () => {
      const once = setCondition([], { type: "Ready", status: "True", reason: "Ok", message: "m" }, at0);
      const twice = setCondition(once, { type: "Ready", status: "True", reason: "Ok", message: "m" }, at1);
      expect(twice).to.deep.equal([{ ...once[0], observedGeneration: 2 }]);
      const same = setCondition(once, { type: "Ready", status: "True", reason: "Ok", message: "m" }, at0);
      expect(same).to.deep.equal(once);
    });

    it("keeps observedGeneration when no generation is given", () => {
      const out = setCondition(
        [cond("A", "True")],
        { type: "A", status: "True", reason: "R", message: "m" },
        { now: T1 },
      );
      expect(out[0]?.observedGeneration).to.equal(1);
    });
  });

  it("get/isTrue/isFalse/remove", () => {
    const list = [cond("Ready", "True"), cond("Stalled", "False")];
    expect(getCondition(list, "Ready")?.status).to.equal("True");
    expect(getCondition(undefined, "Ready")).to.equal(undefined);
    expect(isTrue(list, "Ready")).to.equal(true);
    expect(isTrue(list, "Missing")).to.equal(false);
    expect(isFalse(list, "Stalled")).to.equal(true);
    expect(removeCondition(list, "Ready").map((c) => c.type)).to.deep.equal(["Stalled"]);
    expect(removeCondition(undefined, "Ready")).to.deep.equal([]);
  });

  it("formatTime: seconds precision RFC 3339", () => {
    expect(formatTime(new Date("2025-01-01T00:00:00.123Z"))).to.equal("2025-01-01T00:00:00Z");
    expect(() => formatTime("nonsense")).to.throw(RangeError);
  });

  describe("kstatus helpers", () => {
    const table: {
      name: string;
      run: (l: Condition[]) => Condition[];
      list: Condition[];
      want: Record<string, string | undefined>;
    }[] = [
      {
        name: "markReconciling: Reconciling=True, Ready=Unknown, Stalled removed",
        run: (l) => markReconciling(l, "Progressing", "applying generation 2", at1),
        list: [cond("Ready", "True"), cond("Stalled", "True")],
        want: { Reconciling: "True", Ready: "Unknown", Stalled: undefined },
      },
      {
        name: "markStalled: Stalled=True, Ready=False, Reconciling removed",
        run: (l) => markStalled(l, "InvalidSpec", "bad", at1),
        list: [cond("Reconciling", "True"), cond("Ready", "Unknown")],
        want: { Stalled: "True", Ready: "False", Reconciling: undefined },
      },
      {
        name: "markReady: Ready=True, Reconciling and Stalled removed",
        run: (l) => markReady(l, "Succeeded", "ok", at1),
        list: [cond("Reconciling", "True"), cond("Stalled", "True"), cond("Reachable", "True")],
        want: { Ready: "True", Reconciling: undefined, Stalled: undefined, Reachable: "True" },
      },
      {
        name: "markNotReady: Ready=False, Reconciling kept",
        run: (l) => markNotReady(l, "SshUnreachable", "down", at1),
        list: [cond("Reconciling", "True"), cond("Ready", "Unknown")],
        want: { Ready: "False", Reconciling: "True" },
      },
    ];
    for (const t of table) {
      it(t.name, () => {
        const out = t.run(t.list);
        for (const [type, status] of Object.entries(t.want)) {
          expect(getCondition(out, type)?.status, type).to.equal(status);
        }
        const obj: ConditionedObject = { metadata: { generation: 2 }, status: { conditions: out } };
        expect(checkKstatusInvariants(obj)).to.deep.equal([]);
      });
    }

    it("markStalled copies reason and message to Ready", () => {
      const out = markStalled([], "InvalidSpec", "spec.flake: must start with #", at1);
      expect(getCondition(out, "Ready")).to.include({ status: "False", reason: "InvalidSpec" });
      expect(getCondition(out, "Ready")?.message).to.equal("spec.flake: must start with #");
    });
  });

  describe("summarizeReady", () => {
    const table: {
      name: string;
      list: Condition[];
      negative?: string[];
      positive?: string[];
      want: { status: string; reason: string };
    }[] = [
      { name: "nothing wrong: True Succeeded", list: [], want: { status: "True", reason: "Succeeded" } },
      {
        name: "Stalled wins",
        list: [cond("Stalled", "True", "InvalidSpec"), cond("FetchFailed", "True", "GitError")],
        negative: ["FetchFailed"],
        want: { status: "False", reason: "InvalidSpec" },
      },
      {
        name: "first true negative condition",
        list: [cond("FetchFailed", "False"), cond("ApplyFailed", "True", "NixBuildFailed")],
        negative: ["FetchFailed", "ApplyFailed"],
        want: { status: "False", reason: "NixBuildFailed" },
      },
      {
        name: "positive condition False",
        list: [cond("Reachable", "False", "SshUnreachable")],
        positive: ["Reachable"],
        want: { status: "False", reason: "SshUnreachable" },
      },
      {
        name: "positive condition missing: Unknown",
        list: [],
        positive: ["Reachable"],
        want: { status: "Unknown", reason: "Progressing" },
      },
      {
        name: "Reconciling: Unknown",
        list: [cond("Reconciling", "True", "Applying"), cond("Reachable", "True")],
        positive: ["Reachable"],
        want: { status: "Unknown", reason: "Applying" },
      },
    ];
    for (const t of table) {
      it(t.name, () => {
        const got = summarizeReady(t.list, t.negative ?? [], { positive: t.positive ?? [] });
        expect(got).to.include({ type: "Ready", ...t.want });
      });
    }
    it("uses the given success reason", () => {
      expect(summarizeReady([], [], { success: { reason: "Applied", message: "commit abc" } })).to.deep.equal({
        type: "Ready",
        status: "True",
        reason: "Applied",
        message: "commit abc",
      });
    });
  });

  describe("checkKstatusInvariants", () => {
    const table: { name: string; obj: ConditionedObject; want: RegExp[] }[] = [
      { name: "no status is fine", obj: { metadata: { generation: 1 } }, want: [] },
      {
        name: "Ready=True with Stalled=True",
        obj: { metadata: { generation: 1 }, status: { conditions: [cond("Ready", "True"), cond("Stalled", "True")] } },
        want: [/Ready=True together with Stalled=True/],
      },
      {
        name: "Ready=True with Reconciling=True",
        obj: {
          metadata: { generation: 1 },
          status: { conditions: [cond("Ready", "True"), cond("Reconciling", "True")] },
        },
        want: [/Ready=True together with Reconciling=True/],
      },
      {
        name: "Stalled and Reconciling both True",
        obj: {
          metadata: { generation: 1 },
          status: { conditions: [cond("Stalled", "True"), cond("Reconciling", "True")] },
        },
        want: [/Stalled=True together with Reconciling=True/],
      },
      {
        name: "observedGeneration ahead of generation",
        obj: {
          metadata: { generation: 1 },
          status: { observedGeneration: 2, conditions: [cond("Ready", "True", "R", { observedGeneration: 3 })] },
        },
        want: [/status.observedGeneration 2 > metadata.generation 1/, /Ready: observedGeneration 3/],
      },
      {
        name: "missing reason and lastTransitionTime, bad status, duplicate",
        obj: {
          metadata: { generation: 1 },
          status: {
            conditions: [
              cond("Ready", "True", "", { lastTransitionTime: "" }),
              cond("Ready", "Maybe" as Condition["status"]),
            ],
          },
        },
        want: [/appears more than once/, /Ready: no reason/, /Ready: no valid lastTransitionTime/, /status Maybe/],
      },
      {
        name: "reason not CamelCase",
        obj: { metadata: { generation: 1 }, status: { conditions: [cond("Ready", "True", "not camel")] } },
        want: [/not CamelCase/],
      },
      {
        name: "Reconciling=False should be removed",
        obj: { metadata: { generation: 1 }, status: { conditions: [cond("Reconciling", "False")] } },
        want: [/Reconciling=False should be removed/],
      },
    ];
    for (const t of table) {
      it(t.name, () => {
        const got = checkKstatusInvariants(t.obj);
        expect(got, JSON.stringify(got)).to.have.length(t.want.length);
        for (const re of t.want)
          expect(
            got.some((p) => re.test(p)),
            `${String(re)} in ${JSON.stringify(got)}`,
          ).to.equal(true);
      });
    }
  });
});

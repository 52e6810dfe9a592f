import { expect } from "chai";
import { DESIRED_HASH_ANNOTATION } from "../src/emit.js";
import { planRollout, type RolloutNode } from "../src/rollout.js";
import type { ConfigObject } from "../src/resources.js";

const COMMIT = "a".repeat(40);

/** A configuration in a given state: applied hash `hash` (undefined: never applied), suspended or not, Ready or not. */
function cfg(o: {
  hash: string;
  suspend?: boolean;
  applied?: boolean;
  ready?: boolean;
  stale?: boolean;
}): ConfigObject {
  const generation = 3;
  return {
    metadata: { name: "x", generation, annotations: { [DESIRED_HASH_ANNOTATION]: o.hash } },
    spec: { suspend: o.suspend ?? false },
    status: {
      ...(o.applied === false ? {} : { appliedCommit: COMMIT }),
      conditions: [
        {
          type: "Ready",
          status: o.ready === false ? "False" : "True",
          reason: "Succeeded",
          message: "",
          lastTransitionTime: "2026-01-01T00:00:00Z",
          observedGeneration: o.stale ? generation - 1 : generation,
        },
      ],
    },
  } as unknown as ConfigObject;
}

const node = (
  name: string,
  role: "control-plane" | "worker",
  current?: ConfigObject,
  desiredHash = "new",
): RolloutNode => ({
  name,
  role,
  desiredHash,
  commit: COMMIT,
  current,
});
const suspended = (d: ReturnType<typeof planRollout>): string[] =>
  [...d.suspend.entries()].filter(([, s]) => s).map(([n]) => n);

describe("planRollout", () => {
  it("before initialization only the first control-plane node may apply", () => {
    const nodes = [node("cp0", "control-plane"), node("cp1", "control-plane"), node("w0", "worker")];
    const d = planRollout(nodes, false, 1);
    expect(suspended(d)).to.deep.equal(["cp1", "w0"]);
    expect(d.waitingFor).to.equal("control-plane node cp0");
  });

  it("after initialization control-plane nodes go one at a time, in order", () => {
    const nodes = [
      node("cp0", "control-plane", cfg({ hash: "new" })),
      node("cp1", "control-plane", cfg({ hash: "old", suspend: true, applied: false })),
      node("cp2", "control-plane"),
      node("w0", "worker"),
    ];
    const d = planRollout(nodes, true, 1);
    expect(suspended(d)).to.deep.equal(["cp2", "w0"]);
    expect(d.waitingFor).to.equal("control-plane node cp1");
  });

  it("a Ready verdict about an older generation does not count", () => {
    const nodes = [node("cp0", "control-plane", cfg({ hash: "new", stale: true })), node("cp1", "control-plane")];
    expect(suspended(planRollout(nodes, true, 1))).to.deep.equal(["cp1"]);
  });

  it("new workers all start together once the control plane is up to date", () => {
    const nodes = [
      node("cp0", "control-plane", cfg({ hash: "new" })),
      node("w0", "worker"),
      node("w1", "worker", cfg({ hash: "new", suspend: true, applied: false })),
      node("w2", "worker"),
    ];
    expect(suspended(planRollout(nodes, true, 1))).to.deep.equal([]);
  });

  it("workers running an older spec update at most maxUnavailable at a time", () => {
    const nodes = [
      node("cp0", "control-plane", cfg({ hash: "new" })),
      node("w0", "worker", cfg({ hash: "old" })),
      node("w1", "worker", cfg({ hash: "old" })),
      node("w2", "worker", cfg({ hash: "old" })),
    ];
    expect(suspended(planRollout(nodes, true, 1))).to.deep.equal(["w1", "w2"]);
    expect(suspended(planRollout(nodes, true, 2))).to.deep.equal(["w2"]);
    // w0 released with the new spec and still applying: it holds the only slot.
    const inFlight = [...nodes];
    inFlight[1] = node("w0", "worker", cfg({ hash: "new", ready: false }));
    inFlight[2] = node("w1", "worker", cfg({ hash: "old" }));
    expect(suspended(planRollout(inFlight, true, 1))).to.deep.equal(["w1", "w2"]);
    // w0 done: the next one goes.
    inFlight[1] = node("w0", "worker", cfg({ hash: "new" }));
    expect(suspended(planRollout(inFlight, true, 1))).to.deep.equal(["w2"]);
  });

  it("a new commit holds workers (even up-to-date ones for the old spec) until the control plane has it", () => {
    const nodes = [
      node("cp0", "control-plane", cfg({ hash: "old" })),
      node("cp1", "control-plane", cfg({ hash: "old" })),
      node("w0", "worker", cfg({ hash: "old" })),
    ];
    const d = planRollout(nodes, true, 1);
    expect(suspended(d)).to.deep.equal(["cp1", "w0"]);
  });

  it("up-to-date nodes stay unsuspended even while an earlier node is failing", () => {
    const nodes = [
      node("cp0", "control-plane", cfg({ hash: "new", ready: false })),
      node("cp1", "control-plane", cfg({ hash: "new" })),
    ];
    expect(suspended(planRollout(nodes, true, 1))).to.deep.equal([]);
  });
});

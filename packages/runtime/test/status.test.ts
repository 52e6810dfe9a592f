import { expect } from "chai";
import { checkKstatusInvariants, markReady, markReconciling, type Condition } from "../src/conditions.js";
import { deepEqual, mergePatchFor, patchStatus, snapshot } from "../src/status.js";
import { startTestEnv, type TestEnv } from "./support.js";
import { installWidgetCrd, widget, widgets, type Widget, type WidgetStatus } from "./widgets.js";

describe("status: deepEqual and mergePatchFor", () => {
  const eq: { name: string; a: unknown; b: unknown; want: boolean }[] = [
    { name: "same primitives", a: 1, b: 1, want: true },
    { name: "different primitives", a: 1, b: "1", want: false },
    { name: "null vs undefined", a: null, b: undefined, want: false },
    {
      name: "key order ignored",
      a: { x: 1, y: { p: [1, 2], q: "s" } },
      b: { y: { q: "s", p: [1, 2] }, x: 1 },
      want: true,
    },
    { name: "array order matters", a: [1, 2], b: [2, 1], want: false },
    { name: "array length", a: [1], b: [1, 1], want: false },
    { name: "undefined-valued key counts as absent", a: { x: 1, y: undefined }, b: { x: 1 }, want: true },
    { name: "missing key", a: { x: 1 }, b: { x: 1, y: 2 }, want: false },
    { name: "null value is not absent", a: { x: null }, b: {}, want: false },
    { name: "object vs array", a: {}, b: [], want: false },
    {
      name: "nested differs",
      a: { c: [{ t: "Ready", s: "True" }] },
      b: { c: [{ t: "Ready", s: "False" }] },
      want: false,
    },
    { name: "NaN equals NaN", a: Number.NaN, b: Number.NaN, want: true },
  ];
  for (const t of eq) {
    it(`deepEqual: ${t.name}`, () => {
      expect(deepEqual(t.a, t.b)).to.equal(t.want);
      expect(deepEqual(t.b, t.a), "symmetric").to.equal(t.want);
    });
  }

  const mp: { name: string; before: unknown; after: unknown; want: unknown }[] = [
    { name: "equal: undefined", before: { a: 1, b: [1] }, after: { b: [1], a: 1 }, want: undefined },
    { name: "changed field only", before: { a: 1, b: 2 }, after: { a: 1, b: 3 }, want: { b: 3 } },
    { name: "removed field becomes null", before: { a: 1, b: 2 }, after: { a: 1 }, want: { b: null } },
    { name: "nested", before: { s: { x: 1, y: 1 } }, after: { s: { x: 1, y: 2 } }, want: { s: { y: 2 } } },
    { name: "arrays replaced whole", before: { c: [1, 2] }, after: { c: [1, 3] }, want: { c: [1, 3] } },
    { name: "new object", before: {}, after: { s: { x: 1 } }, want: { s: { x: 1 } } },
    { name: "type change", before: { a: { x: 1 } }, after: { a: "s" }, want: { a: "s" } },
  ];
  for (const t of mp) {
    it(`mergePatchFor: ${t.name}`, () => expect(mergePatchFor(t.before, t.after)).to.deep.equal(t.want));
  }

  it("snapshot is a deep copy", () => {
    const o = { a: { b: [1] } };
    const s = snapshot(o);
    o.a.b.push(2);
    expect(s).to.deep.equal({ a: { b: [1] } });
  });
});

describe("patchStatus (real kube-apiserver)", function () {
  this.timeout(120_000);
  let env: TestEnv;

  before(async () => {
    env = await startTestEnv();
    await installWidgetCrd(env.kube);
  });
  after(async () => env?.stop());

  const patches = (): number => env.kube.requestCounts().patch ?? 0;

  it("writes only when the status changed; an identical second call makes no request", async () => {
    const created = await env.kube.create<Widget>(widgets, widget("w-status"));
    const ctx = { generation: created.metadata.generation, now: new Date() };
    const before = snapshot(created);
    const desired: WidgetStatus = {
      phase: "Ready",
      observedGeneration: created.metadata.generation,
      conditions: markReady([], "Succeeded", "ok", ctx),
    };

    const p0 = patches();
    const first = await patchStatus(env.kube, widgets, before, desired);
    expect(first.written).to.equal(true);
    expect(patches() - p0).to.equal(1);
    expect(first.object?.status).to.deep.equal(desired);
    expect(checkKstatusInvariants(first.object as Widget)).to.deep.equal([]);

    // Same desired status against the fresh object: nothing to write, not a single request.
    const counts = env.kube.requestCounts();
    const second = await patchStatus(env.kube, widgets, first.object as Widget, snapshot(desired));
    expect(second).to.deep.equal({ written: false });
    expect(env.kube.requestCounts()).to.deep.equal(counts);

    // Key order does not matter either.
    const reordered: WidgetStatus = {
      conditions: desired.conditions,
      observedGeneration: desired.observedGeneration,
      phase: "Ready",
    };
    expect((await patchStatus(env.kube, widgets, first.object as Widget, reordered)).written).to.equal(false);
    expect(env.kube.requestCounts()).to.deep.equal(counts);
  });

  it("sends only the changed fields and removes dropped ones", async () => {
    const created = await env.kube.create<Widget>(widgets, widget("w-diff"));
    const ctx = { generation: 1, now: new Date() };
    const conditions: Condition[] = markReconciling([], "Progressing", "working", ctx);
    const r1 = await patchStatus(env.kube, widgets, created, { phase: "Pending", note: "n", conditions });
    const after1 = r1.object as Widget;
    const r2 = await patchStatus(env.kube, widgets, after1, {
      phase: "Ready",
      conditions: markReady(conditions, "Ok", "done", ctx),
    });
    expect(r2.patch).to.have.nested.property("status.phase", "Ready");
    expect(r2.patch).to.have.nested.property("status.note", null);
    const fresh = await env.kube.get<Widget>(widgets, { namespace: "default", name: "w-diff" });
    expect(fresh.status?.note).to.equal(undefined);
    expect(fresh.status?.phase).to.equal("Ready");
    expect(fresh.status?.conditions?.map((c) => c.type)).to.deep.equal(["Ready"]);
    expect(checkKstatusInvariants(fresh)).to.deep.equal([]);
  });

  it("goes through /status: a spec change smuggled into the same patch is not applied", async () => {
    const created = await env.kube.create<Widget>(widgets, widget("w-sub", { size: 1 }));
    // Write the raw merge patch patchStatus would produce, plus a spec change, to the same endpoint.
    await env.kube.patch(
      widgets,
      { namespace: "default", name: "w-sub" },
      { spec: { size: 5 }, status: { phase: "Ready" } },
      "merge",
      { subresource: "status" },
    );
    const fresh = await env.kube.get<Widget>(widgets, { namespace: "default", name: "w-sub" });
    expect(fresh.spec?.size).to.equal(1);
    expect(fresh.status?.phase).to.equal("Ready");
    expect(fresh.metadata.generation).to.equal(created.metadata.generation);

    // And patchStatus itself never touches spec, even when the "before" object carries a changed spec.
    const edited = { ...fresh, spec: { size: 9 } };
    const r = await patchStatus(env.kube, widgets, edited, { phase: "Done" });
    expect(r.written).to.equal(true);
    expect(r.object?.spec?.size).to.equal(1);
    expect(r.object?.status?.phase).to.equal("Done");
  });

  it("with optimisticLock a stale object fails with Conflict", async () => {
    const created = await env.kube.create<Widget>(widgets, widget("w-lock"));
    await env.kube.patch(widgets, { namespace: "default", name: "w-lock" }, { spec: { size: 2 } }, "merge");
    let err: unknown;
    try {
      await patchStatus(env.kube, widgets, created, { phase: "X" }, { optimisticLock: true });
    } catch (e) {
      err = e;
    }
    expect(err).to.have.property("statusCode", 409);
    // Without it the (single-writer) status patch goes through.
    expect((await patchStatus(env.kube, widgets, created, { phase: "X" })).written).to.equal(true);
  });
});

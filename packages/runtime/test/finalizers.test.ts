import { expect } from "chai";
import { waitFor } from "@nio/testbed";
import { ensureFinalizer, hasFinalizer, removeFinalizer } from "../src/finalizers.js";
import { isConflict, isNotFound } from "../src/kube/errors.js";
import type { KubeObject } from "../src/kube/types.js";
import { startTestEnv, type TestEnv } from "./support.js";
import { installWidgetCrd, widget, widgets, type Widget } from "./widgets.js";

const FIN = "runtime.test.example.com/finalizer";
const OTHER = "other.example.com/cleanup";

describe("finalizers (real kube-apiserver)", function () {
  this.timeout(120_000);
  let env: TestEnv;

  before(async () => {
    env = await startTestEnv();
    await installWidgetCrd(env.kube);
  });
  after(async () => env?.stop());

  const key = (name: string): { namespace: string; name: string } => ({ namespace: "default", name });
  const get = (name: string): Promise<Widget> => env.kube.get<Widget>(widgets, key(name));
  const delta = (before: Readonly<Record<string, number>>, verb: string): number =>
    (env.kube.requestCounts()[verb] ?? 0) - (before[verb] ?? 0);

  it("adds the finalizer once; a second call makes no request", async () => {
    const obj = await env.kube.create<Widget>(widgets, widget("f-once"));
    let patched: KubeObject | undefined;
    expect(await ensureFinalizer(env.kube, widgets, obj, FIN, { onPatched: (o) => (patched = o) })).to.equal(true);
    expect(patched?.metadata.finalizers).to.deep.equal([FIN]);
    const fresh = await get("f-once");
    expect(fresh.metadata.finalizers).to.deep.equal([FIN]);

    const counts = env.kube.requestCounts();
    expect(await ensureFinalizer(env.kube, widgets, fresh, FIN)).to.equal(false);
    expect(env.kube.requestCounts()).to.deep.equal(counts);
  });

  it("retries on Conflict by re-reading when the given object is stale", async () => {
    const stale = await env.kube.create<Widget>(widgets, widget("f-stale"));
    await env.kube.patch(widgets, key("f-stale"), { metadata: { labels: { touched: "yes" } } }, "merge");
    const counts = env.kube.requestCounts();
    expect(await ensureFinalizer(env.kube, widgets, stale, FIN)).to.equal(true);
    expect(delta(counts, "patch"), "patch requests").to.equal(2);
    expect(delta(counts, "get"), "re-reads").to.equal(1);
    const fresh = await get("f-stale");
    expect(fresh.metadata.finalizers).to.deep.equal([FIN]);
    expect(fresh.metadata.labels).to.deep.equal({ touched: "yes" });
  });

  it("concurrent writers from the same stale copy don't clobber each other", async () => {
    const obj = await env.kube.create<Widget>(widgets, widget("f-race"));
    const results = await Promise.all([
      ensureFinalizer(env.kube, widgets, obj, FIN),
      ensureFinalizer(env.kube, widgets, obj, OTHER),
      ensureFinalizer(env.kube, widgets, obj, "third.example.com/x"),
    ]);
    expect(results).to.deep.equal([true, true, true]);
    const fresh = await get("f-race");
    expect([...(fresh.metadata.finalizers ?? [])].sort()).to.deep.equal([FIN, OTHER, "third.example.com/x"].sort());
  });

  it("gives up after maxRetries with the Conflict", async () => {
    const stale = await env.kube.create<Widget>(widgets, widget("f-bounded"));
    await env.kube.patch(widgets, key("f-bounded"), { metadata: { labels: { a: "b" } } }, "merge");
    let err: unknown;
    try {
      await ensureFinalizer(env.kube, widgets, stale, FIN, { maxRetries: 0 });
    } catch (e) {
      err = e;
    }
    expect(isConflict(err)).to.equal(true);
    expect(hasFinalizer(await get("f-bounded"), FIN)).to.equal(false);
  });

  it("an object with the finalizer stays while deleting, and goes once it is removed", async () => {
    const obj = await env.kube.create<Widget>(widgets, widget("f-delete"));
    await ensureFinalizer(env.kube, widgets, obj, FIN);
    await env.kube.delete(widgets, key("f-delete"));
    const deleting = await get("f-delete");
    expect(deleting.metadata.deletionTimestamp).to.be.a("string");
    expect(deleting.metadata.finalizers).to.deep.equal([FIN]);

    // No new finalizers on an object being deleted (the API server would refuse): false, no request.
    const counts = env.kube.requestCounts();
    expect(await ensureFinalizer(env.kube, widgets, deleting, OTHER)).to.equal(false);
    expect(env.kube.requestCounts()).to.deep.equal(counts);

    expect(await removeFinalizer(env.kube, widgets, deleting, FIN)).to.equal(true);
    await waitFor("widget gone", async () => {
      try {
        await get("f-delete");
        return undefined;
      } catch (err) {
        if (isNotFound(err)) return true;
        throw err;
      }
    });
    // Removing again from the deleted object is success (nothing left to finalize).
    expect(await removeFinalizer(env.kube, widgets, deleting, FIN)).to.equal(false);
  });

  it("removal keeps a finalizer another writer added concurrently", async () => {
    const obj = await env.kube.create<Widget>(widgets, widget("f-remove-race"));
    await ensureFinalizer(env.kube, widgets, obj, FIN);
    const ours = await get("f-remove-race");
    // Someone else adds theirs after we read.
    await ensureFinalizer(env.kube, widgets, ours, OTHER);
    expect(await removeFinalizer(env.kube, widgets, ours, FIN)).to.equal(true);
    expect((await get("f-remove-race")).metadata.finalizers).to.deep.equal([OTHER]);
    // Not present: false and no request.
    const counts = env.kube.requestCounts();
    expect(await removeFinalizer(env.kube, widgets, await get("f-remove-race"), FIN)).to.equal(false);
    expect(delta(counts, "patch")).to.equal(0);
  });

  it("removing from a stale copy whose server version has no finalizers at all is a no-op", async () => {
    const obj = await env.kube.create<Widget>(widgets, widget("f-gone-fin"));
    await ensureFinalizer(env.kube, widgets, obj, FIN);
    const withFin = await get("f-gone-fin");
    await env.kube.patch(widgets, key("f-gone-fin"), { metadata: { finalizers: null } }, "merge");
    expect(await removeFinalizer(env.kube, widgets, withFin, FIN)).to.equal(false);
    expect((await get("f-gone-fin")).metadata.finalizers).to.equal(undefined);
  });
});

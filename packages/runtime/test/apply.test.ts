import { expect } from "chai";
import {
  AlreadyOwnedError,
  ApplyConflictError,
  applyObject,
  controllerReference,
  createOrPatch,
  setControllerReference,
} from "../src/apply.js";
import type { KubeObject, ResourceType } from "../src/kube/types.js";
import { configMaps, startTestEnv, type TestEnv } from "./support.js";
import { installWidgetCrd, widget, widgets, type Widget } from "./widgets.js";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

function cm(name: string, data: Record<string, string>): ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "default" }, data };
}

const owner = (name: string, uid: string, kind = "Widget"): KubeObject => ({
  apiVersion: "runtime.test.example.com/v1",
  kind,
  metadata: { name, namespace: "default", uid },
});

describe("owner references", () => {
  it("controllerReference builds a controller reference from the resource type", () => {
    expect(controllerReference(owner("w", "u1"), widgets)).to.deep.equal({
      apiVersion: "runtime.test.example.com/v1",
      kind: "Widget",
      name: "w",
      uid: "u1",
      controller: true,
      blockOwnerDeletion: true,
    });
    expect(() => controllerReference({ metadata: { name: "x" } }, widgets)).to.throw(TypeError, /uid/);
  });

  it("setControllerReference adds, updates the same owner, keeps other non-controller owners", () => {
    const child = cm("c", {});
    child.metadata.ownerReferences = [{ apiVersion: "v1", kind: "Other", name: "o", uid: "u0" }];
    setControllerReference(child, owner("w", "u1"));
    expect(child.metadata.ownerReferences).to.have.length(2);
    // Same owner recreated (new uid): the reference is updated in place.
    setControllerReference(child, owner("w", "u2"));
    expect(child.metadata.ownerReferences?.map((r) => r.uid)).to.deep.equal(["u0", "u2"]);
  });

  it("throws AlreadyOwnedError when another object controls it", () => {
    const child = cm("c", {});
    setControllerReference(child, owner("w1", "u1"));
    let err: unknown;
    try {
      setControllerReference(child, owner("w2", "u2"));
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(AlreadyOwnedError);
    expect((err as AlreadyOwnedError).reason).to.equal("AlreadyOwned");
    expect((err as AlreadyOwnedError).owner.name).to.equal("w1");
    expect((err as Error).message).to.match(/already controlled by Widget w1/);
    // A different kind with the same name is a different owner too.
    expect(() => setControllerReference(child, owner("w1", "u3", "Gadget"))).to.throw(AlreadyOwnedError);
  });

  it("refuses cross-namespace owners and owners without apiVersion/kind", () => {
    const child = cm("c", {});
    const other = { ...owner("w", "u"), metadata: { name: "w", namespace: "elsewhere", uid: "u" } };
    expect(() => setControllerReference(child, other)).to.throw(TypeError, /cross-namespace/);
    expect(() => setControllerReference(child, { metadata: { name: "w", uid: "u" } })).to.throw(TypeError);
    // A cluster-scoped owner is fine for a namespaced child.
    const clusterOwner: KubeObject = { apiVersion: "v1", kind: "Namespace", metadata: { name: "n", uid: "u9" } };
    expect(setControllerReference(child, clusterOwner).metadata.ownerReferences?.[0]?.kind).to.equal("Namespace");
  });
});

describe("applyObject and createOrPatch (real kube-apiserver)", function () {
  this.timeout(120_000);
  let env: TestEnv;
  let ownerWidget: Widget;

  before(async () => {
    env = await startTestEnv();
    await installWidgetCrd(env.kube);
    ownerWidget = await env.kube.create<Widget>(widgets, widget("owner"));
  });
  after(async () => env?.stop());

  const counts = (): Readonly<Record<string, number>> => env.kube.requestCounts();
  const delta = (before: Readonly<Record<string, number>>, verb: string): number =>
    (counts()[verb] ?? 0) - (before[verb] ?? 0);

  describe("applyObject", () => {
    it("created, unchanged, updated (reading the object first)", async () => {
      const desired = cm("ssa-1", { a: "1" });
      const r1 = await applyObject(env.kube, configMaps, desired, { fieldManager: "nico" });
      expect(r1.result).to.equal("created");
      expect(r1.object.data).to.deep.equal({ a: "1" });

      const r2 = await applyObject(env.kube, configMaps, desired, { fieldManager: "nico" });
      expect(r2.result).to.equal("unchanged");
      expect(r2.object.metadata.resourceVersion).to.equal(r1.object.metadata.resourceVersion);

      const r3 = await applyObject(env.kube, configMaps, cm("ssa-1", { a: "2" }), { fieldManager: "nico" });
      expect(r3.result).to.equal("updated");
      expect(r3.object.data).to.deep.equal({ a: "2" });
    });

    it("with a cached current object it makes exactly one request", async () => {
      let c = counts();
      const r1 = await applyObject(env.kube, configMaps, cm("ssa-2", { a: "1" }), {
        fieldManager: "nico",
        current: null,
      });
      expect(r1.result).to.equal("created");
      expect(delta(c, "get")).to.equal(0);
      expect(delta(c, "patch")).to.equal(1);
      c = counts();
      const r2 = await applyObject(env.kube, configMaps, cm("ssa-2", { a: "1" }), {
        fieldManager: "nico",
        current: r1.object,
      });
      expect(r2.result).to.equal("unchanged");
      expect(delta(c, "get") + delta(c, "patch")).to.equal(1);
    });

    it("strips server-owned metadata and status from the body", async () => {
      const created = (await applyObject(env.kube, configMaps, cm("ssa-3", { a: "1" }), { fieldManager: "nico" }))
        .object;
      // Re-applying the server's own object (with uid, resourceVersion, managedFields, …) works.
      const again = await applyObject(env.kube, configMaps, { ...created, status: { x: 1 } } as ConfigMap, {
        fieldManager: "nico",
        current: created,
      });
      expect(again.result).to.equal("unchanged");
    });

    it("a field owned by another manager is a typed ApplyConflictError unless forced", async () => {
      await applyObject(env.kube, configMaps, cm("ssa-conflict", { a: "1" }), { fieldManager: "someone-else" });
      let err: unknown;
      try {
        await applyObject(env.kube, configMaps, cm("ssa-conflict", { a: "2" }), { fieldManager: "nico" });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(ApplyConflictError);
      const conflict = err as ApplyConflictError;
      expect(conflict.reason).to.equal("FieldManagerConflict");
      expect(conflict.conflicts).to.deep.equal([{ field: ".data.a", manager: "someone-else" }]);
      expect(conflict.cause).to.have.property("statusCode", 409);

      const forced = await applyObject(env.kube, configMaps, cm("ssa-conflict", { a: "2" }), {
        fieldManager: "nico",
        force: true,
      });
      expect(forced.result).to.equal("updated");
      expect(forced.object.data).to.deep.equal({ a: "2" });
    });

    it("applies a custom resource with a controller reference", async () => {
      const w = setControllerReference(widget("ssa-child", { size: 2 }), ownerWidget, widgets);
      const r = await applyObject(env.kube, widgets, w, { fieldManager: "nico" });
      expect(r.result).to.equal("created");
      expect(r.object.metadata.ownerReferences?.[0]).to.include({ name: "owner", controller: true });
    });
  });

  describe("createOrPatch", () => {
    const key = { namespace: "default", name: "cop-1" };

    it("creates when missing, then unchanged without a write, then updated with a merge patch", async () => {
      let c = counts();
      const r1 = await createOrPatch<ConfigMap>(env.kube, configMaps, key, (o) => {
        o.data = { a: "1" };
        setControllerReference(o, ownerWidget, widgets);
      });
      expect(r1).to.equal("created");
      expect(delta(c, "create")).to.equal(1);
      const created = await env.kube.get<ConfigMap>(configMaps, key);
      expect(created.data).to.deep.equal({ a: "1" });
      expect(created.metadata.ownerReferences?.[0]?.uid).to.equal(ownerWidget.metadata.uid);

      c = counts();
      const r2 = await createOrPatch<ConfigMap>(env.kube, configMaps, key, (o) => {
        o.data = { ...o.data, a: "1" };
        setControllerReference(o, ownerWidget, widgets);
      });
      expect(r2).to.equal("unchanged");
      expect(delta(c, "patch")).to.equal(0);
      expect(delta(c, "get")).to.equal(1);

      c = counts();
      const r3 = await createOrPatch<ConfigMap>(env.kube, configMaps, key, async (o) => {
        await Promise.resolve();
        o.data = { ...o.data, b: "2" };
        o.metadata.labels = { role: "worker" };
      });
      expect(r3).to.equal("updated");
      expect(delta(c, "patch")).to.equal(1);
      const fresh = await env.kube.get<ConfigMap>(configMaps, key);
      expect(fresh.data).to.deep.equal({ a: "1", b: "2" });
      expect(fresh.metadata.labels).to.deep.equal({ role: "worker" });
    });

    it("refuses a mutate that renames the object", async () => {
      let err: unknown;
      try {
        await createOrPatch<ConfigMap>(env.kube, configMaps, key, (o) => {
          o.metadata.name = "renamed";
        });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(TypeError);
    });

    it("surfaces AlreadyOwned from the mutate function", async () => {
      const otherOwner = await env.kube.create<Widget>(widgets, widget("other-owner"));
      let err: unknown;
      try {
        await createOrPatch<ConfigMap>(env.kube, configMaps, key, (o) => {
          setControllerReference(o, otherOwner, widgets);
        });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(AlreadyOwnedError);
    });

    it("does not write status", async () => {
      const wkey = { namespace: "default", name: "cop-widget" };
      await createOrPatch<Widget>(env.kube, widgets, wkey, (o) => {
        o.spec = { size: 3 };
      });
      const c = counts();
      const r = await createOrPatch<Widget>(env.kube, widgets, wkey, (o) => {
        o.status = { phase: "Changed" };
      });
      expect(r).to.equal("unchanged");
      expect(delta(c, "patch")).to.equal(0);
      expect((await env.kube.get<Widget>(widgets, wkey)).status).to.equal(undefined);
    });

    it("retries a Conflict by reading and mutating again", async () => {
      const ckey = { namespace: "default", name: "cop-conflict" };
      await env.kube.create(configMaps, cm("cop-conflict", { n: "0" }));
      let calls = 0;
      const r = await createOrPatch<ConfigMap>(env.kube, configMaps, ckey, async (o) => {
        calls++;
        if (calls === 1) {
          // Someone else writes between our read and our patch.
          await env.kube.patch(configMaps, ckey, { data: { other: "x" } }, "merge");
        }
        o.data = { ...o.data, n: "1" };
      });
      expect(r).to.equal("updated");
      expect(calls).to.equal(2);
      expect((await env.kube.get<ConfigMap>(configMaps, ckey)).data).to.deep.equal({ n: "1", other: "x" });
    });

    it("works for cluster-scoped resources", async () => {
      const namespaces: ResourceType = {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
      };
      // Merge into labels: the API server adds kubernetes.io/metadata.name to every Namespace.
      const mutate = (o: KubeObject): void => {
        o.metadata.labels = { ...o.metadata.labels, a: "b" };
      };
      const r1 = await createOrPatch(env.kube, namespaces, { name: "cop-ns" }, mutate);
      expect(r1).to.equal("created");
      const r2 = await createOrPatch(env.kube, namespaces, { name: "cop-ns" }, mutate);
      expect(r2).to.equal("unchanged");
    });
  });
});

import { expect } from "chai";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ApiextensionsV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  RbacAuthorizationV1Api,
  Watch,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { controlPlaneBinaries } from "../src/control-plane/binaries.js";
import { startControlPlane, type ControlPlane } from "../src/control-plane/control-plane.js";
import { isAlive, runChecked, waitFor } from "../src/util/process.js";

interface Widget extends KubernetesObject {
  spec?: { size?: number };
  status?: { phase?: string };
}

const group = "testbed.example.com";
const crd = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `widgets.${group}` },
  spec: {
    group,
    scope: "Namespaced",
    names: { plural: "widgets", singular: "widget", kind: "Widget", listKind: "WidgetList" },
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: { type: "object", properties: { size: { type: "integer", minimum: 1 } } },
              status: { type: "object", properties: { phase: { type: "string" } } },
            },
          },
        },
      },
    ],
  },
};

function widget(name: string, size: number): Widget {
  return { apiVersion: `${group}/v1`, kind: "Widget", metadata: { name, namespace: "default" }, spec: { size } };
}

function statusCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

describe("testbed control plane (real kube-apiserver + etcd)", function () {
  this.timeout(180_000);
  let dir: string;
  let cp: ControlPlane;
  let kc: KubeConfig;
  let objects: KubernetesObjectApi;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "testbed-cp-"));
    cp = await startControlPlane({ dir, binaries: await controlPlaneBinaries() });
    kc = cp.kubeConfig();
    objects = KubernetesObjectApi.makeApiClient(kc);
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({ body: crd });
    await waitFor("CRD established", async () => {
      const got = await ext.readCustomResourceDefinition({ name: crd.metadata.name });
      return got.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") ? true : undefined;
    });
    // Discovery of a fresh CRD lags a little behind Established.
    await waitFor("widgets served", async () => {
      await objects.list(`${group}/v1`, "Widget", "default");
      return true;
    });
  });

  after(async () => {
    const pids = cp?.pids() ?? [];
    await cp?.stop();
    for (const pid of pids) expect(isAlive(pid), `process ${pid} still alive after stop()`).to.equal(false);
    await rm(dir, { recursive: true, force: true });
  });

  it("writes an admin kubeconfig readable only by its owner", async () => {
    const st = await stat(cp.kubeconfigPath);
    expect(st.mode & 0o077).to.equal(0);
    const core = kc.makeApiClient(CoreV1Api);
    const ns = await core.readNamespace({ name: "default" });
    expect(ns.metadata?.name).to.equal("default");
  });

  it("creates, patches, watches and deletes a custom object with a status subresource", async () => {
    const seen: string[] = [];
    const watch = new Watch(kc);
    const abort = await watch.watch(
      `/apis/${group}/v1/namespaces/default/widgets`,
      {},
      (phase, obj: Widget) => seen.push(`${phase}:${obj.metadata?.name}:${obj.spec?.size}:${obj.status?.phase ?? ""}`),
      () => undefined,
    );
    try {
      const created = await objects.create(widget("w1", 1));
      expect(created.metadata?.generation).to.equal(1);
      const patched = await objects.patch<Widget>(
        { ...widget("w1", 3) },
        undefined,
        undefined,
        "testbed-test",
        undefined,
        PatchStrategy.MergePatch,
      );
      expect(patched.spec?.size).to.equal(3);
      expect(patched.metadata?.generation).to.equal(2);

      // The main resource ignores status; only the status subresource writes it, without bumping generation.
      const custom = kc.makeApiClient((await import("@kubernetes/client-node")).CustomObjectsApi);
      await custom.patchNamespacedCustomObjectStatus(
        {
          group,
          version: "v1",
          namespace: "default",
          plural: "widgets",
          name: "w1",
          body: { status: { phase: "Ok" } },
        },
        (await import("@kubernetes/client-node")).setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      const read = await objects.read<Widget>({
        apiVersion: `${group}/v1`,
        kind: "Widget",
        metadata: { name: "w1", namespace: "default" },
      });
      expect(read.status?.phase).to.equal("Ok");
      expect(read.metadata?.generation).to.equal(2);

      await objects.delete(widget("w1", 3));
      await waitFor("watch saw all changes", async () =>
        seen.some((s) => s.startsWith("DELETED:w1")) ? true : undefined,
      );
      expect(seen[0]).to.equal("ADDED:w1:1:");
      expect(seen).to.include("MODIFIED:w1:3:");
      expect(seen).to.include("MODIFIED:w1:3:Ok");
    } finally {
      abort.abort();
    }
  });

  it("rejects an object that violates the CRD schema", async () => {
    try {
      await objects.create(widget("bad", 0));
      expect.fail("a size below the minimum was accepted");
    } catch (err) {
      expect(statusCode(err)).to.equal(422);
      expect(String((err as Error).message)).to.contain("spec.size");
    }
  });

  it("keeps an object with a finalizer until the finalizer is removed", async () => {
    const w = widget("held", 1);
    w.metadata = { ...w.metadata, finalizers: [`${group}/hold`] };
    await objects.create(w);
    await objects.delete(w);
    const pending = await objects.read<Widget>(w as Widget & { metadata: { name: string } });
    expect(pending.metadata?.deletionTimestamp).to.not.equal(undefined);
    await objects.patch(
      { ...w, metadata: { ...w.metadata, finalizers: [] } },
      undefined,
      undefined,
      "testbed-test",
      undefined,
      PatchStrategy.MergePatch,
    );
    await waitFor("object gone", async () => {
      try {
        await objects.read(w as Widget & { metadata: { name: string } });
        return undefined;
      } catch (err) {
        return statusCode(err) === 404 ? true : undefined;
      }
    });
  });

  it("enforces RBAC: a minted ServiceAccount identity may do only what it is bound to", async () => {
    const token = await cp.mintServiceAccountToken("limited", "reader");
    const path = join(dir, "limited.kubeconfig");
    await cp.writeKubeconfig(path, "reader", token);
    const limited = new KubeConfig();
    limited.loadFromFile(path);
    const limitedCore = limited.makeApiClient(CoreV1Api);

    try {
      await limitedCore.listNamespacedConfigMap({ namespace: "limited" });
      expect.fail("an unbound ServiceAccount could list ConfigMaps");
    } catch (err) {
      expect(statusCode(err)).to.equal(403);
    }

    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: "limited",
      body: {
        metadata: { name: "cm-reader" },
        rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["list"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: "limited",
      body: {
        metadata: { name: "cm-reader" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "cm-reader" },
        subjects: [{ kind: "ServiceAccount", namespace: "limited", name: "reader" }],
      },
    });
    await waitFor("role binding effective", async () => {
      await limitedCore.listNamespacedConfigMap({ namespace: "limited" });
      return true;
    });
    try {
      await limitedCore.listNamespacedSecret({ namespace: "limited" });
      expect.fail("the ServiceAccount could list Secrets it was never granted");
    } catch (err) {
      expect(statusCode(err)).to.equal(403);
    }
  });

  it("restarts the API server on the same address without losing data", async () => {
    await objects.create(widget("survivor", 2));
    await cp.stopApiServer();
    try {
      await objects.read({
        apiVersion: `${group}/v1`,
        kind: "Widget",
        metadata: { name: "survivor", namespace: "default" },
      });
      expect.fail("the API server still answered after stopApiServer()");
    } catch (err) {
      expect(String((err as { code?: unknown }).code ?? err)).to.contain("ECONNREFUSED");
    }
    await cp.startApiServer();
    const back = await objects.read<Widget>({
      apiVersion: `${group}/v1`,
      kind: "Widget",
      metadata: { name: "survivor", namespace: "default" },
    });
    expect(back.spec?.size).to.equal(2);
  });

  it("serves kubectl built from the same release", async () => {
    const { kubectl } = await controlPlaneBinaries();
    const out = await runChecked(kubectl, ["--kubeconfig", cp.kubeconfigPath, "get", "widgets", "-o", "name"]);
    expect(out.trim().split("\n")).to.include("widget.testbed.example.com/survivor");
    const version = JSON.parse(
      await runChecked(kubectl, ["--kubeconfig", cp.kubeconfigPath, "version", "-o", "json"]),
    ) as {
      serverVersion: { gitVersion: string };
    };
    expect(version.serverVersion.gitVersion).to.match(/^v1\.\d+\.\d+/);
  });
});

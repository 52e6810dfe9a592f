/**
 * The CRDs on a real kube-apiserver + etcd (the testbed's): the seeds' manifests are accepted, every bad case of the
 * validation table is refused with HTTP 422 naming the field, and the runtime validator agrees with the API server
 * on every case (same refusals, same fields, same defaults).
 */
import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { controlPlaneBinaries, run, startControlPlane, waitFor, type ControlPlane } from "@nio/testbed";
import {
  CATEGORY,
  CRDS,
  KINDS,
  applyDefaults,
  formatValidationErrors,
  kubernetesClusterSchema,
  machineSchema,
  nixosConfigurationSchema,
  type KindNames,
  type ValidationError,
} from "../src/index.js";
import { BAD_CASES, GOOD_CASES } from "./cases.js";
import { FUZZ_TARGETS, fuzzValues } from "./fuzz.js";
import { rawClient, type Request, type Status } from "./kube.js";
import { FIXTURE_FILES, NAMES, VALIDATORS, edited, fixture, type KindName, type Obj } from "./support.js";

const SCHEMAS = {
  Machine: machineSchema,
  NixosConfiguration: nixosConfigurationSchema,
  KubernetesCluster: kubernetesClusterSchema,
};

function collection(names: KindNames, namespace: string): string {
  return `/apis/${names.group}/${names.version}/namespaces/${namespace}/${names.plural}`;
}

function kindOf(o: Obj): KindName {
  const kind = o.kind;
  if (kind === "Machine" || kind === "NixosConfiguration" || kind === "KubernetesCluster") return kind;
  throw new Error(`unexpected kind ${String(kind)}`);
}

function namespaceOf(o: Obj): string {
  const meta = o.metadata;
  const ns = typeof meta === "object" && meta !== null && "namespace" in meta ? meta.namespace : undefined;
  return typeof ns === "string" ? ns : "default";
}

/** Cause fields of a refusal, without the "some validation rules were not checked" note (which has no field). */
function causeFields(status: Status): string[] {
  return (status.details?.causes ?? []).map((c) => c.field ?? "").filter((f) => f !== "" && f !== "<nil>");
}

/** The fields the runtime validator reports that the API server would too (it prunes unknown fields). */
function runtimeFields(errors: ValidationError[]): string[] {
  return errors.filter((e) => e.rule !== "unknownField").map((e) => e.field);
}

const unique = (xs: string[]): string[] => [...new Set(xs)].sort();

describe("CRDs on a real API server", function () {
  this.timeout(180_000);
  let dir: string;
  let cp: ControlPlane;
  let api: Request;
  let kubectl: (...args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

  const create = (o: Obj, query = "", namespace?: string): Promise<{ status: number; body: unknown }> =>
    api("POST", `${collection(NAMES[kindOf(o)], namespace ?? namespaceOf(o))}${query}`, o);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nio-api-test-"));
    const binaries = await controlPlaneBinaries();
    cp = await startControlPlane({ dir, binaries });
    api = await rawClient(cp);
    kubectl = (...args) => run(binaries.kubectl, ["--kubeconfig", cp.kubeconfigPath, ...args]);
    for (const crd of CRDS) {
      const res = await api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
      expect(res.status, JSON.stringify(res.body)).to.equal(201);
    }
    for (const crd of CRDS) {
      await waitFor(`${crd.metadata.name} Established`, async () => {
        const res = await api("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
        const conditions = (res.body as { status?: { conditions?: { type: string; status: string }[] } }).status
          ?.conditions;
        return conditions?.some((c) => c.type === "Established" && c.status === "True") ? true : undefined;
      });
    }
    // Discovery of new CRDs takes a moment; the first create would 404 otherwise.
    await waitFor("custom resources served", async () => {
      const res = await api("GET", collection(NAMES.KubernetesCluster, "default"));
      return res.status === 200 ? true : undefined;
    });
  });

  after(async () => {
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("registers names, short names, the nixos category and no warnings", async () => {
    for (const names of KINDS) {
      const res = await api("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${names.crdName}`);
      const body = res.body as {
        status: {
          acceptedNames: { shortNames: string[]; categories: string[] };
          conditions: { type: string; status: string }[];
        };
      };
      expect(body.status.acceptedNames.shortNames).to.deep.equal([...names.shortNames]);
      expect(body.status.acceptedNames.categories).to.deep.equal([CATEGORY]);
      expect(body.status.conditions.find((c) => c.type === "NamesAccepted")?.status).to.equal("True");
    }
  });

  describe("the seeds' example manifests", () => {
    it("are accepted unchanged and stored with the server's defaults, which the runtime defaults match", async () => {
      const ns = await api("POST", "/api/v1/namespaces", { metadata: { name: "files" } });
      expect(ns.status).to.equal(201);
      for (const file of FIXTURE_FILES) {
        const o = fixture(file);
        const namespace = file === "nixosconfiguration-additionalfiles.yaml" ? "files" : undefined;
        const res = await create(o, "?fieldValidation=Strict", namespace);
        expect(res.status, `${file}: ${JSON.stringify(res.body)}`).to.equal(201);
        expect(VALIDATORS[kindOf(o)](o), file).to.deep.equal([]);
        const stored = (res.body as { spec: unknown }).spec;
        expect(stored, file).to.deep.equal((applyDefaults(SCHEMAS[kindOf(o)], o) as { spec: unknown }).spec);
      }
    });

    it("get the documented defaults from the server", async () => {
      const m = await api("GET", `${collection(NAMES.Machine, "default")}/worker-01`);
      expect((m.body as { spec: unknown }).spec).to.deep.include({ sshUser: "root", sshPort: 22 });
      expect((m.body as { spec: { sshKeySecretRef: unknown } }).spec.sshKeySecretRef).to.deep.equal({
        name: "worker-ssh-key",
        key: "ssh-privatekey",
      });
      const c = await api("GET", `${collection(NAMES.NixosConfiguration, "default")}/worker-config`);
      expect((c.body as { spec: unknown }).spec).to.deep.include({ fullInstall: false, suspend: false });
      const k = await api("GET", `${collection(NAMES.KubernetesCluster, "default")}/prod-cluster`);
      expect((k.body as { spec: unknown }).spec).to.deep.include({
        network: { interface: "eth0", prefixLength: 24, virtualRouterId: 51 },
        rollout: { maxUnavailable: 1 },
        fullInstall: false,
        suspend: false,
      });
      const withHostFile = edited("NixosConfiguration", {
        set: { "metadata.name": "host-file", "spec.hostFiles[0]": { path: "/x", value: { inline: "" } } },
      });
      const h = await create(withHostFile, "?dryRun=All");
      expect((h.body as { spec: { hostFiles: unknown[] } }).spec.hostFiles[0]).to.deep.include({ mode: "0400" });
    });
  });

  describe("refuses every bad case with 422 naming the field; the runtime validator agrees", () => {
    for (const c of BAD_CASES) {
      it(`${c.kind}: ${c.name}`, async () => {
        const o = edited(c.kind, c);
        const res = await create(o, "?dryRun=All");
        const status = res.body as Status;
        expect(res.status, JSON.stringify(status)).to.equal(422);
        expect(status.message).to.include(`${c.field}:`);
        expect(causeFields(status)).to.include(c.field);
        const errors = VALIDATORS[c.kind](o);
        expect(unique(runtimeFields(errors)), `${status.message}\n${JSON.stringify(errors)}`).to.deep.equal(
          unique(causeFields(status)),
        );
      });
    }
  });

  describe("accepts every good case, with the same defaults as the runtime", () => {
    for (const c of GOOD_CASES) {
      it(`${c.kind}: ${c.name}`, async () => {
        // A name no stored object has (dry runs still check for existence).
        const o = edited(c.kind, { set: { "metadata.name": "good-case", ...c.set } });
        const res = await create(o, "?dryRun=All&fieldValidation=Strict");
        expect(res.status, JSON.stringify(res.body)).to.equal(201);
        expect((res.body as { spec: unknown }).spec).to.deep.equal(
          (applyDefaults(SCHEMAS[c.kind], o) as { spec: unknown }).spec,
        );
        expect(VALIDATORS[c.kind](o)).to.deep.equal([]);
      });
    }
  });

  describe("differential fuzzing: the runtime validator accepts exactly what the API server accepts", () => {
    for (const target of FUZZ_TARGETS) {
      it(`${target.kind} ${target.path}`, async () => {
        const mismatches: string[] = [];
        for (const value of fuzzValues(target, 120)) {
          const o = edited(target.kind, { set: { "metadata.name": "fuzz-case", [target.path]: value } });
          const res = await create(o, "?dryRun=All");
          const errors = VALIDATORS[target.kind](o);
          const apiFields = res.status === 201 ? [] : unique(causeFields(res.body as Status));
          if (res.status !== 201 && res.status !== 422) mismatches.push(`${JSON.stringify(value)}: HTTP ${res.status}`);
          else if (JSON.stringify(apiFields) !== JSON.stringify(unique(runtimeFields(errors)))) {
            const api = res.status === 201 ? "accepted" : (res.body as Status).message;
            mismatches.push(
              `${JSON.stringify(value)}: API ${api}; runtime ${formatValidationErrors(errors) || "accepted"}`,
            );
          }
        }
        expect(mismatches).to.deep.equal([]);
      });
    }
  });

  it("prunes unknown fields, or refuses them with fieldValidation=Strict naming the field", async () => {
    const o = edited("Machine", { set: { "metadata.name": "extra", "spec.sshPassword": "x" } });
    const strict = await create(o, "?dryRun=All&fieldValidation=Strict");
    expect(strict.status).to.equal(400);
    expect((strict.body as Status).message).to.include("spec.sshPassword");
    const pruned = await create(o, "?dryRun=All");
    expect(pruned.status).to.equal(201);
    expect((pruned.body as { spec: object }).spec).to.not.have.property("sshPassword");
    expect(VALIDATORS.Machine(o).map((e) => e.field)).to.deep.equal(["spec.sshPassword"]);
  });

  it("refuses very long values of every kind (maxLength on every spec string)", async () => {
    const res = await create(edited("Machine", { set: { "spec.hostname": "a".repeat(100_000) } }), "?dryRun=All");
    expect(res.status).to.equal(422);
    expect((res.body as Status).message).to.include("spec.hostname: Too long");
  });

  const machinePath = `${collection(NAMES.Machine, "default")}/worker-01`;
  const machineStatus = {
    observedGeneration: 1,
    discoverable: true,
    appliedCommit: "a1b2c3d4e5f6",
    appliedConfiguration: "worker-config",
    conditions: [
      {
        type: "Reachable",
        status: "True",
        reason: "Succeeded",
        message: "",
        lastTransitionTime: "2025-01-21T08:30:00Z",
        observedGeneration: 1,
      },
    ],
  };
  const setMachineStatus = (): Promise<{ status: number; body: unknown }> =>
    api("PATCH", `${machinePath}/status`, { status: machineStatus }, "application/merge-patch+json");

  describe("status subresource", () => {
    const path = machinePath;
    const status = machineStatus;

    it("ignores status on the main resource and takes it through /status only", async () => {
      const created = await create(
        edited("Machine", { set: { "metadata.name": "with-status", status } }),
        "?dryRun=All",
      );
      expect(created.status).to.equal(201);
      expect(created.body).to.not.have.property("status");
      const current = (await api("GET", path)).body as { metadata: { generation: number } };
      const res = await setMachineStatus();
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const after = (await api("GET", path)).body as { status: unknown; metadata: { generation: number } };
      expect(after.status).to.deep.equal(status);
      expect(after.metadata.generation).to.equal(current.metadata.generation);
    });

    it("validates status: conditions are metav1.Condition", async () => {
      const bad = {
        conditions: [{ type: "Reachable", status: "Yes", reason: "ok", message: "", lastTransitionTime: "x" }],
      };
      const res = await api("PATCH", `${path}/status`, { status: bad }, "application/merge-patch+json");
      expect(res.status).to.equal(422);
      expect((res.body as Status).message).to.include("status.conditions[0].status");
      const runtime = VALIDATORS.Machine({ ...fixture("machine.yaml"), status: bad }).map((e) => e.field);
      expect(unique(runtime)).to.deep.equal(unique(causeFields(res.body as Status)));
    });
  });

  describe("kubectl", () => {
    it("`kubectl get nixos` lists all three kinds", async () => {
      const res = await kubectl("get", CATEGORY, "-A");
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stdout).to.include("machine.nio.homystack.com/worker-01");
      expect(res.stdout).to.include("machine.nio.homystack.com/cp-01");
      expect(res.stdout).to.include("nixosconfiguration.nio.homystack.com/worker-config");
      expect(res.stdout).to.include("kubernetescluster.nico.homystack.com/prod-cluster");
    });

    it("short names work", async () => {
      for (const short of ["mach", "nixoscfg", "nc", "kc", "kcluster"]) {
        const res = await kubectl("get", short, "-A", "-o", "name");
        expect(res.code, `${short}: ${res.stderr}`).to.equal(0);
        expect(res.stdout.trim(), short).to.not.equal("");
      }
    });

    it("prints the printer columns", async () => {
      expect((await setMachineStatus()).status).to.equal(200);
      const m = await kubectl("get", "machines");
      expect(m.stdout.split("\n")[0]).to.match(
        /^NAME\s+HOSTNAME\s+IP\s+REACHABLE\s+APPLIED COMMIT\s+CONFIGURATION\s+AGE$/u,
      );
      expect(m.stdout).to.match(
        /worker-01\s+worker-01\s+192\.168\.1\.100\s+True\s+a1b2c3d4e5f6\s+worker-config\s+\S+/u,
      );
      const c = await kubectl("get", "nixosconfigurations");
      expect(c.stdout.split("\n")[0]).to.match(
        /^NAME\s+GIT REPO\s+FLAKE\s+TARGET MACHINE\s+FULL INSTALL\s+APPLIED COMMIT\s+READY\s+AGE$/u,
      );
      expect(c.stdout).to.match(
        /worker-config\s+https:\/\/github\.com\/your-org\/nixos-configs\.git\s+\.#worker\s+worker-01\s+false/u,
      );
      const k = await kubectl("get", "kubernetesclusters");
      expect(k.stdout.split("\n")[0]).to.match(/^NAME\s+PHASE\s+CONTROL PLANE\s+DATA PLANE\s+ENDPOINT\s+AGE$/u);
    });

    it("`kubectl explain` describes the fields", async () => {
      const res = await waitFor(
        "kubectl explain machine.spec.sshPort",
        async () => {
          const r = await kubectl("explain", "machine.spec.sshPort");
          return r.code === 0 ? r : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      expect(res.stdout).to.include("SSH port of the machine, 1-65535.");
      const cfg = await kubectl("explain", "nixosconfiguration.spec.hostFiles.mode");
      expect(cfg.stdout).to.include("Octal file mode");
      const kc = await kubectl("explain", "kubernetescluster.spec.controlPlane.count");
      expect(kc.stdout).to.include("Required with machineSelector");
    });

    it("selects NixosConfigurations by spec.machineRef.name", async () => {
      const hit = await kubectl("get", "nc", "-A", "--field-selector", "spec.machineRef.name=worker-01", "-o", "name");
      expect(hit.code, hit.stderr).to.equal(0);
      expect(hit.stdout.trim().split("\n")).to.have.length(2);
      const miss = await kubectl("get", "nc", "-A", "--field-selector", "spec.machineRef.name=other", "-o", "name");
      expect(miss.stdout.trim()).to.equal("");
    });
  });
});

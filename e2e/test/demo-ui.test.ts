import { expect } from "chai";
import type { ConfigObject, MachineObject } from "@nio/nio";
import {
  LiveView,
  clusterLine,
  configurationPhase,
  formatTable,
  nodeRows,
  plainFrameText,
  snapshotFrame,
  ttyFrameText,
  type ClusterObject,
  type Frame,
  type Snapshot,
} from "../src/progress.js";
import { inRoleOrder, orderLine, redactKubeconfig, stripAnsi, summaryLines } from "../src/demo-text.js";

const C1 = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const C2 = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ANSI = /\x1b\[/; // eslint-disable-line no-control-regex

function machine(name: string, labels: Record<string, string> = {}, appliedCommit?: string): MachineObject {
  return {
    apiVersion: "nio.homystack.com/v1alpha1",
    kind: "Machine",
    metadata: { name, namespace: "default", labels },
    spec: { hostname: name, sshUser: "root", sshPort: 22 },
    status: appliedCommit ? { appliedCommit } : {},
  };
}

interface ConfigOpts {
  role: string;
  ref?: string;
  applied?: string;
  ready?: "True" | "False";
  reason?: string;
  attempt?: "InProgress" | "Succeeded" | "Failed";
  attemptCommit?: string;
  suspend?: boolean;
  deleting?: boolean;
}

function config(node: string, o: ConfigOpts): ConfigObject {
  return {
    apiVersion: "nio.homystack.com/v1alpha1",
    kind: "NixosConfiguration",
    metadata: {
      name: `prod-${node}`,
      namespace: "default",
      generation: 2,
      labels: { "nico.homystack.com/cluster": "prod", "nico.homystack.com/role": o.role },
      ...(o.deleting ? { deletionTimestamp: "2025-01-01T00:00:00Z" } : {}),
    },
    spec: {
      gitRepo: "http://git/cluster.git",
      ref: o.ref ?? C1,
      flake: `#${node}`,
      machineRef: { name: node },
      onRemoveFlake: "#minimal",
      suspend: o.suspend ?? false,
    },
    status: {
      appliedCommit: o.applied,
      lastAttempt: o.attempt ? { result: o.attempt, commit: o.attemptCommit ?? o.ref ?? C1 } : undefined,
      conditions: o.ready
        ? [{ type: "Ready", status: o.ready, reason: o.reason ?? "Succeeded", message: "", observedGeneration: 2 }]
        : [],
    },
  } as unknown as ConfigObject;
}

function cluster(nodes: [string, string, number][], status: Record<string, unknown> = {}): ClusterObject {
  return {
    apiVersion: "nico.homystack.com/v1alpha1",
    kind: "KubernetesCluster",
    metadata: { name: "prod", namespace: "default" },
    spec: {},
    status: {
      phase: "Provisioning",
      controlPlaneReady: "1/2",
      dataPlaneReady: "0/1",
      commit: C1,
      nodes: nodes.map(([machine, role, index]) => ({ machine, role, index })),
      ...status,
    },
  } as unknown as ClusterObject;
}

const claimed = (role: string): Record<string, string> => ({
  role,
  "nico.homystack.com/cluster": "prod",
  "nico.homystack.com/role": role,
});

function sample(): Snapshot {
  return {
    cluster: cluster([
      ["cp-02", "control-plane", 1],
      ["cp-01", "control-plane", 0],
      ["worker-01", "worker", 0],
    ]),
    configurations: [
      config("worker-01", { role: "worker", suspend: true }),
      config("cp-01", { role: "control-plane", applied: C1, ready: "True", attempt: "Succeeded" }),
      config("cp-02", { role: "control-plane", attempt: "InProgress" }),
    ],
    machines: [
      machine("spare-01", { role: "worker" }),
      machine("worker-01", claimed("worker")),
      machine("cp-02", claimed("control-plane")),
      machine("cp-01", claimed("control-plane"), C1),
    ],
  };
}

describe("demo progress view", () => {
  describe("rows from objects", () => {
    it("lists the nodes in rollout order, then the other machines, with phase and short commit", () => {
      expect(nodeRows(sample())).to.deep.equal([
        {
          machine: "cp-01",
          role: "control-plane",
          configuration: "prod-cp-01 #cp-01",
          phase: "Ready",
          appliedCommit: "1111111",
        },
        {
          machine: "cp-02",
          role: "control-plane",
          configuration: "prod-cp-02 #cp-02",
          phase: "applying 1111111",
          appliedCommit: "-",
        },
        {
          machine: "worker-01",
          role: "worker",
          configuration: "prod-worker-01 #worker-01",
          phase: "waiting (rollout order)",
          appliedCommit: "-",
        },
        { machine: "spare-01", role: "-", configuration: "-", phase: "free", appliedCommit: "-" },
      ]);
    });

    it("names each phase of a configuration", () => {
      expect(configurationPhase(config("a", { role: "worker" }))).to.equal("pending");
      // Ready for an older commit than the one the spec asks for: the new one is not applied yet.
      expect(configurationPhase(config("a", { role: "worker", ref: C2, applied: C1, ready: "True" }))).to.equal(
        "pending",
      );
      expect(configurationPhase(config("a", { role: "worker", ref: C2, applied: C1, attempt: "InProgress" }))).to.equal(
        "applying 2222222",
      );
      expect(configurationPhase(config("a", { role: "worker", ready: "False", reason: "BuildFailed" }))).to.equal(
        "not ready: BuildFailed",
      );
      expect(configurationPhase(config("a", { role: "worker", ready: "False", reason: "Progressing" }))).to.equal(
        "pending",
      );
      expect(configurationPhase(config("a", { role: "worker", deleting: true, applied: C1 }))).to.equal(
        "removing (#minimal)",
      );
    });

    it("shows claimed machines without a configuration, machines of other clusters, and released machines", () => {
      const rows = nodeRows({
        cluster: cluster([]),
        configurations: [],
        machines: [
          machine("a", claimed("control-plane"), C1),
          machine("b", { "nico.homystack.com/cluster": "other" }),
          machine("c", { role: "worker" }, C1),
        ],
      });
      expect(rows.map((r) => [r.machine, r.role, r.phase, r.appliedCommit])).to.deep.equal([
        ["a", "control-plane", "claimed", "1111111"],
        ["b", "-", "claimed by other", "-"],
        ["c", "-", "free", "-"],
      ]);
    });

    it("while the cluster is deleted: a claimed machine without configuration is cleaned up", () => {
      const deleting = { ...cluster([]), metadata: { name: "prod", deletionTimestamp: "2025-01-01T00:00:00Z" } };
      const rows = nodeRows({
        cluster: deleting as ClusterObject,
        configurations: [config("b", { role: "worker", deleting: true, applied: C1 })],
        machines: [machine("a", claimed("worker")), machine("b", claimed("worker"), C1), machine("c")],
      });
      expect(rows.map((r) => [r.machine, r.phase])).to.deep.equal([
        ["a", "cleaned up, claim held"],
        ["b", "removing (#minimal)"],
        ["c", "free"],
      ]);
    });

    it("summarises the cluster in one line, and says when it is gone", () => {
      const s = sample();
      expect(clusterLine(s, "prod")).to.equal(
        "KubernetesCluster prod: Provisioning  control plane 1/2  workers 0/1  commit 1111111",
      );
      expect(clusterLine({ configurations: [], machines: [] }, "prod")).to.equal("KubernetesCluster prod: gone");
      const deleting = { ...s, cluster: { ...cluster([]), metadata: { name: "prod", deletionTimestamp: "x" } } };
      expect(clusterLine(deleting as Snapshot, "prod")).to.match(/^KubernetesCluster prod: Deleting /);
    });
  });

  describe("table", () => {
    it("aligns the columns under a header, without trailing spaces", () => {
      const lines = formatTable(nodeRows(sample()));
      expect(lines[0]).to.match(/^ {2}MACHINE +ROLE +CONFIGURATION +PHASE +APPLIED$/);
      const phaseAt = lines[0]?.indexOf("PHASE");
      for (const l of lines.slice(1)) expect(l.trimEnd()).to.equal(l);
      expect(lines[1]?.indexOf("Ready")).to.equal(phaseAt);
      expect(lines[2]?.indexOf("applying")).to.equal(phaseAt);
      expect(lines).to.have.length(5);
    });
  });

  describe("output", () => {
    const frame: Frame = { title: "KubernetesCluster prod: Ready", lines: ["  MACHINE", "  cp-01"] };

    function sink(isTTY?: boolean): { out: { write(s: string): void; isTTY?: boolean }; text(): string } {
      const chunks: string[] = [];
      return { out: { write: (s: string) => void chunks.push(s), isTTY }, text: () => chunks.join("") };
    }

    it("frames: a spinner and elapsed time on a terminal, a timestamp in a log", () => {
      expect(ttyFrameText(frame, 0, 1500)[0]).to.equal("⠋ KubernetesCluster prod: Ready  (1.5 s)");
      expect(ttyFrameText(frame, 1, 1500)[0]).to.match(/^⠙ /);
      expect(plainFrameText(frame, 12_345)).to.deep.equal([
        "[ 12.3 s] KubernetesCluster prod: Ready",
        "  MACHINE",
        "  cp-01",
      ]);
    });

    it("without a terminal: no escape codes, and a table only when something changed", () => {
      let now = 0;
      const s = sink(false);
      const view = new LiveView(s.out, { now: () => now });
      expect(view.tty).to.equal(false);
      view.update(frame);
      now = 1000;
      view.update({ ...frame, lines: [...frame.lines] });
      now = 2000;
      view.update({ ...frame, title: "KubernetesCluster prod: Deleting" });
      view.stop();
      const text = s.text();
      expect(text).to.not.match(ANSI);
      expect(text.match(/KubernetesCluster/g)).to.have.length(2);
      expect(text).to.include("[  0.0 s] KubernetesCluster prod: Ready\n  MACHINE\n  cp-01\n\n");
      expect(text).to.include("[  2.0 s] KubernetesCluster prod: Deleting");
    });

    it("the real rows in a log: plain text only", () => {
      const s = sink(undefined);
      const view = new LiveView(s.out);
      view.update(snapshotFrame(sample(), "prod"));
      view.stop();
      expect(s.text()).to.not.match(ANSI);
      expect(s.text()).to.include("cp-02");
    });

    it("on a terminal: redraws in place (cursor up over the previous frame) and ends with a tick", () => {
      const s = sink(true);
      const view = new LiveView(s.out, { spinIntervalMs: 0, now: () => 0 });
      expect(view.tty).to.equal(true);
      view.update(frame);
      view.update({ ...frame, lines: ["  MACHINE", "  cp-01", "  cp-02"] });
      view.stop();
      const text = s.text();
      expect(text).to.match(ANSI);
      const first = text.indexOf("\x1b[3A");
      expect(first, "second draw moves up over the 3 lines of the first").to.be.greaterThan(0);
      expect(text.indexOf("\x1b[4A"), "the final draw moves up over 4 lines").to.be.greaterThan(first);
      expect(text).to.include("\x1b[2K✔ KubernetesCluster prod: Ready");
      expect(text).to.include("\x1b[2K  cp-02");
    });

    it("on a terminal: the spinner turns on its own", async () => {
      const s = sink(true);
      const view = new LiveView(s.out, { spinIntervalMs: 5 });
      view.update(frame);
      await new Promise((r) => setTimeout(r, 40));
      view.stop();
      expect(s.text()).to.include("⠙ KubernetesCluster");
    });
  });

  describe("demo text", () => {
    it("redacts the client key, certificate and tokens of a kubeconfig, keeps the server", () => {
      const kc = [
        "clusters:",
        "- cluster:",
        "    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJ",
        "    server: https://127.0.0.10:6443",
        "users:",
        "- name: default",
        "  user:",
        "    client-certificate-data: Q0VSVElGSUNBVEU=",
        "    client-key-data: S0VZLVNFQ1JFVA==",
        "    token: abc.def",
      ].join("\n");
      const out = redactKubeconfig(kc);
      expect(out).to.include("server: https://127.0.0.10:6443");
      expect(out).to.include("client-key-data: <redacted, 16 characters>");
      expect(out).to.include("client-certificate-data: <redacted, 16 characters>");
      expect(out).to.include("token: <redacted, 7 characters>");
      expect(out).to.include("certificate-authority-data: LS0tLS1CRUdJTiBD… (public CA, 43 characters)");
      for (const secret of ["S0VZLVNFQ1JFVA==", "Q0VSVElGSUNBVEU=", "abc.def"]) expect(out).to.not.include(secret);
    });

    it("strips colours from nix output for logs", () => {
      expect(stripAnsi("\x1b[32;1m└───\x1b[0m\x1b[1mcp-01\x1b[0m: NixOS")).to.equal("└───cp-01: NixOS");
    });

    it("summary: one line per phase, failures marked, the total", () => {
      const lines = summaryLines(
        [
          { name: "lab up", ms: 10_500 },
          { name: "rolling update", ms: 27_940, failed: true },
        ],
        38_440,
      );
      expect(lines).to.deep.equal([
        "  lab up            10.5 s",
        "  rolling update    27.9 s  FAILED",
        "  --------------  --------",
        "  total             38.4 s",
      ]);
    });

    it("order of events and the role order check", () => {
      const ev = [
        { machine: "worker-01", role: "worker", at: 3400 },
        { machine: "cp-01", role: "control-plane", at: 10_300 },
        { machine: "cp-02", role: "control-plane", at: 8400 },
      ];
      expect(orderLine(ev, 0)).to.equal("worker-01 +3.4 s → cp-02 +8.4 s → cp-01 +10.3 s");
      expect(inRoleOrder(ev, true)).to.equal(true);
      expect(inRoleOrder(ev)).to.equal(false);
    });
  });
});

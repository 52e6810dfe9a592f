import { expect } from "chai";
import { createEventRecorder, MAX_MESSAGE_LENGTH, redact, truncate, type EventRecorderOptions } from "../src/events.js";
import type { KubeObject, ResourceType } from "../src/kube/types.js";
import { quietLogger, startTestEnv, type TestEnv } from "./support.js";
import { installWidgetCrd, widget, widgets, type Widget } from "./widgets.js";

interface CoreEvent extends KubeObject {
  involvedObject: Record<string, unknown>;
  type: string;
  reason: string;
  message: string;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  source: { component?: string; host?: string };
  reportingComponent: string;
  reportingInstance: string;
}

const events: ResourceType = { group: "", version: "v1", plural: "events", kind: "Event", namespaced: true };

describe("redact and truncate", () => {
  const table: { name: string; text: string; secrets: (string | undefined)[]; want: string }[] = [
    { name: "nothing to redact", text: "all fine", secrets: ["s3cr3t"], want: "all fine" },
    {
      name: "every occurrence",
      text: "tok=abc123 again abc123",
      secrets: ["abc123"],
      want: "tok=[REDACTED] again [REDACTED]",
    },
    { name: "longest first", text: "abcdef", secrets: ["abc", "abcdef"], want: "[REDACTED]" },
    { name: "empty and undefined secrets ignored", text: "keep", secrets: ["", undefined], want: "keep" },
    {
      name: "URL credentials",
      text: "clone https://user:hunter2@git.example.com/repo.git failed",
      secrets: [],
      want: "clone https://user:[REDACTED]@git.example.com/repo.git failed",
    },
    {
      name: "lines of a multi-line secret",
      text: "key line: b3BlbnNzaC1rZXktdjEAAAAA leaked",
      secrets: ["-----BEGIN KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END KEY-----"],
      want: "key line: [REDACTED] leaked",
    },
  ];
  for (const t of table) it(`redact: ${t.name}`, () => expect(redact(t.text, t.secrets)).to.equal(t.want));

  it("truncate", () => {
    expect(truncate("short", 10)).to.equal("short");
    const cut = truncate("x".repeat(2000), 1024);
    expect(cut).to.have.length(1024);
    expect(cut.endsWith("…")).to.equal(true);
  });
});

describe("EventRecorder (real kube-apiserver)", function () {
  this.timeout(120_000);
  let env: TestEnv;
  let clock: Date;

  before(async () => {
    env = await startTestEnv();
    await installWidgetCrd(env.kube);
  });
  after(async () => env?.stop());
  beforeEach(() => {
    clock = new Date("2025-01-01T00:00:00Z");
  });

  const advance = (ms: number): void => {
    clock = new Date(clock.getTime() + ms);
  };
  const recorder = (extra: Partial<EventRecorderOptions> = {}): ReturnType<typeof createEventRecorder> =>
    createEventRecorder({
      kube: env.kube,
      component: "nio-controller",
      instance: "nio-0",
      logger: quietLogger,
      now: () => clock,
      ...extra,
    });
  const eventsFor = async (name: string, namespace = "default"): Promise<CoreEvent[]> =>
    (await env.kube.list<CoreEvent>(events, { namespace, fieldSelector: `involvedObject.name=${name}` })).items;

  it("creates a core/v1 Event with the involved object and source", async () => {
    const w = await env.kube.create<Widget>(widgets, widget("ev-basic"));
    const rec = recorder();
    rec.event(w, "Normal", "Applied", "applied commit abc");
    await rec.flush();
    const [ev, ...rest] = await eventsFor("ev-basic");
    expect(rest).to.have.length(0);
    expect(ev?.involvedObject).to.deep.include({
      apiVersion: "runtime.test.example.com/v1",
      kind: "Widget",
      name: "ev-basic",
      namespace: "default",
      uid: w.metadata.uid,
      resourceVersion: w.metadata.resourceVersion,
    });
    expect(ev).to.deep.include({
      type: "Normal",
      reason: "Applied",
      message: "applied commit abc",
      count: 1,
      firstTimestamp: "2025-01-01T00:00:00Z",
      lastTimestamp: "2025-01-01T00:00:00Z",
      reportingComponent: "nio-controller",
      reportingInstance: "nio-0",
    });
    expect(ev?.source).to.deep.equal({ component: "nio-controller", host: "nio-0" });
    expect(rec.stats()).to.deep.equal({ created: 1, patched: 0, dropped: 0, failed: 0 });
  });

  it("deduplicates: a repeat within the window increments count instead of creating", async () => {
    const w = await env.kube.create<Widget>(widgets, widget("ev-dedup"));
    const rec = recorder();
    const creates = env.kube.requestCounts().create ?? 0;
    rec.event(w, "Warning", "ApplyFailed", "nixos-rebuild exited 1");
    rec.event(w, "Warning", "ApplyFailed", "nixos-rebuild exited 1"); // same tick: ordered after the create
    advance(60_000);
    rec.event(w, "Warning", "ApplyFailed", "nixos-rebuild exited 1");
    await rec.flush();
    let list = await eventsFor("ev-dedup");
    expect(list).to.have.length(1);
    expect(list[0]).to.deep.include({
      count: 3,
      firstTimestamp: "2025-01-01T00:00:00Z",
      lastTimestamp: "2025-01-01T00:01:00Z",
    });
    expect((env.kube.requestCounts().create ?? 0) - creates).to.equal(1);
    expect(rec.stats()).to.include({ created: 1, patched: 2 });

    // A different message is a different event.
    rec.event(w, "Warning", "ApplyFailed", "nixos-rebuild exited 2");
    // After the window, the same event starts a new Event object.
    advance(11 * 60_000);
    rec.event(w, "Warning", "ApplyFailed", "nixos-rebuild exited 1");
    await rec.flush();
    list = await eventsFor("ev-dedup");
    expect(list).to.have.length(3);
    expect(list.map((e) => e.count).sort()).to.deep.equal([1, 1, 3]);
  });

  it("creates a new Event when the old one has expired (deleted)", async () => {
    const w = await env.kube.create<Widget>(widgets, widget("ev-expired"));
    const rec = recorder();
    rec.event(w, "Normal", "Synced", "ok");
    await rec.flush();
    const [first] = await eventsFor("ev-expired");
    await env.kube.delete(events, { namespace: "default", name: first?.metadata.name ?? "" });
    advance(1000);
    rec.event(w, "Normal", "Synced", "ok");
    await rec.flush();
    const list = await eventsFor("ev-expired");
    expect(list).to.have.length(1);
    expect(list[0]?.metadata.name).to.not.equal(first?.metadata.name);
    expect(list[0]?.count).to.equal(1);
    expect(rec.stats()).to.include({ created: 2, failed: 0 });
  });

  it("rate limits per object: burst, then one per refill interval; drops are counted", async () => {
    const a = await env.kube.create<Widget>(widgets, widget("ev-rate-a"));
    const b = await env.kube.create<Widget>(widgets, widget("ev-rate-b"));
    const rec = recorder({ burst: 3, refillIntervalMs: 300_000 });
    for (let i = 0; i < 5; i++) rec.event(a, "Normal", "Step", `step ${i}`);
    rec.event(b, "Normal", "Step", "other object has its own bucket");
    await rec.flush();
    expect(await eventsFor("ev-rate-a")).to.have.length(3);
    expect(await eventsFor("ev-rate-b")).to.have.length(1);
    expect(rec.stats()).to.include({ created: 4, dropped: 2 });

    advance(299_000);
    rec.event(a, "Normal", "Step", "still limited");
    advance(2_000);
    rec.event(a, "Normal", "Step", "one token back");
    rec.event(a, "Normal", "Step", "and empty again");
    await rec.flush();
    const messages = (await eventsFor("ev-rate-a")).map((e) => e.message);
    expect(messages).to.include("one token back");
    expect(messages).to.not.include("still limited");
    expect(messages).to.not.include("and empty again");
    expect(rec.stats()).to.include({ created: 5, dropped: 4 });
  });

  it("truncates messages to 1024 characters and applies the redact hook", async () => {
    const w = await env.kube.create<Widget>(widgets, widget("ev-long"));
    const rec = recorder({ redact: (t) => redact(t, ["hunter2"]) });
    rec.event(w, "Warning", "ApplyFailed", `password hunter2 ${"x".repeat(3000)}`);
    await rec.flush();
    const [ev] = await eventsFor("ev-long");
    expect(ev?.message).to.have.length(MAX_MESSAGE_LENGTH);
    expect(ev?.message.startsWith("password [REDACTED] xxx")).to.equal(true);
  });

  it("cluster-scoped objects get their events in default", async () => {
    const ns: KubeObject = { apiVersion: "v1", kind: "Namespace", metadata: { name: "ev-ns", uid: "u-ns" } };
    const rec = recorder();
    rec.event(ns, "Normal", "Observed", "cluster-scoped");
    await rec.flush();
    expect(await eventsFor("ev-ns", "default")).to.have.length(1);
  });

  it("never throws: failures are counted and logged", async () => {
    const rec = recorder();
    const ghost: KubeObject = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "x", namespace: "no-such-ns", uid: "u1" },
    };
    expect(() => rec.event(ghost, "Normal", "Whatever", "m")).to.not.throw();
    expect(() => rec.event({ metadata: {} }, "Normal", "NoName", "m")).to.not.throw();
    await rec.flush();
    expect(rec.stats()).to.include({ failed: 1, created: 0 });

    // A recorder whose API server is gone: still no throw.
    const broken = createEventRecorder({
      kube: { ...env.kube, request: () => Promise.reject(new Error("connection refused")) },
      component: "c",
      logger: quietLogger,
    });
    broken.event(ghost, "Warning", "X", "y");
    await broken.flush();
    expect(broken.stats().failed).to.equal(1);
  });
});

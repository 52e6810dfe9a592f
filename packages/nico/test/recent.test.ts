import { expect } from "chai";
import type { KubeObject } from "@nio/runtime";
import { RecentWrites } from "../src/controller/recent.js";

const obj = (uid: string, rv: string): KubeObject => ({
  metadata: { name: "c", namespace: "ns", uid, resourceVersion: rv },
});

describe("RecentWrites (read-your-writes for emitted configurations)", () => {
  let now = 0;
  const clock = (): number => now;

  beforeEach(() => (now = 1_000));

  it("answers with our write while the cache lacks the object or has an older version", () => {
    const w = new RecentWrites<KubeObject>(10_000, clock);
    w.record("ns/c", obj("u1", "12"));
    expect(w.newest("ns/c", undefined)?.metadata.resourceVersion).to.equal("12");
    expect(w.newest("ns/c", obj("u1", "11"))?.metadata.resourceVersion).to.equal("12");
  });

  it("gives way to the cache once it caught up, and forgets the write", () => {
    const w = new RecentWrites<KubeObject>(10_000, clock);
    w.record("ns/c", obj("u1", "12"));
    expect(w.newest("ns/c", obj("u1", "15"))?.metadata.resourceVersion).to.equal("15");
    expect(w.newest("ns/c", undefined), "forgotten after catching up").to.equal(undefined);
  });

  it("trusts the cache after the TTL (the object may be gone) and for a recreated object (other uid)", () => {
    const w = new RecentWrites<KubeObject>(10_000, clock);
    w.record("ns/c", obj("u1", "12"));
    now += 10_001;
    expect(w.newest("ns/c", undefined)).to.equal(undefined);
    w.record("ns/c", obj("u1", "20"));
    expect(w.newest("ns/c", obj("u2", "3"))?.metadata.uid).to.equal("u2");
    w.record("ns/c", obj("u1", "30"));
    w.forget("ns/c");
    expect(w.newest("ns/c", undefined)).to.equal(undefined);
  });
});

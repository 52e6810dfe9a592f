import { expect } from "chai";
import { WorkQueue, defaultRateLimiter } from "../src/workqueue.js";

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("WorkQueue", () => {
  it("stores a key added many times while queued once", async () => {
    const q = new WorkQueue({ name: "t" });
    for (let i = 0; i < 5; i++) q.add("a");
    q.add("b");
    expect(q.length).to.equal(2);
    expect(await q.get()).to.equal("a");
    expect(await q.get()).to.equal("b");
    expect(q.length).to.equal(0);
  });

  it("never hands out a key that is being processed; re-adds it after done()", async () => {
    const q = new WorkQueue({ name: "t" });
    q.add("a");
    const first = await q.get();
    q.add("a"); // changed while being processed
    expect(q.length, "key in processing must not be queued again yet").to.equal(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await tick(5);
    expect(second).to.equal(undefined);
    q.done(first as string);
    await tick(1);
    expect(second).to.equal("a");
  });

  it("serializes each key under concurrent workers", async () => {
    const q = new WorkQueue({ name: "t" });
    const active = new Set<string>();
    let overlaps = 0;
    let processed = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const k = await q.get();
        if (k === undefined) return;
        if (active.has(k)) overlaps++;
        active.add(k);
        await tick(Math.random() * 3);
        active.delete(k);
        processed++;
        q.done(k);
      }
    };
    const workers = Array.from({ length: 8 }, () => worker());
    for (let round = 0; round < 50; round++) {
      for (const k of ["a", "b", "c"]) q.add(k);
      await tick(1);
    }
    await tick(30);
    q.shutdown();
    await Promise.all(workers);
    expect(overlaps).to.equal(0);
    expect(processed).to.be.greaterThan(3);
  });

  it("delays requeueAfter keys and keeps the earliest of two delays", async () => {
    const q = new WorkQueue({ name: "t" });
    q.addAfter("a", 200);
    q.addAfter("a", 20);
    expect(q.length).to.equal(0);
    const t0 = Date.now();
    expect(await q.get()).to.equal("a");
    const waited = Date.now() - t0;
    expect(waited).to.be.within(10, 150);
  });

  it("stops handing out keys at shutdown and lets in-flight work drain", async () => {
    const q = new WorkQueue({ name: "t" });
    q.add("a");
    q.add("b");
    const k = await q.get();
    q.shutdown();
    expect(await q.get()).to.equal(undefined);
    q.add("c");
    expect(q.length).to.equal(1, "intake stopped: only b remains, c was refused");
    let drained = false;
    const d = q.drained().then(() => (drained = true));
    await tick(1);
    expect(drained).to.equal(false);
    q.done(k as string);
    await d;
    expect(drained).to.equal(true);
  });
});

describe("defaultRateLimiter", () => {
  it("grows the per-key delay exponentially from 5 ms and caps it at 1000 s", () => {
    let t = 0;
    const rl = defaultRateLimiter({ now: () => t, burst: 1_000_000, qps: 1_000_000 });
    const delays = Array.from({ length: 5 }, () => rl.when("k"));
    expect(delays).to.deep.equal([5, 10, 20, 40, 80]);
    for (let i = 0; i < 40; i++) rl.when("k");
    expect(rl.when("k")).to.equal(1_000_000);
    expect(rl.retries("k")).to.equal(46);
    rl.forget("k");
    expect(rl.retries("k")).to.equal(0);
    expect(rl.when("k")).to.equal(5);
    t += 1;
  });

  it("keeps keys independent", () => {
    const rl = defaultRateLimiter({ burst: 1000 });
    rl.when("a");
    rl.when("a");
    expect(rl.when("b")).to.equal(5);
  });

  it("applies the overall token bucket once the burst is spent", () => {
    const t = 1_000;
    const rl = defaultRateLimiter({ now: () => t, qps: 10, burst: 3 });
    const delays = ["a", "b", "c", "d", "e"].map((k) => rl.when(k));
    expect(delays.slice(0, 3)).to.deep.equal([5, 5, 5]);
    expect(delays[3]).to.equal(100);
    expect(delays[4]).to.equal(200);
  });
});

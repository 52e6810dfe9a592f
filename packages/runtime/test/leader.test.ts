import { expect } from "chai";
import { createLeaderElector, type LeaderElector } from "../src/leader.js";
import { quietLogger, startTestEnv, type TestEnv } from "./support.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("Leader election on a Lease (real kube-apiserver)", function () {
  this.timeout(90_000);
  let env: TestEnv;
  before(async () => {
    env = await startTestEnv();
  });
  after(async () => env?.stop());

  function candidate(identity: string, log: string[]): LeaderElector {
    return createLeaderElector(env.kube, {
      namespace: "default",
      name: "test-lock",
      identity,
      onStartedLeading: () => log.push(`start:${identity}`),
      onStoppedLeading: () => log.push(`stop:${identity}`),
      logger: quietLogger,
    });
  }

  it("elects exactly one of two candidates, hands over within 20 s when the leader dies, never both", async () => {
    const log: string[] = [];
    const a = candidate("a", log);
    const b = candidate("b", log);
    let both = 0;
    const sampler = setInterval(() => void (a.isLeader() && b.isLeader() && both++), 20);
    try {
      a.start();
      await sleep(300);
      b.start();
      await sleep(4000);
      const leaders = [a, b].filter((c) => c.isLeader());
      expect(leaders).to.have.length(1);
      const [leader, standby] = a.isLeader() ? [a, b] : [b, a];
      // A crash: the leader stops renewing and does not release.
      const killedAt = Date.now();
      await leader.stop({ release: false });
      while (!standby.isLeader() && Date.now() - killedAt < 25_000) await sleep(100);
      const handover = Date.now() - killedAt;
      expect(standby.isLeader(), "standby took over").to.equal(true);
      expect(handover).to.be.below(20_000);
      expect(both, "never two leaders at once").to.equal(0);
      await standby.stop();
    } finally {
      clearInterval(sampler);
      await a.stop();
      await b.stop();
    }
  });

  it("releases the lease on a clean stop so a standby takes over at once", async () => {
    const log: string[] = [];
    const a = createLeaderElector(env.kube, {
      namespace: "default",
      name: "release-lock",
      identity: "a",
      onStartedLeading: () => log.push("start:a"),
      onStoppedLeading: () => log.push("stop:a"),
      logger: quietLogger,
    });
    const b = createLeaderElector(env.kube, {
      namespace: "default",
      name: "release-lock",
      identity: "b",
      onStartedLeading: () => log.push("start:b"),
      onStoppedLeading: () => log.push("stop:b"),
      logger: quietLogger,
    });
    a.start();
    await sleep(500);
    b.start();
    await sleep(500);
    expect(a.isLeader()).to.equal(true);
    const stoppedAt = Date.now();
    await a.stop();
    while (!b.isLeader() && Date.now() - stoppedAt < 10_000) await sleep(50);
    expect(Date.now() - stoppedAt).to.be.below(4000);
    expect(log).to.deep.equal(["start:a", "stop:a", "start:b"]);
    await b.stop();
  });
});

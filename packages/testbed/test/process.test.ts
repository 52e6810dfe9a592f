import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mochaHooks } from "../src/mocha-leak-check.js";
import { isAlive, runningProcesses, startProcess } from "../src/util/process.js";

describe("testbed processes", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tb-process-"));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it("runningProcesses lists a started process until it has ended", async () => {
    const proc = startProcess({ name: "sleeper", command: "sleep", args: ["30"], logFile: join(dir, "sleeper.log") });
    expect(runningProcesses()).to.include(proc);
    await proc.stop(1000);
    await proc.exited;
    expect(runningProcesses()).to.not.include(proc);
  });

  it("the root hook fails the run on a process a test left running, naming it, and stops it", async function () {
    // The hook stops every process it finds: with another suite's processes running this check would stop them too.
    if (runningProcesses().length > 0) this.skip();
    const proc = startProcess({ name: "leaked", command: "sleep", args: ["30"], logFile: join(dir, "leaked.log") });
    expect(runningProcesses()).to.deep.equal([proc]);
    let message = "";
    await mochaHooks.afterAll().catch((err: Error) => (message = err.message));
    expect(message).to.include("left 1 testbed process(es) running");
    expect(message).to.include(`leaked (pid ${proc.pid}`);
    await proc.exited;
    expect(isAlive(proc.pid)).to.equal(false);
    expect(runningProcesses()).to.deep.equal([]);
    await mochaHooks.afterAll(); // nothing left: no error
  });
});

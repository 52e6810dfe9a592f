// Root hook of the test run (`require` in .mocharc.json): a test that leaves a testbed process running (a control
// plane, an sshd host, a git server) fails the run, and the process is stopped instead of outliving it.
// Root hooks run before top-level (outside any describe) `after` hooks: stop testbeds in a describe's `after`.
import { runningProcesses } from "./util/process.js";

export const mochaHooks = {
  async afterAll(): Promise<void> {
    const left = runningProcesses();
    if (left.length === 0) return;
    await Promise.allSettled(left.map((p) => p.stop(2000)));
    const names = left.map((p) => `${p.name} (pid ${p.pid}, log ${p.logFile})`).join(", ");
    throw new Error(`the tests left ${left.length} testbed process(es) running, now stopped: ${names}`);
  },
};

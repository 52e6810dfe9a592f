// Preloaded into every operator process the stack starts (`node --import <this file> …/main.js`). The stack keeps
// the write end of the operator's stdin open and never writes to it; when the stack's process ends in any way (an
// exception, a signal, even SIGKILL) the pipe reaches end-of-file and the operator stops itself the way Kubernetes
// stops a pod: SIGTERM (the operator's own graceful shutdown), then exit after a grace period. No process outlives
// the stack that started it.
const GRACE_MS = 20_000;

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  process.kill(process.pid, "SIGTERM");
  setTimeout(() => process.exit(1), GRACE_MS).unref();
};

process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.on("error", stop);
process.stdin.resume();

import { expect } from "chai";
import {
  classifyError,
  CONFLICT_REQUEUE_MS,
  StalledError,
  TransientError,
  WaitingError,
  type ErrorClassification,
} from "../src/errors.js";
import { KubeApiError } from "../src/kube/errors.js";
import { AlreadyOwnedError, ApplyConflictError } from "../src/apply.js";

function kubeErr(code: number, reason: string, message = `HTTP ${code}`): KubeApiError {
  return new KubeApiError(message, code, reason);
}

describe("classifyError", () => {
  const table: { name: string; err: unknown; want: Partial<ErrorClassification> }[] = [
    {
      name: "StalledError: no requeue, Warning, error log",
      err: new StalledError("InvalidSpec", "spec.flake must start with #"),
      want: { kind: "stalled", reason: "InvalidSpec", logLevel: "error", eventType: "Warning", notify: true },
    },
    {
      name: "WaitingError: requeue after its delay, Normal, info log",
      err: new WaitingError("ControlPlaneNotReady", "waiting for cp-01", 15_000),
      want: {
        kind: "waiting",
        reason: "ControlPlaneNotReady",
        requeueAfterMs: 15_000,
        logLevel: "info",
        eventType: "Normal",
      },
    },
    {
      name: "TransientError: backoff (no fixed requeue), Warning",
      err: new TransientError("SshUnreachable", "connect ECONNREFUSED"),
      want: { kind: "transient", reason: "SshUnreachable", requeueAfterMs: undefined, eventType: "Warning" },
    },
    {
      name: "TransientError with a fixed requeue",
      err: new TransientError("GitFetchFailed", "timeout", { requeueAfterMs: 5000 }),
      want: { kind: "transient", reason: "GitFetchFailed", requeueAfterMs: 5000 },
    },
    {
      name: "409 Conflict: transient, short requeue, quiet",
      err: kubeErr(409, "Conflict", "the object has been modified"),
      want: {
        kind: "transient",
        reason: "Conflict",
        requeueAfterMs: CONFLICT_REQUEUE_MS,
        logLevel: "debug",
        notify: false,
      },
    },
    {
      name: "409 AlreadyExists: transient AlreadyExists",
      err: kubeErr(409, "AlreadyExists"),
      want: { kind: "transient", reason: "AlreadyExists", notify: true, requeueAfterMs: undefined },
    },
    {
      name: "404: transient NotFound",
      err: kubeErr(404, "NotFound"),
      want: { kind: "transient", reason: "NotFound", logLevel: "warn" },
    },
    {
      name: "422: stalled Invalid",
      err: kubeErr(422, "Invalid", "spec.size: Invalid value: 0"),
      want: { kind: "stalled", reason: "Invalid", eventType: "Warning", message: "spec.size: Invalid value: 0" },
    },
    {
      name: "transport error: transient ApiServerUnreachable",
      err: kubeErr(0, "TransportError", "connect ECONNREFUSED 127.0.0.1:6443"),
      want: { kind: "transient", reason: "ApiServerUnreachable", logLevel: "warn" },
    },
    {
      name: "403: transient Forbidden, error log (RBAC needs fixing)",
      err: kubeErr(403, "Forbidden"),
      want: { kind: "transient", reason: "Forbidden", logLevel: "error" },
    },
    {
      name: "500 with a server reason keeps it",
      err: kubeErr(500, "InternalError"),
      want: { kind: "transient", reason: "InternalError", logLevel: "warn" },
    },
    {
      name: "503 without a usable reason",
      err: kubeErr(503, "HTTP503"),
      want: { kind: "transient", reason: "ApiServerError" },
    },
    {
      name: "429: TooManyRequests",
      err: kubeErr(429, "TooManyRequests"),
      want: { kind: "transient", reason: "TooManyRequests" },
    },
    {
      name: "unknown Error: transient UnexpectedError",
      err: new Error("boom"),
      want: { kind: "transient", reason: "UnexpectedError", message: "boom", logLevel: "error", eventType: "Warning" },
    },
    {
      name: "a thrown string",
      err: "plain string",
      want: { kind: "transient", reason: "UnexpectedError", message: "plain string" },
    },
    {
      name: "a thrown object",
      err: { code: 1 },
      want: { kind: "transient", reason: "UnexpectedError", message: '{"code":1}' },
    },
    {
      name: "undefined",
      err: undefined,
      want: { kind: "transient", reason: "UnexpectedError", message: "undefined" },
    },
    {
      name: "AbortError: quiet Canceled",
      err: Object.assign(new Error("aborted"), { name: "AbortError" }),
      want: { kind: "transient", reason: "Canceled", notify: false, logLevel: "debug" },
    },
    {
      name: "a typed error in the cause chain wins; the outer message is kept",
      err: new Error("apply step failed", { cause: new StalledError("InvalidFlake", "bad attr") }),
      want: { kind: "stalled", reason: "InvalidFlake", message: "apply step failed" },
    },
    {
      name: "a KubeApiError as cause",
      err: new Error("claim failed", { cause: kubeErr(409, "Conflict") }),
      want: { kind: "transient", reason: "Conflict", message: "claim failed" },
    },
    {
      name: "AlreadyOwnedError is transient AlreadyOwned",
      err: new AlreadyOwnedError(
        { kind: "ConfigMap", metadata: { name: "x", namespace: "d" } },
        { apiVersion: "v1", kind: "Other", name: "o", uid: "u", controller: true },
      ),
      want: { kind: "transient", reason: "AlreadyOwned" },
    },
    {
      name: "ApplyConflictError is transient FieldManagerConflict",
      err: new ApplyConflictError("conflict", [{ field: ".data.a", manager: "m1" }], kubeErr(409, "Conflict")),
      want: { kind: "transient", reason: "FieldManagerConflict", notify: true },
    },
  ];

  for (const t of table) {
    it(t.name, () => {
      const got = classifyError(t.err);
      for (const [k, v] of Object.entries(t.want)) {
        expect(got[k as keyof ErrorClassification], k).to.deep.equal(v);
      }
      expect(got.message).to.be.a("string");
    });
  }

  it("keeps the cause and the reason on typed errors", () => {
    const cause = new Error("root");
    const e = new TransientError("GitFetchFailed", "fetch failed", { cause });
    expect(e.cause).to.equal(cause);
    expect(e.reason).to.equal("GitFetchFailed");
    expect(e.message).to.equal("fetch failed");
    expect(e).to.be.instanceOf(Error);
    expect(new StalledError("InvalidSpec", "x", { cause }).cause).to.equal(cause);
    expect(new WaitingError("Waiting", "x", 1, { cause }).cause).to.equal(cause);
  });

  it("refuses reasons that are not CamelCase and bad delays", () => {
    expect(() => new StalledError("invalid spec", "x")).to.throw(TypeError);
    expect(() => new StalledError("", "x")).to.throw(TypeError);
    expect(() => new WaitingError("Waiting", "x", -1)).to.throw(TypeError);
    expect(() => new WaitingError("Waiting", "x", Number.NaN)).to.throw(TypeError);
  });
});

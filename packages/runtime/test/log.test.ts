import { expect } from "chai";
import { Writable } from "node:stream";
import { childFor, createLogger, type LoggerOptions } from "../src/log.js";

function capture(): { stream: Writable; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb): void {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter((l) => l !== ""),
  };
}

function jsonLines(
  opts: Partial<LoggerOptions>,
  write: (l: ReturnType<typeof createLogger>) => void,
): Record<string, unknown>[] {
  const out = capture();
  const logger = createLogger({ name: "nio", destination: out.stream, ...opts });
  write(logger);
  return out.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("log", () => {
  it("json: one object per line with component, level name, ISO time, fields outside the message", () => {
    const [line, ...rest] = jsonLines({}, (l) =>
      l.info({ namespace: "default", name: "m1", machine: "m1", commit: "abc123" }, "configuration applied"),
    );
    expect(rest).to.have.length(0);
    expect(line).to.deep.include({
      level: "info",
      component: "nio",
      namespace: "default",
      name: "m1",
      machine: "m1",
      commit: "abc123",
      msg: "configuration applied",
    });
    expect(line?.time).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it("respects the level", () => {
    const lines = jsonLines({ level: "warn" }, (l) => {
      l.info("hidden");
      l.debug("hidden");
      l.warn("shown");
      l.error("shown too");
    });
    expect(lines.map((l) => l.level)).to.deep.equal(["warn", "error"]);
  });

  it("childFor adds namespace, name and kind", () => {
    const [line] = jsonLines({}, (l) =>
      childFor(l, { kind: "Machine", metadata: { name: "m1", namespace: "infra" } }, { controller: "machine" }).info(
        "reconciling",
      ),
    );
    expect(line).to.deep.include({ namespace: "infra", name: "m1", kind: "Machine", controller: "machine" });
    const [cluster] = jsonLines({}, (l) => childFor(l, { metadata: { name: "c" } }).info("x"));
    expect(cluster).to.not.have.property("namespace");
    expect(cluster).to.not.have.property("kind");
  });

  it("redacts well-known secret fields", () => {
    const [line] = jsonLines({}, (l) =>
      l.info({ token: "t0k3n", auth: { password: "pw", user: "u" }, secret: { data: { key: "x" } } }, "m"),
    );
    expect(line).to.deep.include({ token: "[REDACTED]" });
    expect(line?.auth).to.deep.equal({ password: "[REDACTED]", user: "u" });
    expect(line?.secret).to.deep.equal({ data: "[REDACTED]" });
    expect(JSON.stringify(line)).to.not.include("t0k3n");
  });

  it("serialises errors under err", () => {
    const [line] = jsonLines({}, (l) => l.error({ err: new Error("boom") }, "failed"));
    expect(line?.err).to.deep.include({ type: "Error", message: "boom" });
  });

  it("pretty: human-readable lines through a plain stream (no worker thread)", () => {
    const out = capture();
    const logger = createLogger({ name: "nio", format: "pretty", level: "debug", destination: out.stream });
    logger.debug({ machine: "m1" }, "hello pretty");
    const text = out.lines().join("\n");
    expect(text).to.match(/DEBUG.*hello pretty/);
    expect(text).to.include('machine: "m1"');
    expect(text).to.include('component: "nio"');
    expect(() => void JSON.parse(out.lines()[0] ?? "")).to.throw();
  });
});

import { expect } from "chai";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConfigError,
  EnvReader,
  envBool,
  envDurationSeconds,
  envEnum,
  envInt,
  envNumber,
  envString,
  loadRuntimeConfig,
  podNamespace,
  type Env,
} from "../src/config.js";

const noNamespaceFile = { namespaceFile: "/nonexistent/namespace", hostname: (): string => "test-host" };

function expectConfigError(fn: () => unknown, variable: string, value: string, rule: RegExp): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, "throws").to.be.instanceOf(ConfigError);
  const e = caught as ConfigError;
  expect(e.message).to.include(variable);
  expect(e.message).to.include(JSON.stringify(value));
  expect(e.message).to.match(rule);
  return e;
}

describe("config", () => {
  describe("helpers: defaults and valid values", () => {
    const env: Env = {
      S: "hello",
      I: "42",
      NEG: "-3",
      N: "60.0",
      N2: ".5",
      B1: "TRUE",
      B2: "no",
      E: "Pretty",
      D1: "90",
      D2: "1m30s",
      D3: "500ms",
      D4: "2.5",
      EMPTY: "  ",
    };
    const table: { name: string; got: () => unknown; want: unknown }[] = [
      { name: "string", got: () => envString(env, "S", "d"), want: "hello" },
      { name: "string default", got: () => envString(env, "UNSET", "d"), want: "d" },
      { name: "empty counts as unset", got: () => envInt(env, "EMPTY", 7), want: 7 },
      { name: "int", got: () => envInt(env, "I", 0, { min: 1, max: 100 }), want: 42 },
      { name: "negative int", got: () => envInt(env, "NEG", 0), want: -3 },
      { name: "int default", got: () => envInt(env, "UNSET", 8000), want: 8000 },
      { name: "number 60.0", got: () => envNumber(env, "N", 0), want: 60 },
      { name: "number .5", got: () => envNumber(env, "N2", 0), want: 0.5 },
      { name: "bool TRUE", got: () => envBool(env, "B1", false), want: true },
      { name: "bool no", got: () => envBool(env, "B2", true), want: false },
      { name: "bool default", got: () => envBool(env, "UNSET", true), want: true },
      { name: "enum any case", got: () => envEnum(env, "E", "json", ["json", "pretty"]), want: "pretty" },
      { name: "duration plain", got: () => envDurationSeconds(env, "D1", 0), want: 90 },
      { name: "duration 1m30s", got: () => envDurationSeconds(env, "D2", 0), want: 90 },
      { name: "duration 500ms", got: () => envDurationSeconds(env, "D3", 0), want: 0.5 },
      { name: "duration float", got: () => envDurationSeconds(env, "D4", 0), want: 2.5 },
    ];
    for (const t of table) it(t.name, () => expect(t.got()).to.deep.equal(t.want));
  });

  describe("helpers: every bad value names the variable, the value and the rule", () => {
    const table: { name: string; fn: () => unknown; variable: string; value: string; rule: RegExp }[] = [
      {
        name: "int not a number",
        fn: () => envInt({ METRICS_PORT: "eighty" }, "METRICS_PORT", 8000, { min: 1, max: 65535 }),
        variable: "METRICS_PORT",
        value: "eighty",
        rule: /an integer between 1 and 65535/,
      },
      {
        name: "int with decimals",
        fn: () => envInt({ X: "8000.5" }, "X", 1),
        variable: "X",
        value: "8000.5",
        rule: /an integer/,
      },
      {
        name: "int out of range",
        fn: () => envInt({ X: "70000" }, "X", 1, { max: 65535 }),
        variable: "X",
        value: "70000",
        rule: /<= 65535/,
      },
      {
        name: "int below min",
        fn: () => envInt({ X: "0" }, "X", 1, { min: 1 }),
        variable: "X",
        value: "0",
        rule: />= 1/,
      },
      {
        name: "number garbage",
        fn: () => envNumber({ X: "1e" }, "X", 1),
        variable: "X",
        value: "1e",
        rule: /a number/,
      },
      {
        name: "number out of range",
        fn: () => envNumber({ X: "-1.5" }, "X", 1, { min: 0 }),
        variable: "X",
        value: "-1.5",
        rule: /a number >= 0/,
      },
      {
        name: "bool garbage",
        fn: () => envBool({ ENABLE_LEADER_ELECTION: "maybe" }, "ENABLE_LEADER_ELECTION", true),
        variable: "ENABLE_LEADER_ELECTION",
        value: "maybe",
        rule: /true or false/,
      },
      {
        name: "enum not allowed",
        fn: () => envEnum({ LOG_FORMAT: "xml" }, "LOG_FORMAT", "json", ["json", "pretty"]),
        variable: "LOG_FORMAT",
        value: "xml",
        rule: /one of json, pretty/,
      },
      {
        name: "duration garbage",
        fn: () => envDurationSeconds({ D: "5 minutes" }, "D", 1),
        variable: "D",
        value: "5 minutes",
        rule: /a duration in seconds/,
      },
      {
        name: "duration partly valid",
        fn: () => envDurationSeconds({ D: "5mx" }, "D", 1),
        variable: "D",
        value: "5mx",
        rule: /a duration/,
      },
      {
        name: "duration out of range",
        fn: () => envDurationSeconds({ D: "0" }, "D", 1, { min: 1 }),
        variable: "D",
        value: "0",
        rule: /a duration in seconds >= 1/,
      },
      {
        name: "string pattern",
        fn: () => envString({ N: "Not_A_Label" }, "N", "x", { pattern: /^[a-z]+$/ }),
        variable: "N",
        value: "Not_A_Label",
        rule: /matching/,
      },
    ];
    for (const t of table) {
      it(t.name, () => {
        const e = expectConfigError(t.fn, t.variable, t.value, t.rule);
        expect(e.problems).to.have.length(1);
        expect(e.problems[0]?.variable).to.equal(t.variable);
      });
    }
  });

  describe("loadRuntimeConfig", () => {
    it("defaults", () => {
      expect(loadRuntimeConfig({}, noNamespaceFile)).to.deep.equal({
        metricsPort: 8000,
        healthPort: 8080,
        bindAddress: "0.0.0.0",
        logLevel: "info",
        logFormat: "json",
        enableLeaderElection: true,
        leaderElectionNamespace: "default",
        leaseDurationSeconds: 15,
        renewDeadlineSeconds: 10,
        retryPeriodSeconds: 2,
        podName: "test-host",
        shutdownGraceSeconds: 30,
        resyncSeconds: 600,
      });
    });

    it("reads every variable (LOG_LEVEL=DEBUG as in the seed)", () => {
      const cfg = loadRuntimeConfig(
        {
          METRICS_PORT: "9000",
          HEALTH_CHECK_PORT: "9090",
          BIND_ADDRESS: "127.0.0.1",
          LOG_LEVEL: "DEBUG",
          LOG_FORMAT: "pretty",
          ENABLE_LEADER_ELECTION: "false",
          LEADER_ELECTION_NAMESPACE: "nio-system",
          LEADER_ELECTION_ID: "nio.homystack.com",
          LEADER_ELECTION_LEASE_DURATION: "30",
          LEADER_ELECTION_RENEW_DEADLINE: "20s",
          LEADER_ELECTION_RETRY_PERIOD: "5",
          POD_NAME: "nio-abc",
          SHUTDOWN_GRACE_PERIOD: "45.0",
          RESYNC_PERIOD: "10m",
        },
        noNamespaceFile,
      );
      expect(cfg).to.deep.equal({
        metricsPort: 9000,
        healthPort: 9090,
        bindAddress: "127.0.0.1",
        logLevel: "debug",
        logFormat: "pretty",
        enableLeaderElection: false,
        leaderElectionNamespace: "nio-system",
        leaderElectionId: "nio.homystack.com",
        leaseDurationSeconds: 30,
        renewDeadlineSeconds: 20,
        retryPeriodSeconds: 5,
        podName: "nio-abc",
        shutdownGraceSeconds: 45,
        resyncSeconds: 600,
      });
    });

    for (const [given, want] of [
      ["TRACE", "trace"],
      ["Info", "info"],
      ["WARNING", "warn"],
      ["warn", "warn"],
      ["ERROR", "error"],
      ["CRITICAL", "fatal"],
      ["fatal", "fatal"],
    ] as const) {
      it(`LOG_LEVEL=${given} → ${want}`, () => {
        expect(loadRuntimeConfig({ LOG_LEVEL: given }, noNamespaceFile).logLevel).to.equal(want);
      });
    }

    it("collects every bad variable into one error", () => {
      const e = expectConfigError(
        () =>
          loadRuntimeConfig(
            {
              METRICS_PORT: "abc",
              HEALTH_CHECK_PORT: "99999",
              LOG_LEVEL: "verbose",
              LOG_FORMAT: "xml",
              ENABLE_LEADER_ELECTION: "sometimes",
              SHUTDOWN_GRACE_PERIOD: "-1",
              LEADER_ELECTION_NAMESPACE: "Bad_NS",
            },
            noNamespaceFile,
          ),
        "METRICS_PORT",
        "abc",
        /7 problems/,
      );
      expect(e.problems.map((p) => p.variable)).to.deep.equal([
        "METRICS_PORT",
        "HEALTH_CHECK_PORT",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "ENABLE_LEADER_ELECTION",
        "LEADER_ELECTION_NAMESPACE",
        "SHUTDOWN_GRACE_PERIOD",
      ]);
      for (const v of ["HEALTH_CHECK_PORT", '"99999"', "LOG_LEVEL", '"verbose"', "trace, debug, info"]) {
        expect(e.message).to.include(v);
      }
    });

    it("checks that renew deadline < lease duration and retry period < renew deadline", () => {
      const e = expectConfigError(
        () =>
          loadRuntimeConfig(
            {
              LEADER_ELECTION_LEASE_DURATION: "10",
              LEADER_ELECTION_RENEW_DEADLINE: "10",
              LEADER_ELECTION_RETRY_PERIOD: "12",
            },
            noNamespaceFile,
          ),
        "LEADER_ELECTION_RENEW_DEADLINE",
        "10",
        /less than LEADER_ELECTION_LEASE_DURATION/,
      );
      expect(e.problems.map((p) => p.variable)).to.deep.equal([
        "LEADER_ELECTION_RENEW_DEADLINE",
        "LEADER_ELECTION_RETRY_PERIOD",
      ]);
    });

    it("leader election namespace: service-account file, else POD_NAMESPACE, else default", async () => {
      const dir = await mkdtemp(join(tmpdir(), "cfg-"));
      try {
        const file = join(dir, "namespace");
        await writeFile(file, "nio-system\n");
        expect(podNamespace({ POD_NAMESPACE: "other" }, { namespaceFile: file })).to.equal("nio-system");
        expect(loadRuntimeConfig({}, { namespaceFile: file }).leaderElectionNamespace).to.equal("nio-system");
        expect(podNamespace({ POD_NAMESPACE: "other" }, noNamespaceFile)).to.equal("other");
        expect(podNamespace({}, noNamespaceFile)).to.equal("default");
        expect(
          loadRuntimeConfig({ LEADER_ELECTION_NAMESPACE: "explicit" }, { namespaceFile: file }).leaderElectionNamespace,
        ).to.equal("explicit");
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it("POD_NAME defaults to the host name", () => {
      expect(loadRuntimeConfig({}, noNamespaceFile).podName).to.equal("test-host");
    });
  });

  it("EnvReader collects problems and returns defaults meanwhile", () => {
    const r = new EnvReader({ NIO_RETRY_MAX_ATTEMPTS: "three", NIO_MACHINE_DISCOVERY_INTERVAL: "60.0" });
    expect(r.int("NIO_RETRY_MAX_ATTEMPTS", 3, { min: 1 })).to.equal(3);
    expect(r.durationSeconds("NIO_MACHINE_DISCOVERY_INTERVAL", 30)).to.equal(60);
    expect(() => r.done()).to.throw(ConfigError, /NIO_RETRY_MAX_ATTEMPTS="three" is invalid: expected an integer >= 1/);
  });
});

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { ConfigReported } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AgentConfig } from "../../src/config/config-schema.js";
import { DesiredConfigHandler, FileDesiredConfigStore } from "../../src/config/desired-config.js";
import { createLogger, logTeeOf } from "../../src/log/logger.js";
import { effectiveLogLevels, LogForwarding } from "../../src/logs/log-forwarding.js";
import { SqliteLogBuffer } from "../../src/logs/sqlite-log-buffer.js";
import { memoryLogger } from "../helpers/logger.js";
import { tempDir } from "../helpers/tmp.js";
import { FakeSink } from "../logs/fake-sink.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";
const DESIRED = `fieldgate/v1/${UUID}/config/desired`;
const REPORTED = `fieldgate/v1/${UUID}/config/reported`;

const logsConfig: Pick<AgentConfig, "log" | "logs"> = {
  log: { level: "info", format: "json" },
  logs: {
    forwardLevel: "info",
    batchMax: 100,
    flushIntervalMs: 2000,
    maxLinesPerSecond: 50,
    bufferMax: 5000,
    files: [],
    journal: false,
  },
};

describe("DesiredConfigHandler", () => {
  let tmp: ReturnType<typeof tempDir>;
  let sink: FakeSink;
  let applied: unknown[];
  const log = memoryLogger();

  const handler = (refuse?: (d: unknown) => boolean) => {
    const h = new DesiredConfigHandler({
      uuid: UUID,
      store: new FileDesiredConfigStore(tmp.dir),
      logger: log.logger,
      clock: () => 1_700_000_000_000,
      apply: (desired) => {
        if (refuse?.(desired)) throw new Error("this agent cannot do that");
        applied.push(desired);
        const levels = effectiveLogLevels(logsConfig, desired);
        return { logLevel: levels.local, forwardLevel: levels.forward };
      },
    });
    h.start();
    h.attach(sink);
    return h;
  };
  const send = (h: DesiredConfigHandler, body: unknown) =>
    h.handle(DESIRED, Buffer.from(typeof body === "string" ? body : JSON.stringify(body)));
  const reports = () => sink.published.filter((p) => p.topic === REPORTED).map((p) => p.payload as ConfigReported);
  const last = () => reports().at(-1);

  beforeEach(() => {
    tmp = tempDir();
    sink = new FakeSink();
    applied = [];
  });
  afterEach(() => tmp.cleanup());

  it("reports version 0 with the levels in force before anything is desired", async () => {
    handler();
    await new Promise((r) => setImmediate(r));
    expect(last()).toEqual({ v: 1, ts: 1_700_000_000_000, version: 0, logLevel: "info", forwardLevel: "info" });
  });

  it("applies a valid message, persists it and acknowledges its version", async () => {
    const h = handler();
    await send(h, { v: 1, version: 3, logLevel: "debug" });
    expect(applied.at(-1)).toEqual({ logLevel: "debug" });
    expect(last()).toEqual({ v: 1, ts: 1_700_000_000_000, version: 3, logLevel: "debug", forwardLevel: "debug" });
    expect(JSON.parse(readFileSync(new FileDesiredConfigStore(tmp.dir).path, "utf8"))).toEqual({
      version: 3,
      desired: { logLevel: "debug" },
    });
  });

  it("keeps the last good config on an invalid message and reports the error with the rejected version", async () => {
    const h = handler();
    await send(h, { v: 1, version: 1, logLevel: "warn" });
    const before = applied.length;
    await send(h, { v: 1, version: 2, logLevel: "loud" });
    await send(h, { v: 1, version: 3, colour: "red" });
    await send(h, "{not json");
    expect(applied.length).toBe(before);
    expect(h.current).toEqual({ version: 1, desired: { logLevel: "warn" } });
    const [r2, r3, r4] = reports().slice(-3);
    expect(r2).toMatchObject({ version: 1, logLevel: "warn", rejectedVersion: 2 });
    expect(r2?.error).toMatch(/VALIDATION_FAILED.*logLevel/);
    expect(r3).toMatchObject({ version: 1, rejectedVersion: 3 });
    expect(r3?.error).toMatch(/colour/);
    expect(r4).toMatchObject({ version: 1 });
    expect(r4?.error).toMatch(/PAYLOAD_MALFORMED/);
    // A later good version clears the error.
    await send(h, { v: 1, version: 4, logLevel: "error" });
    expect(last()).toEqual({ v: 1, ts: 1_700_000_000_000, version: 4, logLevel: "error", forwardLevel: "error" });
  });

  it("keeps the last good config when applying throws", async () => {
    const h = handler((d) => (d as { logLevel?: string }).logLevel === "trace");
    await send(h, { v: 1, version: 1, logLevel: "debug" });
    await send(h, { v: 1, version: 2, logLevel: "trace" });
    expect(h.current.version).toBe(1);
    expect(last()).toMatchObject({ version: 1, rejectedVersion: 2, error: expect.stringContaining("cannot do that") });
  });

  it("re-applies the persisted version after a restart, before any message", async () => {
    const h = handler();
    await send(h, { v: 1, version: 7, logLevel: "warn", logForward: { level: "error" } });
    applied = [];
    const restarted = handler();
    expect(applied).toEqual([{ logLevel: "warn", logForward: { level: "error" } }]);
    expect(restarted.current.version).toBe(7);
    expect(restarted.lastReport).toMatchObject({ version: 7, logLevel: "warn", forwardLevel: "error" });
  });

  it("ignores other topics and re-reports on every connect", async () => {
    const h = handler();
    await h.handle(`fieldgate/v1/${UUID}/jobs/notify`, Buffer.from("{}"));
    const count = reports().length;
    sink.connected = false;
    sink.goOnline();
    await new Promise((r) => setImmediate(r));
    expect(reports().length).toBe(count + 1);
  });
});

describe("log levels applied live", () => {
  it("logLevel sets both the agent's level and forwarding; logForward.level overrides forwarding only", () => {
    expect(effectiveLogLevels(logsConfig, undefined)).toMatchObject({ local: "info", forward: "info" });
    expect(effectiveLogLevels(logsConfig, { logLevel: "debug" })).toMatchObject({ local: "debug", forward: "debug" });
    expect(effectiveLogLevels(logsConfig, { logLevel: "debug", logForward: { level: "warn" } })).toMatchObject({
      local: "debug",
      forward: "warn",
    });
    expect(effectiveLogLevels(logsConfig, { logForward: { level: "trace" } })).toMatchObject({
      local: "info",
      forward: "trace",
    });
  });

  it("forwards debug lines after a switch without writing them to stdout when only forwarding asks for them", async () => {
    const stdout: string[] = [];
    const out = new Writable({
      write(chunk: Buffer, _e, cb) {
        stdout.push(chunk.toString());
        cb();
      },
    });
    const logger = createLogger("info", out as unknown as Parameters<typeof createLogger>[1]);
    const sink = new FakeSink();
    const tmp = tempDir();
    const store = new SqliteLogBuffer(join(tmp.dir, "agent.db"), { maxWaiting: logsConfig.logs.bufferMax });
    const forwarding = new LogForwarding({ uuid: UUID, config: logsConfig, logger, tee: logTeeOf(logger), store });
    forwarding.start();
    forwarding.attach(sink);
    logger.debug("before");
    forwarding.apply(effectiveLogLevels(logsConfig, { logForward: { level: "debug" } }));
    logger.debug("forwarded only");
    logger.info({ token: "s3cret-token" }, "with a secret");
    forwarding.apply(effectiveLogLevels(logsConfig, { logLevel: "debug" }));
    logger.debug("both");
    await forwarding.forwarder.flush();
    const msgs = sink.published.flatMap((p) => (p.payload as { entries: { msg: string }[] }).entries.map((e) => e.msg));
    expect(msgs).toEqual([
      expect.stringMatching(/^log level info, forwarding debug and above/),
      "forwarded only",
      expect.stringContaining("with a secret"),
      expect.stringMatching(/^log level debug, forwarding debug and above/),
      "both",
    ]);
    expect(msgs.join("\n")).not.toContain("s3cret-token");
    expect(msgs[2]).toContain("[redacted]");
    const printed = stdout.join("");
    expect(printed).not.toContain("forwarded only");
    expect(printed).not.toContain("before");
    expect(printed).toContain("both");
    await forwarding.stop(0);
    store.close();
    tmp.cleanup();
  });
});

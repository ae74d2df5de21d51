import { join } from "node:path";
import type { LogBatch } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { entryFromPinoLine, MAX_MSG_CHARS } from "../../src/logs/log-entry.js";
import { LogForwarder, type LogForwarderOptions } from "../../src/logs/log-forwarder.js";
import { SqliteLogBuffer } from "../../src/logs/sqlite-log-buffer.js";
import { tempDir } from "../helpers/tmp.js";
import { FakeSink } from "./fake-sink.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";
const TOPIC = `fieldgate/v1/${UUID}/logs`;

describe("LogForwarder", () => {
  let sink: FakeSink;
  let tmp: { dir: string; cleanup: () => void };
  const stores: SqliteLogBuffer[] = [];
  const make = (o: Partial<LogForwarderOptions> = {}) => {
    const store = new SqliteLogBuffer(join(tmp.dir, "agent.db"), { maxWaiting: o.bufferMax ?? 5000 });
    stores.push(store);
    const f = new LogForwarder({
      store,
      uuid: UUID,
      minLevel: "info",
      batchMax: 100,
      flushIntervalMs: 2000,
      maxLinesPerSecond: 50,
      bufferMax: 5000,
      clock: () => Date.now(),
      ...o,
    });
    f.attach(sink);
    f.start();
    return f;
  };
  const batches = () => sink.published.map((p) => p.payload as LogBatch);
  const entries = () => batches().flatMap((b) => b.entries);
  const line = (n: number, level: "debug" | "info" | "warn" = "info") => ({ ts: Date.now(), level, msg: `line ${n}` });

  beforeEach(() => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    sink = new FakeSink();
    tmp = tempDir();
  });
  afterEach(() => {
    vi.useRealTimers();
    for (const s of stores.splice(0)) s.close();
    tmp.cleanup();
  });

  it("batches lines and publishes them on the logs topic at each flush interval", async () => {
    const f = make();
    for (let i = 0; i < 5; i++) f.accept(line(i));
    expect(sink.published).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(2000);
    expect(sink.published).toHaveLength(1);
    expect(sink.published[0]?.topic).toBe(TOPIC);
    expect(batches()[0]).toMatchObject({ v: 1 });
    expect(entries().map((e) => e.msg)).toEqual(["line 0", "line 1", "line 2", "line 3", "line 4"]);
    await f.stop(0);
  });

  it("publishes as soon as batchMax lines are waiting, never more than batchMax per batch", async () => {
    const f = make({ batchMax: 10, maxLinesPerSecond: 1000 });
    for (let i = 0; i < 25; i++) f.accept(line(i));
    await vi.advanceTimersByTimeAsync(0);
    expect(batches().map((b) => b.entries.length)).toEqual([10, 10]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(batches().map((b) => b.entries.length)).toEqual([10, 10, 5]);
    expect(entries().map((e) => e.msg)).toEqual(Array.from({ length: 25 }, (_, i) => `line ${i}`));
    await f.stop(0);
  });

  it("ignores lines below the minimum level, and follows a live change of it", async () => {
    const f = make();
    f.accept(line(1, "debug"));
    f.accept(line(2, "info"));
    f.setMinLevel("debug");
    f.accept(line(3, "debug"));
    f.setMinLevel("warn");
    f.accept(line(4, "info"));
    f.accept(line(5, "warn"));
    await vi.advanceTimersByTimeAsync(2000);
    expect(entries().map((e) => e.msg)).toEqual(["line 2", "line 3", "line 5"]);
    expect(f.stats()).toMatchObject({ droppedRateLimit: 0, droppedBufferFull: 0 });
    await f.stop(0);
  });

  it("rate-limits to maxLinesPerSecond with a one-second burst, counts the drops and reports them once", async () => {
    const f = make({ maxLinesPerSecond: 10, batchMax: 1000 });
    for (let i = 0; i < 25; i++) f.accept(line(i)); // burst of 10 passes, 15 dropped
    await vi.advanceTimersByTimeAsync(2000);
    for (let i = 25; i < 30; i++) f.accept(line(i)); // the bucket refilled: all pass
    await vi.advanceTimersByTimeAsync(2000);
    const [first, second] = batches();
    expect(first?.entries[0]).toMatchObject({ level: "warn", msg: "dropped 15 log lines (rate limit)" });
    expect(first?.entries.slice(1).map((e) => e.msg)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i}`));
    // Reported once: the next flush has no drop line.
    expect(second?.entries.map((e) => e.msg)).toEqual(["line 25", "line 26", "line 27", "line 28", "line 29"]);
    expect(f.stats().droppedRateLimit).toBe(15);
    await f.stop(0);
  });

  it("buffers while offline up to bufferMax, drops the oldest beyond it, and reports the count on reconnect", async () => {
    sink.connected = false;
    const f = make({ bufferMax: 20, maxLinesPerSecond: 10_000, batchMax: 100 });
    for (let i = 0; i < 50; i++) f.accept(line(i));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sink.published).toHaveLength(0);
    expect(f.stats()).toMatchObject({ buffered: 20, droppedBufferFull: 30 });
    sink.goOnline();
    await vi.advanceTimersByTimeAsync(0);
    const all = entries();
    expect(all[0]).toMatchObject({ level: "warn", msg: "dropped 30 log lines (buffer full)" });
    expect(all.slice(1).map((e) => e.msg)).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i + 30}`));
    await f.stop(0);
  });

  it("keeps a batch and its drop report when the publish fails, and sends them with the next flush", async () => {
    const f = make({ maxLinesPerSecond: 2 });
    for (let i = 0; i < 5; i++) f.accept(line(i)); // 2 pass, 3 dropped
    sink.failNext = 1;
    await vi.advanceTimersByTimeAsync(2000);
    expect(sink.published).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(2000);
    expect(entries().map((e) => e.msg)).toEqual(["dropped 3 log lines (rate limit)", "line 0", "line 1"]);
    await f.stop(0);
  });

  it("truncates messages to the schema's limit with an ellipsis", async () => {
    const f = make();
    f.accept({ ts: Date.now(), level: "info", msg: "x".repeat(MAX_MSG_CHARS + 100) });
    await vi.advanceTimersByTimeAsync(2000);
    const msg = entries()[0]?.msg ?? "";
    expect(msg).toHaveLength(MAX_MSG_CHARS);
    expect(msg.endsWith("…")).toBe(true);
    await f.stop(0);
  });
});

describe("entryFromPinoLine", () => {
  it("keeps level, time and message, and the context fields as they were serialized (redacted)", () => {
    const line = JSON.stringify({
      level: 40,
      time: "2024-01-02T03:04:05.000Z",
      pid: 1,
      hostname: "gw",
      name: "fieldgate-agent",
      msg: "enrollment refused",
      token: "[redacted]",
      code: "ENROLL_TOKEN_INVALID",
    });
    expect(entryFromPinoLine(line)).toEqual({
      ts: Date.parse("2024-01-02T03:04:05.000Z"),
      level: "warn",
      msg: 'enrollment refused {"token":"[redacted]","code":"ENROLL_TOKEN_INVALID"}',
    });
    expect(entryFromPinoLine("not json")).toBeUndefined();
  });
});

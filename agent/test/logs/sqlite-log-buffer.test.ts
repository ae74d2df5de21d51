import { join } from "node:path";
import type { LogBatch } from "@fieldgate/shared";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { LogEntry } from "../../src/logs/log-entry.js";
import { LogForwarder, type LogForwarderOptions } from "../../src/logs/log-forwarder.js";
import { type LogBuffer, SqliteLogBuffer } from "../../src/logs/sqlite-log-buffer.js";
import { SqliteOutboxStore } from "../../src/outbox/sqlite-outbox-store.js";
import { tempDir } from "../helpers/tmp.js";
import { FakeSink } from "./fake-sink.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";
const NOW = 1_700_000_000_000;
const line = (n: number): LogEntry => ({ ts: NOW + n, level: "info", msg: `line ${n}` });
const lines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => line(from + i));
const msgs = (entries: readonly { msg: string }[]) => entries.map((e) => e.msg);

/** A sink that records every attempt, acknowledged or not, and can hold back PUBACKs. */
class RecordingSink extends FakeSink {
  readonly attempts: LogBatch[] = [];
  override async publish(topic: string, payload: string | Buffer): Promise<void> {
    if (this.connected) this.attempts.push(JSON.parse(payload.toString()) as LogBatch);
    return super.publish(topic, payload);
  }
}

describe("SqliteLogBuffer", () => {
  let tmp: { dir: string; cleanup: () => void };
  let path: string;
  const open: LogBuffer[] = [];
  const openBuffer = (maxWaiting = 5000) => {
    const b = new SqliteLogBuffer(path, { maxWaiting });
    open.push(b);
    return b;
  };

  beforeEach(() => {
    tmp = tempDir();
    path = join(tmp.dir, "agent.db");
  });
  afterEach(() => {
    for (const b of open.splice(0)) b.close();
    tmp.cleanup();
  });

  it("appends lines, forms batches in order within the entry limit, and deletes a batch only when acknowledged", () => {
    const b = openBuffer();
    expect(b.append(lines(0, 25))).toEqual({ appended: 25, dropped: 0 });
    expect(b.waiting).toBe(25);
    const first = b.nextBatch(10, 512 * 1024, NOW);
    expect(first).toMatchObject({ seq: 1, lines: 10 });
    expect(msgs(first?.entries ?? [])).toEqual(msgs(lines(0, 10)));
    expect(b.pendingBatch()).toEqual(first);
    expect({ waiting: b.waiting, stored: b.stored }).toEqual({ waiting: 15, stored: 25 });
    b.ack(1);
    expect(b.pendingBatch()).toBeUndefined();
    expect({ waiting: b.waiting, stored: b.stored }).toEqual({ waiting: 15, stored: 15 });
    b.ack(1); // twice is harmless
    const second = b.nextBatch(100, 512 * 1024, NOW);
    expect(second).toMatchObject({ seq: 2, lines: 15 });
    b.ack(2);
    expect(b.nextBatch(100, 512 * 1024, NOW)).toBeUndefined();
    expect(b.stored).toBe(0);
  });

  it("keeps a batch under the byte limit", () => {
    const b = openBuffer();
    b.append(Array.from({ length: 10 }, (_, i) => ({ ts: NOW, level: "info" as const, msg: `${i}`.repeat(4000) })));
    const batch = b.nextBatch(100, 20_000, NOW);
    expect(batch?.lines).toBe(4);
    expect(Buffer.byteLength(JSON.stringify(batch?.entries))).toBeLessThan(20_000);
  });

  it("gives an unacknowledged batch back identical after the database is reopened, and numbers on from it", () => {
    const b = openBuffer();
    b.append(lines(0, 5), { rate: 3, buffer: 0 });
    const formed = b.nextBatch(100, 512 * 1024, NOW);
    const stream = b.stream;
    b.append(lines(5, 8));
    b.close();
    const again = openBuffer();
    expect(again.stream).toBe(stream);
    expect(again.pendingBatch()).toEqual(formed);
    expect(formed?.entries[0]).toEqual({ ts: NOW, level: "warn", msg: "dropped 3 log lines (rate limit)" });
    expect({ waiting: again.waiting, stored: again.stored }).toEqual({ waiting: 3, stored: 8 });
    again.ack(formed?.seq ?? 0);
    expect(again.nextBatch(100, 512 * 1024, NOW + 1)).toMatchObject({ seq: 2, lines: 3 });
  });

  it("drops the oldest lines not yet in a batch beyond the cap, counts them, and reports the count in the next batch", () => {
    const b = openBuffer(20);
    b.append(lines(0, 5));
    const inFlight = b.nextBatch(100, 512 * 1024, NOW);
    expect(b.append(lines(5, 30))).toEqual({ appended: 25, dropped: 5 });
    expect(b.append(lines(30, 40))).toEqual({ appended: 10, dropped: 10 });
    // The batch already formed is promised: the cap never takes its lines.
    expect(b.pendingBatch()).toEqual(inFlight);
    b.close();
    const reopened = openBuffer(20);
    reopened.ack(inFlight?.seq ?? 0);
    const next = reopened.nextBatch(100, 512 * 1024, NOW + 5);
    expect(next?.entries[0]).toEqual({ ts: NOW + 5, level: "warn", msg: "dropped 15 log lines (buffer full)" });
    expect(msgs(next?.entries.slice(1) ?? [])).toEqual(msgs(lines(20, 40)));
    reopened.ack(next?.seq ?? 0);
    // Reported once.
    reopened.append(lines(40, 41));
    expect(msgs(reopened.nextBatch(100, 512 * 1024, NOW)?.entries ?? [])).toEqual(["line 40"]);
  });

  it("shares agent.db with the outbox without touching its schema version", () => {
    const outbox = new SqliteOutboxStore(path, { maxRows: 100 });
    const b = openBuffer();
    b.append(lines(0, 1));
    outbox.append([{ name: "t", ts: NOW, value: 1 }]);
    expect(outbox.backlog().rows).toBe(1);
    outbox.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma("user_version", { simple: true })).toBe(1);
    db.close();
  });

  it("skips damaged rows, in a formed batch the same way on every read, and never throws", () => {
    const b = openBuffer();
    b.append(lines(0, 6));
    const formed = b.nextBatch(3, 512 * 1024, NOW);
    const db = new Database(path);
    db.prepare("UPDATE log_lines SET level = 'loud' WHERE msg = 'line 1'").run();
    db.prepare("UPDATE log_lines SET msg = x'00ff' WHERE msg = 'line 4'").run();
    db.prepare("UPDATE log_lines SET ts = 'yesterday' WHERE msg = 'line 5'").run();
    db.prepare("UPDATE log_batches SET reports = 'not json'").run();
    db.close();
    const pending = b.pendingBatch();
    expect(pending?.seq).toBe(formed?.seq);
    expect(msgs(pending?.entries ?? [])).toEqual(["line 0", "line 2"]);
    expect(b.pendingBatch()).toEqual(pending);
    b.ack(pending?.seq ?? 0);
    expect(msgs(b.nextBatch(100, 512 * 1024, NOW)?.entries ?? [])).toEqual(["line 3"]);
  });
});

describe("LogForwarder with the durable buffer", () => {
  let tmp: { dir: string; cleanup: () => void };
  let path: string;
  let sink: RecordingSink;
  const open: SqliteLogBuffer[] = [];
  const forwarders: LogForwarder[] = [];
  const make = (o: Partial<LogForwarderOptions> = {}, store?: LogBuffer) => {
    const buffer = store ?? new SqliteLogBuffer(path, { maxWaiting: o.bufferMax ?? 5000 });
    if (buffer instanceof SqliteLogBuffer) open.push(buffer);
    const f = new LogForwarder({
      uuid: UUID,
      minLevel: "info",
      batchMax: 100,
      flushIntervalMs: 2000,
      maxLinesPerSecond: 1000,
      bufferMax: 5000,
      store: buffer,
      ...o,
    });
    forwarders.push(f);
    f.attach(sink);
    f.start();
    return f;
  };

  beforeEach(() => {
    vi.useFakeTimers({ now: NOW });
    tmp = tempDir();
    path = join(tmp.dir, "agent.db");
    sink = new RecordingSink();
  });
  afterEach(async () => {
    for (const f of forwarders.splice(0)) await f.stop(0);
    vi.useRealTimers();
    for (const b of open.splice(0)) b.close();
    tmp.cleanup();
  });

  it("commits the lines of one tick in one transaction, not one per line", async () => {
    sink.connected = false;
    const store = new SqliteLogBuffer(path, { maxWaiting: 5000 });
    open.push(store);
    const append = vi.spyOn(store, "append");
    const f = make({}, store);
    for (let i = 0; i < 60; i++) f.accept(line(i));
    expect(store.waiting).toBe(0); // staged, not yet committed
    await vi.advanceTimersByTimeAsync(100);
    expect(append).toHaveBeenCalledTimes(1);
    expect(store.waiting).toBe(60);
  });

  it("sends the lines of a forwarder that died before the PUBACK again after a restart, as the same batch", async () => {
    sink.connected = false;
    const first = make({ batchMax: 4 });
    for (let i = 0; i < 6; i++) first.accept(line(i));
    await vi.advanceTimersByTimeAsync(100);
    // Online, but the broker never acknowledges: the process dies with the batch in flight.
    sink.connected = true;
    sink.failNext = 1;
    await first.flush();
    const lost = sink.attempts[0];
    expect(lost).toMatchObject({ v: 1, seq: 1, stream: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(msgs(lost?.entries ?? [])).toEqual(msgs(lines(0, 4)));
    // "Dies": no stop, no flush; the database file is all that is left.
    forwarders.splice(0);
    for (const b of open.splice(0)) b.close();

    sink = new RecordingSink();
    const second = make({ batchMax: 4 });
    await vi.advanceTimersByTimeAsync(2000);
    expect(sink.attempts[0]).toEqual(lost);
    expect(msgs(sink.published.flatMap((p) => (p.payload as LogBatch).entries))).toEqual(msgs(lines(0, 6)));
    expect(sink.attempts.map((a) => a.seq)).toEqual([1, 2]);
    expect(second.stats()).toMatchObject({ buffered: 0, forwarded: 6 });
  });

  it("keeps the drop counts across a restart and reports them once", async () => {
    sink.connected = false;
    const first = make({ maxLinesPerSecond: 2, bufferMax: 3 });
    for (let i = 0; i < 5; i++) first.accept(line(i)); // 2 pass, 3 over the rate
    await vi.advanceTimersByTimeAsync(1000);
    for (let i = 5; i < 9; i++) first.accept(line(i)); // 2 pass (refilled), 2 over the rate; 4 stored, cap 3
    await vi.advanceTimersByTimeAsync(100);
    expect(first.stats()).toMatchObject({ droppedRateLimit: 5, droppedBufferFull: 1, buffered: 3 });
    forwarders.splice(0);
    for (const b of open.splice(0)) b.close();

    sink = new RecordingSink();
    make({ bufferMax: 3 });
    await vi.advanceTimersByTimeAsync(2000);
    expect(msgs(sink.attempts.flatMap((a) => a.entries))).toEqual([
      "dropped 5 log lines (rate limit)",
      "dropped 1 log lines (buffer full)",
      "line 1",
      "line 5",
      "line 6",
    ]);
  });

  it("never throws when the buffer fails: lines wait in memory, the failure is told once, and they go once it works", async () => {
    const store = new SqliteLogBuffer(path, { maxWaiting: 5000 });
    open.push(store);
    let broken = true;
    const flaky: LogBuffer = {
      get stream() {
        return store.stream;
      },
      get waiting() {
        return store.waiting;
      },
      get stored() {
        return store.stored;
      },
      append: (entries, drops) => {
        if (broken) throw new Error("disk I/O error");
        return store.append(entries, drops);
      },
      pendingBatch: () => store.pendingBatch(),
      nextBatch: (max, bytes, now) => store.nextBatch(max, bytes, now),
      ack: (seq) => store.ack(seq),
      close: () => store.close(),
    };
    const errors: string[] = [];
    const f = make({ bufferMax: 10, onStoreError: (m) => errors.push(m) }, flaky);
    for (let i = 0; i < 15; i++) expect(() => f.accept(line(i))).not.toThrow();
    await vi.advanceTimersByTimeAsync(2000);
    expect(errors).toEqual(["disk I/O error"]);
    expect(sink.attempts).toHaveLength(0);
    expect(f.stats()).toMatchObject({ buffered: 10, droppedBufferFull: 5 });
    broken = false;
    await vi.advanceTimersByTimeAsync(2000);
    expect(msgs(sink.attempts.flatMap((a) => a.entries))).toEqual([
      "dropped 5 log lines (buffer full)",
      ...msgs(lines(5, 15)),
    ]);
  });

  it("forwards around a damaged row instead of failing on it", async () => {
    sink.connected = false;
    const f = make();
    for (let i = 0; i < 3; i++) f.accept(line(i));
    await vi.advanceTimersByTimeAsync(100);
    const db = new Database(path);
    db.prepare("UPDATE log_lines SET level = 42 WHERE msg = 'line 1'").run();
    db.close();
    sink.goOnline();
    await vi.advanceTimersByTimeAsync(0);
    expect(msgs(sink.attempts.flatMap((a) => a.entries))).toEqual(["line 0", "line 2"]);
    expect(f.stats().buffered).toBe(0);
  });
});

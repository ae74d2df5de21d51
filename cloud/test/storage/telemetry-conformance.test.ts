import type { TelemetryBatch } from "@fieldgate/shared";
import { afterEach, describe, expect, it } from "vitest";
import { BACKENDS, openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import type { CloudDatabase } from "../../src/storage/cloud-database.js";
import { type StoredReading, TelemetryReader } from "../../src/telemetry/telemetry-reader.js";
import { TelemetryWriter } from "../../src/telemetry/telemetry-writer.js";
import { addDevices, deleteDevice, deviceActivity, fixtureUuid, rowsOf } from "../telemetry/fixture-devices.js";

const STREAM = "0123456789abcdef0123456789abcdef";
const T0 = Date.parse("2026-03-04T12:00:00Z");

/** The telemetry store's contract, the same on every backend: the writer, the reader and their tables. */
describe.each(BACKENDS)("telemetry store on $name", ({ server }) => {
  let test: TestDatabase;
  let database: CloudDatabase;
  let writer: TelemetryWriter;
  let reader: TelemetryReader;
  const clock = { now: T0 };

  const batch = (seq: number, readings: TelemetryBatch["readings"] = [{ name: "n", ts: T0 + seq, value: seq }]) => ({
    v: 1 as const,
    stream: STREAM,
    seq,
    readings,
  });
  const device = async (id = 1) => ({ id, uuid: fixtureUuid(id), ...(await deviceActivity(database, id)) });
  const newest = async (id = 1, query = {}) => (await reader.telemetry(await device(id), query)).items;
  const all = async (id = 1, pageSize = 1000, query = {}): Promise<StoredReading[][]> => {
    const pages: StoredReading[][] = [];
    for await (const page of reader.pages(id, query, pageSize)) pages.push(page);
    return pages;
  };

  afterEach(async () => {
    await test.dispose();
  });

  const open = async () => {
    test = await openTestDatabase(server);
    database = test.database;
    await addDevices(database, [1, 2]);
    writer = new TelemetryWriter(database, () => clock.now);
    reader = new TelemetryReader(database);
  };

  it("resolves a batch only once it is committed, and stores a batch sent twice once", async () => {
    await open();
    let settled = false;
    const first = writer.write(1, batch(1)).then((stored) => {
      settled = true;
      return stored;
    });
    // Queued for this turn's commit: neither acknowledged nor visible yet.
    expect(settled).toBe(false);
    expect(await newest()).toEqual([]);
    const again = writer.write(1, batch(1));
    expect([await first, await again]).toEqual([true, false]);
    expect(await writer.write(1, batch(1))).toBe(false);
    expect((await newest()).map((r) => r.seq)).toEqual([1]);
    // The device row counts what was stored, once, and moved its last sign of life to the commit.
    expect(await deviceActivity(database, 1)).toEqual({ telemetry_count: 1, last_seen: T0 });
  });

  it("fills gaps with late batches once, and keeps streams and devices apart", async () => {
    await open();
    const arrivals = [2, 5, 3, 3, 1, 4, 5, 2];
    const results: boolean[] = [];
    for (const seq of arrivals) results.push(await writer.write(1, batch(seq)));
    expect(results).toEqual([true, true, true, false, true, true, false, false]);
    expect(await rowsOf(database, "telemetry_seq_gaps", 1)).toBe(0);
    expect(await writer.write(2, batch(1))).toBe(true);
    expect(await writer.write(1, { ...batch(1), stream: "fedcba9876543210" })).toBe(true);
    expect(
      (await all(1))
        .flat()
        .filter((r) => r.stream === STREAM)
        .map((r) => r.seq),
    ).toEqual([1, 2, 3, 4, 5]);
    expect((await deviceActivity(database, 1)).telemetry_count).toBe(6);
    expect((await deviceActivity(database, 2)).telemetry_count).toBe(1);
  });

  it("takes a redelivery after a failed commit", async () => {
    await open();
    // A time that is no integer fails the commit on either backend.
    const poisoned = batch(2, [{ name: "n", ts: 1.5, value: 1 }]);
    const [good, bad] = await Promise.allSettled([writer.write(1, batch(1)), writer.write(1, poisoned)]);
    expect(good).toEqual({ status: "fulfilled", value: true });
    expect(bad.status).toBe("rejected");
    expect(await writer.write(1, batch(2))).toBe(true);
    // A fresh writer (a restart) reads the marks from the table.
    expect(await new TelemetryWriter(database).write(1, batch(2))).toBe(false);
    expect((await newest()).map((r) => r.seq)).toEqual([2, 1]);
  });

  it("stores a commit larger than one statement may carry (PostgreSQL: 65535 parameters)", async () => {
    await open();
    const readings = Array.from({ length: 7000 }, (_, i) => ({ name: "n", ts: T0 + i, value: i }));
    expect(await Promise.all([writer.write(1, batch(1, readings)), writer.write(2, batch(1))])).toEqual([true, true]);
    expect((await all(1, 5000)).flat().map((r) => r.value)).toEqual(readings.map((r) => r.value));
    expect((await deviceActivity(database, 1)).telemetry_count).toBe(7000);
  });

  it("round-trips numbers, strings and booleans, with unit and source", async () => {
    await open();
    await writer.write(
      1,
      batch(1, [
        { name: "temp", ts: T0, value: -12.25, unit: "C", source: "probe-1" },
        { name: "big", ts: T0 + 1, value: 2 ** 53 - 1 },
        { name: "state", ts: T0 + 2, value: "open 'ü' \"x\"" },
        { name: "empty", ts: T0 + 3, value: "" },
        { name: "on", ts: T0 + 4, value: true },
        { name: "off", ts: T0 + 5, value: false },
      ]),
    );
    const readings = (await all()).flat();
    expect(readings.map((r) => [r.name, r.value])).toEqual([
      ["temp", -12.25],
      ["big", 2 ** 53 - 1],
      ["state", "open 'ü' \"x\""],
      ["empty", ""],
      ["on", true],
      ["off", false],
    ]);
    expect(readings[0]).toEqual({
      ts: new Date(T0).toISOString(),
      name: "temp",
      value: -12.25,
      unit: "C",
      source: "probe-1",
      stream: STREAM,
      seq: 1,
    });
    expect(readings[1]).toMatchObject({ unit: null, source: null });
  });

  it("keeps readings of the same millisecond in arrival order, newest first in the latest view", async () => {
    await open();
    await Promise.all(
      Array.from({ length: 7 }, (_, i) => writer.write(1, batch(i + 1, [{ name: "n", ts: T0, value: i }]))),
    );
    await writer.write(1, batch(8, [{ name: "n", ts: T0, value: 7 }]));
    expect((await all(1, 3)).map((page) => page.map((r) => r.value))).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7],
    ]);
    expect((await newest(1, { limit: 3 })).map((r) => r.value)).toEqual([7, 6, 5]);
  });

  it("pages and filters the reader: range (to exclusive), name, source, limit", async () => {
    await open();
    await writer.write(
      1,
      batch(
        1,
        Array.from({ length: 10 }, (_, i) => ({
          name: i % 2 === 0 ? "even" : "odd",
          ts: T0 + i * 1000,
          value: i,
          ...(i < 5 ? { source: "a" } : {}),
        })),
      ),
    );
    expect((await all(1, 4)).map((p) => p.length)).toEqual([4, 4, 2]);
    expect((await all(1, 5)).map((p) => p.length)).toEqual([5, 5]);
    const iso = (ms: number) => new Date(ms).toISOString();
    const range = { from: iso(T0 + 2000), to: iso(T0 + 6000) };
    expect((await all(1, 1000, range)).flat().map((r) => r.value)).toEqual([2, 3, 4, 5]);
    expect((await newest(1, range)).map((r) => r.value)).toEqual([5, 4, 3, 2]);
    expect((await newest(1, { name: "odd", limit: 2 })).map((r) => r.value)).toEqual([9, 7]);
    expect((await newest(1, { source: "a", name: "even" })).map((r) => r.value)).toEqual([4, 2, 0]);
    expect(await reader.telemetry(await device(1), { limit: 1 })).toEqual({
      uuid: fixtureUuid(1),
      count: 10,
      items: [expect.objectContaining({ value: 9 })],
    });
  });

  it("removes a deleted device's telemetry and marks, and nothing of another device", async () => {
    await open();
    await writer.write(1, batch(1));
    await writer.write(1, batch(3));
    await writer.write(2, batch(1));
    expect(await rowsOf(database, "telemetry_seq_gaps", 1)).toBe(1);
    await deleteDevice(database, 1);
    for (const table of ["telemetry", "telemetry_streams", "telemetry_seq_gaps"]) {
      expect(await rowsOf(database, table, 1), table).toBe(0);
    }
    expect((await newest(2)).map((r) => r.seq)).toEqual([1]);
  });
});

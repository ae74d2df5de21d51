import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import type { CloudDatabase } from "../../src/storage/cloud-database.js";
import { telemetryCsvLine, telemetryCsvStream } from "../../src/telemetry/telemetry-export.js";
import { TelemetryReader } from "../../src/telemetry/telemetry-reader.js";
import { TelemetryWriter } from "../../src/telemetry/telemetry-writer.js";
import { addDevices } from "./fixture-devices.js";

/** The telemetry CSV is read page by page, only as fast as its reader takes it. */
describe("telemetry CSV export", () => {
  let test: TestDatabase;
  let database: CloudDatabase;
  let reader: TelemetryReader;
  let writer: TelemetryWriter;
  const deviceId = 1;
  const BASE = Date.parse("2026-03-01T00:00:00Z");
  /** One reading per batch, all in one commit: batch `seq` holds `value` at `ts`. */
  const write = (readings: { ts: number; value: number; seq: number }[]) =>
    Promise.all(
      readings.map(({ ts, value, seq }) =>
        writer.write(deviceId, { v: 1, stream: "main", seq, readings: [{ name: "temp", ts, value, unit: "C" }] }),
      ),
    );

  beforeEach(async () => {
    test = await openTestDatabase();
    database = test.database;
    await addDevices(database, [deviceId]);
    reader = new TelemetryReader(database);
    writer = new TelemetryWriter(database);
    await write(Array.from({ length: 5_000 }, (_, i) => ({ ts: BASE + i, value: i, seq: i + 1 })));
  });
  afterEach(async () => {
    await test.dispose();
  });

  it("sends its first bytes before the last row is read, and frees the connection between pages", async () => {
    const stream = telemetryCsvStream(reader.pages(deviceId, {}, 100));
    const chunks = stream[Symbol.asyncIterator]();
    const first = await chunks.next();
    expect(first.value.toString()).toBe("ts,name,value,unit,source,stream,seq\r\n");
    // Rows written after the first bytes went out are still in the range, so the range was not read yet;
    // and the database takes other writes meanwhile.
    await write([{ ts: BASE + 10_000, value: -1, seq: 5_001 }]);
    let text = "";
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) text += next.value.toString();
    const lines = text.split("\r\n").filter(Boolean);
    expect(lines).toHaveLength(5_001);
    expect(lines[0]).toBe(`${new Date(BASE).toISOString()},temp,0,C,,main,1`);
    expect(lines.at(-1)).toBe(`${new Date(BASE + 10_000).toISOString()},temp,-1,C,,main,5001`);
  });

  it("keeps readings that share a time in insertion order across a page boundary", async () => {
    await sql`DELETE FROM telemetry`.execute(database.kysely);
    await write(Array.from({ length: 250 }, (_, i) => ({ ts: BASE, value: i, seq: 10_001 + i })));
    const seqs: number[] = [];
    for await (const page of reader.pages(deviceId, {}, 100)) seqs.push(...page.map((r) => r.seq));
    expect(seqs).toEqual(Array.from({ length: 250 }, (_, i) => 10_001 + i));
  });

  it("guards text cells against formulas but leaves numbers as numbers", () => {
    const base = { ts: "2026-03-01T00:00:00.000Z", unit: null, source: null, stream: "main", seq: 1 };
    expect(telemetryCsvLine({ ...base, name: "@sum", value: "+1" })).toBe(
      "2026-03-01T00:00:00.000Z,'@sum,'+1,,,main,1\r\n",
    );
    expect(telemetryCsvLine({ ...base, name: "t", value: -3 })).toBe("2026-03-01T00:00:00.000Z,t,-3,,,main,1\r\n");
    expect(telemetryCsvLine({ ...base, name: "on", value: false })).toBe(
      "2026-03-01T00:00:00.000Z,on,false,,,main,1\r\n",
    );
  });
});

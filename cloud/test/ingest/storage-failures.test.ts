import { SchemaValidator } from "@fieldgate/shared";
import { sql } from "kysely";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { DeviceEventLog } from "../../src/events/device-events.js";
import { DeviceIngest } from "../../src/ingest/device-ingest.js";
import { isTransientStorageError } from "../../src/ingest/storage-failures.js";
import { DeviceLogs } from "../../src/logs/device-logs.js";
import type { CloudDatabase } from "../../src/storage/cloud-database.js";
import type { TelemetryWriter } from "../../src/telemetry/telemetry-writer.js";
import { addDevices, memoryRowCopies, rowsOf } from "../telemetry/fixture-devices.js";

const UUID = "00000000-0000-4000-8000-000000000001";
const TOPIC = `fieldgate/v1/${UUID}/telemetry`;
const STREAM = "0123456789abcdef0123456789abcdef";
const payload = Buffer.from(
  JSON.stringify({ v: 1, stream: STREAM, seq: 7, readings: [{ name: "n", ts: 1_700_000_000_000, value: 1 }] }),
);

let test: TestDatabase | undefined;
afterEach(async () => {
  await test?.dispose();
  test = undefined;
});

async function database(): Promise<CloudDatabase> {
  test = await openTestDatabase();
  await addDevices(test.database, [1]);
  return test.database;
}

/** A writer whose commit fails with this SQLite code, as a full disk or a constraint would. */
function failingWriter(code: string): TelemetryWriter {
  const err = Object.assign(new Error(`${code}: simulated`), { code });
  return { write: () => Promise.reject(err) } as unknown as TelemetryWriter;
}

const events = async (db: CloudDatabase) =>
  (await sql<{ code: string }>`SELECT code FROM device_events ORDER BY id`.execute(db.kysely)).rows.map((r) => r.code);

describe("DeviceIngest at a storage failure", () => {
  const source = { deviceId: 1, uuid: UUID };

  it("tells transient SQLite and PostgreSQL failures from refusals", () => {
    for (const code of ["SQLITE_IOERR_WRITE", "SQLITE_FULL", "SQLITE_BUSY", "08006", "40P01", "53100", "57P01"])
      expect(isTransientStorageError({ code }), code).toBe(true);
    for (const err of [
      { code: "SQLITE_CONSTRAINT_CHECK" },
      { code: "SQLITE_MISMATCH" },
      { code: "23505" },
      { code: "22P02" },
      new RangeError("x"),
      null,
    ])
      expect(isTransientStorageError(err)).toBe(false);
  });

  it("refuses at once what storage refuses: an event, a dead letter, and the notice for the device", async () => {
    const db = await database();
    const ingest = new DeviceIngest(
      db,
      memoryRowCopies(),
      new SchemaValidator(),
      failingWriter("SQLITE_CONSTRAINT_CHECK"),
      new DeviceEventLog(db),
      new DeviceLogs(db),
      pino({ level: "silent" }),
    );
    const refused = await ingest.handle(source, TOPIC, payload);
    expect(refused).toMatchObject({ v: 1, stream: STREAM, seq: 7, code: "STORE_REFUSED" });
    expect(await events(db)).toEqual(["STORE_REFUSED"]);
    expect(await rowsOf(db, "rejected_messages", 1)).toBe(1);
  });

  it("withholds the PUBACK for a transient failure a bounded number of times, then refuses", async () => {
    const db = await database();
    const ingest = new DeviceIngest(
      db,
      memoryRowCopies(),
      new SchemaValidator(),
      failingWriter("SQLITE_IOERR_WRITE"),
      new DeviceEventLog(db),
      new DeviceLogs(db),
      pino({ level: "silent" }),
      Date.now,
      undefined,
      3,
    );
    await expect(ingest.handle(source, TOPIC, payload)).rejects.toThrow(/SQLITE_IOERR/);
    await expect(ingest.handle(source, TOPIC, payload)).rejects.toThrow(/SQLITE_IOERR/);
    expect(await events(db)).toEqual([]);
    // The third failure of the same message ends it: acknowledged and refused.
    expect(await ingest.handle(source, TOPIC, payload)).toMatchObject({ seq: 7, code: "STORE_REFUSED" });
    expect(await events(db)).toEqual(["STORE_REFUSED"]);
  });
});

import { SchemaValidator } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { DeviceEventLog } from "../../src/events/device-events.js";
import { EmbeddedGroupLookup } from "../../src/groups/embedded-group-lookup.js";
import { DeviceIngest } from "../../src/ingest/device-ingest.js";
import { isTransientStorageError } from "../../src/ingest/storage-failures.js";
import type { TelemetryWriter } from "../../src/ingest/telemetry-writer.js";
import { DeviceRegistry } from "../../src/registry/device-registry.js";
import { openDatabase } from "../../src/storage/database.js";

const UUID = "00000000-0000-4000-8000-000000000001";
const TOPIC = `fieldgate/v1/${UUID}/telemetry`;
const STREAM = "0123456789abcdef0123456789abcdef";
const payload = Buffer.from(
  JSON.stringify({ v: 1, stream: STREAM, seq: 7, readings: [{ name: "n", ts: 1_700_000_000_000, value: 1 }] }),
);

function database(): Database.Database {
  const db = openDatabase(":memory:");
  db.prepare("INSERT INTO organizations (id, name, created_at) VALUES (1, 'o', 0)").run();
  db.prepare("INSERT INTO devices (id, uuid, org_id, created_at) VALUES (1, ?, 1, 0)").run(UUID);
  return db;
}

/** A writer whose commit fails with this SQLite code, as a full disk or a constraint would. */
function failingWriter(code: string): TelemetryWriter {
  const err = Object.assign(new Error(`${code}: simulated`), { code });
  return { write: () => Promise.reject(err) } as unknown as TelemetryWriter;
}

const events = (db: Database.Database) =>
  db.prepare("SELECT code FROM device_events ORDER BY id").pluck().all() as string[];

describe("DeviceIngest at a storage failure", () => {
  const source = { deviceId: 1, uuid: UUID };

  it("tells transient SQLite failures from refusals", () => {
    for (const code of ["SQLITE_IOERR_WRITE", "SQLITE_FULL", "SQLITE_BUSY"])
      expect(isTransientStorageError({ code }), code).toBe(true);
    for (const err of [{ code: "SQLITE_CONSTRAINT_CHECK" }, { code: "SQLITE_MISMATCH" }, new RangeError("x"), null])
      expect(isTransientStorageError(err)).toBe(false);
  });

  it("refuses at once what storage refuses: an event, a dead letter, and the notice for the device", async () => {
    const db = database();
    const ingest = new DeviceIngest(
      db,
      new DeviceRegistry(db, new EmbeddedGroupLookup(db), 0),
      new SchemaValidator(),
      failingWriter("SQLITE_CONSTRAINT_CHECK"),
      new DeviceEventLog(db),
      pino({ level: "silent" }),
    );
    const refused = await ingest.handle(source, TOPIC, payload);
    expect(refused).toMatchObject({ v: 1, stream: STREAM, seq: 7, code: "STORE_REFUSED" });
    expect(events(db)).toEqual(["STORE_REFUSED"]);
    expect(db.prepare("SELECT count(*) FROM rejected_messages").pluck().get()).toBe(1);
  });

  it("withholds the PUBACK for a transient failure a bounded number of times, then refuses", async () => {
    const db = database();
    const ingest = new DeviceIngest(
      db,
      new DeviceRegistry(db, new EmbeddedGroupLookup(db), 0),
      new SchemaValidator(),
      failingWriter("SQLITE_IOERR_WRITE"),
      new DeviceEventLog(db),
      pino({ level: "silent" }),
      Date.now,
      undefined,
      3,
    );
    await expect(ingest.handle(source, TOPIC, payload)).rejects.toThrow(/SQLITE_IOERR/);
    await expect(ingest.handle(source, TOPIC, payload)).rejects.toThrow(/SQLITE_IOERR/);
    expect(events(db)).toEqual([]);
    // The third failure of the same message ends it: acknowledged and refused.
    expect(await ingest.handle(source, TOPIC, payload)).toMatchObject({ seq: 7, code: "STORE_REFUSED" });
    expect(events(db)).toEqual(["STORE_REFUSED"]);
  });
});

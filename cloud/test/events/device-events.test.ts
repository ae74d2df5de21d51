import type Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { DeviceEventLog } from "../../src/events/device-events.js";
import { openDatabase } from "../../src/storage/database.js";

const T0 = Date.parse("2026-03-01T00:00:00Z");

function setup() {
  const db: Database.Database = openDatabase(":memory:");
  db.prepare("INSERT INTO organizations (id, name, created_at) VALUES (1, 'o', 0)").run();
  for (const id of [1, 2])
    db.prepare("INSERT INTO devices (id, uuid, org_id, created_at) VALUES (?, ?, 1, 0)").run(id, `device-${id}`);
  let now = T0;
  const log = new DeviceEventLog(db, () => now++);
  return { db, log };
}

describe("DeviceEventLog", () => {
  it("lists a device's events newest first, the cloud's codes beside the device's own", () => {
    const { log } = setup();
    log.record(1, "DEVICE_ONLINE", "info", "connected");
    log.record(1, "TOPIC_NOT_ALLOWED", "warning", "publish refused", { topic: "x/y" });
    log.recordReported(1, "fieldgate/v1/device-1/events", [
      { ts: T0 + 10, code: "PUMP_STARTED", severity: "info", message: "pump on" },
    ]);
    log.record(2, "DEVICE_ONLINE", "info", "connected");
    const page = log.list(1, 10);
    expect(page.items.map((e) => e.code)).toEqual(["PUMP_STARTED", "TOPIC_NOT_ALLOWED", "DEVICE_ONLINE"]);
    expect(page.items[1]).toEqual({
      ts: new Date(T0 + 1).toISOString(),
      code: "TOPIC_NOT_ALLOWED",
      severity: "warning",
      message: "publish refused",
      field: null,
      topic: "x/y",
    });
    expect(page.skipped).toBeUndefined();
    expect(log.list(1, 1).items.map((e) => e.code)).toEqual(["PUMP_STARTED"]);
  });

  it("records at the time given, and skips (and counts) a stored time no reader can show", () => {
    const { db, log } = setup();
    log.record(1, "KEEPALIVE_MISSED", "error", "silent", { ts: T0 - 5000 });
    db.prepare("UPDATE device_events SET ts = ? WHERE device_id = 1").run(8.64e15 + 1);
    log.record(1, "DEVICE_OFFLINE", "warning", "offline");
    expect(log.list(1, 10)).toEqual({
      items: [expect.objectContaining({ code: "DEVICE_OFFLINE", ts: new Date(T0).toISOString() })],
      skipped: 1,
    });
  });

  it("moves and deletes a device's whole history", () => {
    const { log } = setup();
    log.record(1, "DEVICE_ONLINE", "info", "connected");
    log.record(2, "HEALTH_CHANGED", "error", "health ok → critical");
    log.moveHistory(1, 2);
    expect(log.list(1, 10).items).toEqual([]);
    expect(log.list(2, 10).items.map((e) => e.code)).toEqual(["HEALTH_CHANGED", "DEVICE_ONLINE"]);
    log.deleteHistory(2);
    expect(log.list(2, 10).items).toEqual([]);
  });

  it("accepts only known codes, each with its own severities (checked by the compiler)", () => {
    const { log } = setup();
    // @ts-expect-error: not a code the cloud records
    log.record(1, "SOMETHING_ELSE", "info", "x");
    // @ts-expect-error: DEVICE_ONLINE is always info
    log.record(1, "DEVICE_ONLINE", "warning", "x");
    // @ts-expect-error: KEEPALIVE_MISSED is always an error
    log.record(1, "KEEPALIVE_MISSED", "info", "x");
    expect(log.list(1, 10).items).toHaveLength(3);
  });
});

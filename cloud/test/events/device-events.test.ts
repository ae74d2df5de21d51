import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { DeviceEventLog } from "../../src/events/device-events.js";
import { addDevices } from "../telemetry/fixture-devices.js";

const T0 = Date.parse("2026-03-01T00:00:00Z");

const opened: TestDatabase[] = [];
afterEach(async () => {
  for (const t of opened.splice(0)) await t.dispose();
});

async function setup() {
  const test = await openTestDatabase();
  opened.push(test);
  await addDevices(test.database, [1, 2]);
  let now = T0;
  const log = new DeviceEventLog(test.database, () => now++);
  return { database: test.database, log };
}

describe("DeviceEventLog", () => {
  it("lists a device's events newest first, the cloud's codes beside the device's own", async () => {
    const { log } = await setup();
    await log.record(1, "DEVICE_ONLINE", "info", "connected");
    await log.record(1, "TOPIC_NOT_ALLOWED", "warning", "publish refused", { topic: "x/y" });
    await log.recordReported(1, "fieldgate/v1/device-1/events", [
      { ts: T0 + 10, code: "PUMP_STARTED", severity: "info", message: "pump on" },
    ]);
    await log.record(2, "DEVICE_ONLINE", "info", "connected");
    const page = await log.list(1, 10);
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
    expect((await log.list(1, 1)).items.map((e) => e.code)).toEqual(["PUMP_STARTED"]);
  });

  it("records at the time given, and skips (and counts) a stored time no reader can show", async () => {
    const { database, log } = await setup();
    await log.record(1, "KEEPALIVE_MISSED", "error", "silent", { ts: T0 - 5000 });
    await sql`UPDATE device_events SET ts = ${8.64e15 + 1} WHERE device_id = 1`.execute(database.kysely);
    await log.record(1, "DEVICE_OFFLINE", "warning", "offline");
    expect(await log.list(1, 10)).toEqual({
      items: [expect.objectContaining({ code: "DEVICE_OFFLINE", ts: new Date(T0).toISOString() })],
      skipped: 1,
    });
  });

  it("moves and deletes a device's whole history", async () => {
    const { log } = await setup();
    await log.record(1, "DEVICE_ONLINE", "info", "connected");
    await log.record(2, "HEALTH_CHANGED", "error", "health ok → critical");
    await log.moveHistory(1, 2);
    expect((await log.list(1, 10)).items).toEqual([]);
    expect((await log.list(2, 10)).items.map((e) => e.code)).toEqual(["HEALTH_CHANGED", "DEVICE_ONLINE"]);
    await log.deleteHistory(2);
    expect((await log.list(2, 10)).items).toEqual([]);
  });

  it("records in the caller's transaction: rolled back with it", async () => {
    const { database, log } = await setup();
    await expect(
      database.kysely.transaction().execute(async (trx) => {
        await log.record(1, "DEVICE_ONLINE", "info", "connected", {}, trx);
        throw new Error("the caller's write failed");
      }),
    ).rejects.toThrow("the caller's write failed");
    expect((await log.list(1, 10)).items).toEqual([]);
  });

  it("accepts only known codes, each with its own severities (checked by the compiler)", async () => {
    const { log } = await setup();
    // @ts-expect-error: not a code the cloud records
    await log.record(1, "SOMETHING_ELSE", "info", "x");
    // @ts-expect-error: DEVICE_ONLINE is always info
    await log.record(1, "DEVICE_ONLINE", "warning", "x");
    // @ts-expect-error: KEEPALIVE_MISSED is always an error
    await log.record(1, "KEEPALIVE_MISSED", "info", "x");
    expect((await log.list(1, 10)).items).toHaveLength(3);
  });
});

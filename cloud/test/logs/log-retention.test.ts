import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { DeviceLogs } from "../../src/logs/device-logs.js";
import { LogRetention } from "../../src/logs/log-retention.js";
import { addDevices } from "../telemetry/fixture-devices.js";

let test: TestDatabase | undefined;
afterEach(async () => {
  await test?.dispose();
  test = undefined;
});

describe("LogRetention", () => {
  it("deletes lines past the retention and each device's lines beyond the cap, oldest first", async () => {
    test = await openTestDatabase();
    const { database } = test;
    const now = 1_700_000_000_000;
    await addDevices(database, [1, 2]);
    const logs = new DeviceLogs(database);
    const line = (ts: number, msg: string) => ({ ts, level: "info" as const, msg });
    await logs.store(1, { v: 1, entries: [line(now - 2 * 86_400_000, "expired")] }, now);
    await logs.store(
      1,
      { v: 1, entries: Array.from({ length: 8 }, (_, i) => line(now - 1000 + i, `chatty ${i}`)) },
      now,
    );
    await logs.store(
      2,
      { v: 1, entries: Array.from({ length: 3 }, (_, i) => line(now - 1000 + i, `quiet ${i}`)) },
      now,
    );

    const retention = new LogRetention(database, { retentionMs: 86_400_000, maxRowsPerDevice: 5, clock: () => now });
    expect(retention.intervalMs).toBe(3_600_000);
    expect(await retention.purge()).toEqual({ expired: 1, capped: 3 });
    const msgs = async (id: number) =>
      (
        await sql<{ msg: string }>`SELECT msg FROM device_logs WHERE device_id = ${id} ORDER BY id`.execute(
          database.kysely,
        )
      ).rows.map((r) => r.msg);
    expect(await msgs(1)).toEqual(["chatty 3", "chatty 4", "chatty 5", "chatty 6", "chatty 7"]);
    expect(await msgs(2)).toEqual(["quiet 0", "quiet 1", "quiet 2"]);
    expect(await retention.purge()).toEqual({ expired: 0, capped: 0 });
  });
});

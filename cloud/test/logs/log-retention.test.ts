import { describe, expect, it } from "vitest";
import { LogRetention } from "../../src/logs/log-retention.js";
import { openDatabase } from "../../src/storage/database.js";

describe("LogRetention", () => {
  it("deletes lines past the retention and each device's lines beyond the cap, oldest first", () => {
    const db = openDatabase(":memory:");
    const now = 1_700_000_000_000;
    db.prepare("INSERT INTO organizations (id, name, created_at) VALUES (1, 'o', 0)").run();
    const addDevice = db.prepare("INSERT INTO devices (id, uuid, org_id, created_at) VALUES (?, ?, 1, 0)");
    addDevice.run(1, "00000000-0000-4000-8000-000000000001");
    addDevice.run(2, "00000000-0000-4000-8000-000000000002");
    const insert = db.prepare("INSERT INTO device_logs (device_id, ts, level, msg) VALUES (?, ?, 'info', ?)");
    insert.run(1, now - 2 * 86_400_000, "expired");
    for (let i = 0; i < 8; i++) insert.run(1, now - 1000 + i, `chatty ${i}`);
    for (let i = 0; i < 3; i++) insert.run(2, now - 1000 + i, `quiet ${i}`);

    const retention = new LogRetention(db, { retentionMs: 86_400_000, maxRowsPerDevice: 5, clock: () => now });
    expect(retention.intervalMs).toBe(3_600_000);
    expect(retention.purge()).toEqual({ expired: 1, capped: 3 });
    const msgs = (id: number) =>
      (db.prepare("SELECT msg FROM device_logs WHERE device_id = ? ORDER BY id").all(id) as { msg: string }[]).map(
        (r) => r.msg,
      );
    expect(msgs(1)).toEqual(["chatty 3", "chatty 4", "chatty 5", "chatty 6", "chatty 7"]);
    expect(msgs(2)).toEqual(["quiet 0", "quiet 1", "quiet 2"]);
    expect(retention.purge()).toEqual({ expired: 0, capped: 0 });
    db.close();
  });
});

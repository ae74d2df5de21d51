import type Database from "better-sqlite3";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { openTestDatabase, type TestDatabase, testPostgresServer } from "../../../test/support/test-database.js";
import { DeviceEventLog } from "../../src/events/device-events.js";
import { GroupTree } from "../../src/groups/group-tree.js";
import { type KeepaliveMissed, KeepaliveMonitor } from "../../src/keepalive/keepalive-monitor.js";
import { DeviceRegistry } from "../../src/registry/device-registry.js";

const MINUTE = 60_000;

// The registry (the monitor's device rows) is embedded-only until it is async (issue #14, registry).
describe.skipIf(testPostgresServer() !== undefined)("KeepaliveMonitor", () => {
  let test: TestDatabase;
  let db: Database.Database;
  let registry: DeviceRegistry;
  let monitor: KeepaliveMonitor;
  let log: DeviceEventLog;
  let orgId: number;
  let typeId: (minutes: number | null) => number;

  beforeEach(async () => {
    test = await openTestDatabase();
    vi.useFakeTimers({ now: Date.parse("2026-03-01T00:00:00Z") });
    db = test.database.embedded as Database.Database;
    const groups = new GroupTree(db);
    registry = new DeviceRegistry(db, groups, 600_000);
    orgId = registry.ensureDefaultOrganization();
    const root = groups.root(orgId);
    let n = 0;
    typeId = (minutes) =>
      Number(
        db
          .prepare(
            "INSERT INTO device_types (org_id, group_id, name, keepalive_minutes, created_at) VALUES (?, ?, ?, ?, ?)",
          )
          .run(orgId, root.id, `type-${n++}`, minutes, Date.now()).lastInsertRowid,
      );
    log = new DeviceEventLog(test.database);
    monitor = new KeepaliveMonitor(test.database, registry, log, Date.now, pino({ level: "silent" }), {
      checkIntervalMs: 30_000,
      minuteMs: MINUTE,
    });
  });

  afterEach(async () => {
    await monitor.stop();
    vi.useRealTimers();
    await test.dispose();
  });

  const device = (type: number | null, lastSeen: number | null) => {
    const uuid = crypto.randomUUID();
    const groupId = (
      db.prepare("SELECT id FROM groups WHERE org_id = ? AND parent_id IS NULL").get(orgId) as { id: number }
    ).id;
    registry.create(orgId, { uuid }, { groupId, typeId: type });
    db.prepare("UPDATE devices SET last_seen = ? WHERE uuid = ?").run(lastSeen, uuid);
    return uuid;
  };
  const speak = (uuid: string) => db.prepare("UPDATE devices SET last_seen = ? WHERE uuid = ?").run(Date.now(), uuid);
  const events = async (uuid: string) =>
    (await log.list(registry.findByUuid(uuid)?.id ?? 0, 100)).items.filter((e) => e.code === "KEEPALIVE_MISSED");

  it("raises one error event per silence, and again after the device speaks and falls silent again", async () => {
    const uuid = device(typeId(10), Date.now());
    const heard: KeepaliveMissed[] = [];
    monitor.onMissed((e) => heard.push(e));
    monitor.start();

    await vi.advanceTimersByTimeAsync(9 * MINUTE);
    expect(await events(uuid)).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(MINUTE + 30_000);
    expect(await events(uuid)).toEqual([
      expect.objectContaining({ severity: "error", message: "no message for 10 minutes (keep-alive 10 min)" }),
    ]);
    expect(heard).toEqual([expect.objectContaining({ uuid, keepaliveMinutes: 10 })]);

    await vi.advanceTimersByTimeAsync(60 * MINUTE);
    expect(await events(uuid)).toHaveLength(1);

    speak(uuid);
    await vi.advanceTimersByTimeAsync(5 * MINUTE);
    expect(await events(uuid)).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(6 * MINUTE);
    expect(await events(uuid)).toHaveLength(2);
  });

  it("ignores devices without a keep-alive, without a type, and never seen", async () => {
    const untimed = device(typeId(null), Date.now());
    const untyped = device(null, Date.now());
    const neverSeen = device(typeId(1), null);
    monitor.start();
    await vi.advanceTimersByTimeAsync(120 * MINUTE);
    for (const uuid of [untimed, untyped, neverSeen]) expect(await events(uuid)).toHaveLength(0);
  });

  it("uses each type's own keep-alive and the configured minute length", async () => {
    const fast = new KeepaliveMonitor(test.database, registry, log, Date.now, pino({ level: "silent" }), {
      checkIntervalMs: 100,
      minuteMs: 200,
    });
    const one = device(typeId(1), Date.now());
    const five = device(typeId(5), Date.now());
    fast.start();
    await vi.advanceTimersByTimeAsync(300);
    expect(await events(one)).toHaveLength(1);
    expect(await events(five)).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(800);
    expect(await events(five)).toHaveLength(1);
    await fast.stop();
    // Stopped: no further checks run.
    speak(one);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(await events(one)).toHaveLength(1);
  });

  it("keeps checking after a listener throws", async () => {
    const uuid = device(typeId(1), Date.now());
    monitor.onMissed(() => {
      throw new Error("callback down");
    });
    await vi.advanceTimersByTimeAsync(2 * MINUTE);
    expect(await monitor.check()).toHaveLength(1);
    expect(await events(uuid)).toHaveLength(1);
  });
});

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type Database from "better-sqlite3";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DeviceEventLog } from "../../src/events/device-events.js";
import { EmbeddedGroupLookup } from "../../src/groups/embedded-group-lookup.js";
import { type KeepaliveMissed, KeepaliveMonitor } from "../../src/keepalive/keepalive-monitor.js";
import { DeviceRegistry } from "../../src/registry/device-registry.js";
import { openDatabase } from "../../src/storage/database.js";

const MINUTE = 60_000;

describe("KeepaliveMonitor", () => {
  let dir: string;
  let db: Database.Database;
  let registry: DeviceRegistry;
  let monitor: KeepaliveMonitor;
  let log: DeviceEventLog;
  let orgId: number;
  let typeId: (minutes: number | null) => number;

  beforeEach(() => {
    vi.useFakeTimers({ now: Date.parse("2026-03-01T00:00:00Z") });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "fieldgate-keepalive-"));
    db = openDatabase(path.join(dir, "cloud.db"));
    const groups = new EmbeddedGroupLookup(db);
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
    log = new DeviceEventLog(db);
    monitor = new KeepaliveMonitor(db, registry, log, Date.now, pino({ level: "silent" }), {
      checkIntervalMs: 30_000,
      minuteMs: MINUTE,
    });
  });

  afterEach(() => {
    monitor.stop();
    db.close();
    vi.useRealTimers();
    fs.rmSync(dir, { recursive: true, force: true });
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
  const events = (uuid: string) =>
    log.list(registry.findByUuid(uuid)?.id ?? 0, 100).items.filter((e) => e.code === "KEEPALIVE_MISSED");

  it("raises one error event per silence, and again after the device speaks and falls silent again", () => {
    const uuid = device(typeId(10), Date.now());
    const heard: KeepaliveMissed[] = [];
    monitor.onMissed((e) => heard.push(e));
    monitor.start();

    vi.advanceTimersByTime(9 * MINUTE);
    expect(events(uuid)).toHaveLength(0);
    vi.advanceTimersByTime(MINUTE + 30_000);
    expect(events(uuid)).toEqual([
      expect.objectContaining({ severity: "error", message: "no message for 10 minutes (keep-alive 10 min)" }),
    ]);
    expect(heard).toEqual([expect.objectContaining({ uuid, keepaliveMinutes: 10 })]);

    vi.advanceTimersByTime(60 * MINUTE);
    expect(events(uuid)).toHaveLength(1);

    speak(uuid);
    vi.advanceTimersByTime(5 * MINUTE);
    expect(events(uuid)).toHaveLength(1);
    vi.advanceTimersByTime(6 * MINUTE);
    expect(events(uuid)).toHaveLength(2);
  });

  it("ignores devices without a keep-alive, without a type, and never seen", () => {
    const untimed = device(typeId(null), Date.now());
    const untyped = device(null, Date.now());
    const neverSeen = device(typeId(1), null);
    monitor.start();
    vi.advanceTimersByTime(120 * MINUTE);
    for (const uuid of [untimed, untyped, neverSeen]) expect(events(uuid)).toHaveLength(0);
  });

  it("uses each type's own keep-alive and the configured minute length", () => {
    const fast = new KeepaliveMonitor(db, registry, log, Date.now, pino({ level: "silent" }), {
      checkIntervalMs: 100,
      minuteMs: 200,
    });
    const one = device(typeId(1), Date.now());
    const five = device(typeId(5), Date.now());
    fast.start();
    vi.advanceTimersByTime(300);
    expect(events(one)).toHaveLength(1);
    expect(events(five)).toHaveLength(0);
    vi.advanceTimersByTime(800);
    expect(events(five)).toHaveLength(1);
    fast.stop();
    // Stopped: no further checks run.
    speak(one);
    vi.advanceTimersByTime(10_000);
    expect(events(one)).toHaveLength(1);
  });

  it("keeps checking after a listener throws", () => {
    const uuid = device(typeId(1), Date.now());
    monitor.onMissed(() => {
      throw new Error("callback down");
    });
    vi.advanceTimersByTime(2 * MINUTE);
    expect(monitor.check()).toHaveLength(1);
    expect(events(uuid)).toHaveLength(1);
  });
});

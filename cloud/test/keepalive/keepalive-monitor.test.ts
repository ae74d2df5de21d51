import type { Kysely } from "kysely";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { DeviceEventLog } from "../../src/events/device-events.js";
import { GroupTree } from "../../src/groups/group-tree.js";
import { type KeepaliveMissed, KeepaliveMonitor } from "../../src/keepalive/keepalive-monitor.js";
import { DeviceRegistry } from "../../src/registry/device-registry.js";
import { GroupDeviceMembers } from "../../src/registry/group-members.js";

/** The rows these tests write directly: a type's keep-alive and a device's last message. */
type KeepaliveTestTables = {
  device_types: {
    id?: number;
    org_id: number;
    group_id: number;
    name: string;
    keepalive_minutes: number | null;
    created_at: number;
  };
  devices: { uuid: string; last_seen: number | null };
};

const MINUTE = 60_000;
const CHECK_MS = 30_000;

describe("KeepaliveMonitor", () => {
  let test: TestDatabase;
  let db: Kysely<KeepaliveTestTables>;
  let registry: DeviceRegistry;
  let monitor: KeepaliveMonitor;
  let log: DeviceEventLog;
  let orgId: number;
  let rootId: number;
  let typeId: (minutes: number | null) => Promise<number>;

  beforeEach(async () => {
    test = await openTestDatabase();
    vi.useFakeTimers({ now: Date.parse("2026-03-01T00:00:00Z"), toFake: ["Date", "setInterval", "clearInterval"] });
    db = test.database.kysely.withTables<KeepaliveTestTables>();
    const groups = new GroupTree(test.database, new GroupDeviceMembers(test.database));
    registry = new DeviceRegistry(test.database, groups, 600_000);
    orgId = await registry.ensureDefaultOrganization();
    rootId = (await groups.root(orgId)).id;
    let n = 0;
    typeId = async (minutes) =>
      Number(
        (
          await db
            .insertInto("device_types")
            .values({
              org_id: orgId,
              group_id: rootId,
              name: `type-${n++}`,
              keepalive_minutes: minutes,
              created_at: Date.now(),
            })
            .returning("id")
            .executeTakeFirstOrThrow()
        ).id,
      );
    log = new DeviceEventLog(test.database);
    monitor = new KeepaliveMonitor(test.database, registry, log, Date.now, pino({ level: "silent" }), {
      checkIntervalMs: CHECK_MS,
      minuteMs: MINUTE,
    });
  });

  afterEach(async () => {
    await monitor.stop();
    vi.useRealTimers();
    await test.dispose();
  });

  const device = async (type: number | null, lastSeen: number | null) => {
    const uuid = crypto.randomUUID();
    await registry.create(orgId, { uuid }, { groupId: rootId, typeId: type });
    await db.updateTable("devices").set({ last_seen: lastSeen }).where("uuid", "=", uuid).execute();
    return uuid;
  };
  /**
   * Moves the clock on one check interval at a time, waiting after each for the pass it started:
   * a pass's queries are real I/O (on PostgreSQL, the network), which fake timers do not wait for,
   * and a pass still running makes the next ones skip.
   */
  const tick = async (ms: number, watching = monitor, step = CHECK_MS) => {
    for (let left = ms; left > 0; left -= step) {
      await vi.advanceTimersByTimeAsync(Math.min(step, left));
      await watching.settled();
    }
  };
  const speak = (uuid: string) =>
    db.updateTable("devices").set({ last_seen: Date.now() }).where("uuid", "=", uuid).execute();
  const events = async (uuid: string) =>
    (await log.list((await registry.findByUuid(uuid))?.id ?? 0, 100)).items.filter(
      (e) => e.code === "KEEPALIVE_MISSED",
    );

  it("raises one error event per silence, and again after the device speaks and falls silent again", async () => {
    const uuid = await device(await typeId(10), Date.now());
    const heard: KeepaliveMissed[] = [];
    monitor.onMissed((e) => heard.push(e));
    monitor.start();

    await tick(9 * MINUTE);
    expect(await events(uuid)).toHaveLength(0);
    await tick(MINUTE + 30_000);
    expect(await events(uuid)).toEqual([
      expect.objectContaining({ severity: "error", message: "no message for 10 minutes (keep-alive 10 min)" }),
    ]);
    expect(heard).toEqual([expect.objectContaining({ uuid, keepaliveMinutes: 10 })]);

    await tick(60 * MINUTE);
    expect(await events(uuid)).toHaveLength(1);

    await speak(uuid);
    await tick(5 * MINUTE);
    expect(await events(uuid)).toHaveLength(1);
    await tick(6 * MINUTE);
    expect(await events(uuid)).toHaveLength(2);
  });

  it("ignores devices without a keep-alive, without a type, and never seen", async () => {
    const untimed = await device(await typeId(null), Date.now());
    const untyped = await device(null, Date.now());
    const neverSeen = await device(await typeId(1), null);
    monitor.start();
    await tick(120 * MINUTE);
    for (const uuid of [untimed, untyped, neverSeen]) expect(await events(uuid)).toHaveLength(0);
  });

  it("uses each type's own keep-alive and the configured minute length", async () => {
    const fast = new KeepaliveMonitor(test.database, registry, log, Date.now, pino({ level: "silent" }), {
      checkIntervalMs: 100,
      minuteMs: 200,
    });
    const one = await device(await typeId(1), Date.now());
    const five = await device(await typeId(5), Date.now());
    fast.start();
    await tick(300, fast, 100);
    expect(await events(one)).toHaveLength(1);
    expect(await events(five)).toHaveLength(0);
    await tick(800, fast, 100);
    expect(await events(five)).toHaveLength(1);
    await fast.stop();
    // Stopped: no further checks run.
    await speak(one);
    await tick(10_000);
    expect(await events(one)).toHaveLength(1);
  });

  it("keeps checking after a listener throws", async () => {
    const uuid = await device(await typeId(1), Date.now());
    monitor.onMissed(() => {
      throw new Error("callback down");
    });
    await tick(2 * MINUTE);
    expect(await monitor.check()).toHaveLength(1);
    expect(await events(uuid)).toHaveLength(1);
  });
});

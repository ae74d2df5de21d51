import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HealthMonitor } from "../../src/health/health-monitor.js";
import { SqlitePostedStatusStore } from "../../src/health/posted-status-store.js";
import { memoryLogger } from "../helpers/logger.js";
import { tempDir } from "../helpers/tmp.js";

const OPTIONS = { reportIntervalMs: 300_000, checkIntervalMs: 30_000 };
const MINUTE = 60_000;

describe("posted statuses across an agent restart", () => {
  let tmp: { dir: string; cleanup: () => void };
  let path: string;
  const stores: SqlitePostedStatusStore[] = [];
  const monitors: HealthMonitor[] = [];

  /** A monitor as the agent builds it after a (re)start: a fresh store on the same database file. */
  const boot = () => {
    const store = new SqlitePostedStatusStore(path);
    stores.push(store);
    const monitor = new HealthMonitor({
      checks: [{ name: "disk", run: () => ({ name: "disk", status: "ok", message: "fine" }) }],
      publisher: { connected: false, publish: async () => {} },
      logger: memoryLogger().logger,
      options: OPTIONS,
      postedStore: store,
    });
    monitors.push(monitor);
    monitor.start();
    return monitor;
  };
  /** The agent dies: timers stop, the database file stays. */
  const crash = () => {
    for (const m of monitors.splice(0)) m.stop();
    for (const s of stores.splice(0)) s.close();
  };

  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date("2030-01-01T00:00:00Z"));
    tmp = tempDir();
    path = join(tmp.dir, "agent.db");
  });
  afterEach(() => {
    crash();
    vi.useRealTimers();
    tmp.cleanup();
  });

  it("keeps unexpired statuses with their remaining ttl, turns expired ones unknown, and keeps those without ttl", () => {
    const before = boot();
    before.post("local.plc", "critical", "no answer from PLC", 10 * MINUTE);
    before.post("local.cron", "ok", "ran", MINUTE);
    before.post("local.manual", "warning", "check the pump");
    crash();

    vi.setSystemTime(Date.now() + 2 * MINUTE); // down for two minutes
    const after = boot();
    expect(after.get("local.plc")).toEqual({ name: "local.plc", status: "critical", message: "no answer from PLC" });
    expect(after.get("local.cron")).toEqual({
      name: "local.cron",
      status: "unknown",
      message: "no update within ttl (1m)",
    });
    expect(after.get("local.manual")).toEqual({ name: "local.manual", status: "warning", message: "check the pump" });
    expect(after.snapshot().checks.map((c) => c.name)).toEqual(["local.cron", "local.manual", "local.plc"]);

    // Eight minutes of the plc's ttl were left.
    vi.advanceTimersByTime(8 * MINUTE - 1);
    expect(after.get("local.plc")?.status).toBe("critical");
    vi.advanceTimersByTime(1);
    expect(after.get("local.plc")).toMatchObject({ status: "unknown", message: "no update within ttl (10m)" });
  });

  it("forgets a deleted status, and a status posted again replaces the stored one", () => {
    const before = boot();
    before.post("local.a", "ok", "first", MINUTE);
    before.post("local.a", "warning", "second");
    before.post("local.b", "ok");
    expect(before.remove("local.b")).toBe(true);
    crash();
    const after = boot();
    expect(after.get("local.a")).toEqual({ name: "local.a", status: "warning", message: "second" });
    vi.advanceTimersByTime(10 * MINUTE);
    expect(after.get("local.a")?.status).toBe("warning"); // the ttl went with the first post
    expect(after.get("local.b")).toBeUndefined();
  });

  it("never stretches a ttl when the clock went back at boot, and skips damaged rows", () => {
    const before = boot();
    before.post("local.plc", "ok", "fine", 5 * MINUTE);
    crash();
    const db = new Database(path);
    db.prepare("INSERT INTO local_statuses (name, status, message) VALUES ('local.bad', 'purple', 'x')").run();
    db.prepare("INSERT INTO local_statuses (name, status, message, ttl_ms) VALUES ('local.odd', 'ok', 'x', -5)").run();
    db.close();

    vi.setSystemTime(new Date("2029-12-31T00:00:00Z")); // a day earlier: no RTC, say
    const after = boot();
    expect(after.get("local.bad")).toBeUndefined();
    expect(after.get("local.odd")).toBeUndefined();
    vi.advanceTimersByTime(5 * MINUTE - 1);
    expect(after.get("local.plc")?.status).toBe("ok");
    vi.advanceTimersByTime(1);
    expect(after.get("local.plc")?.status).toBe("unknown");
    // The damaged rows do not count against the limit nor block a new post of that name.
    expect(after.post("local.bad", "ok").status).toBe("ok");
  });
});

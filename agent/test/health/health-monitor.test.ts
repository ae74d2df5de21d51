import type { HealthReport } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { aggregateStatus, type CheckResult, type HealthCheck } from "../../src/health/health-check.js";
import { HealthMonitor, type HealthPublisher } from "../../src/health/health-monitor.js";
import { memoryLogger } from "../helpers/logger.js";

/** A check whose next result the test sets. */
function settable(name: string, initial: CheckResult["status"] = "ok") {
  const state = { status: initial, message: "fine", runs: 0 };
  const check: HealthCheck = {
    name,
    run: () => {
      state.runs++;
      return { name, status: state.status, message: state.message };
    },
  };
  return { check, state };
}

function fakePublisher(connected = true) {
  const reports: HealthReport[] = [];
  const publisher: HealthPublisher & { connected: boolean } = {
    connected,
    publish: async (r) => {
      if (!publisher.connected) throw new Error("offline");
      reports.push(r);
    },
  };
  return { publisher, reports };
}

const OPTIONS = { reportIntervalMs: 300_000, checkIntervalMs: 30_000 };

describe("aggregateStatus", () => {
  it("is the worst check, with unknown counted as warning", () => {
    expect(aggregateStatus([])).toBe("ok");
    expect(aggregateStatus([{ status: "ok" }, { status: "ok" }])).toBe("ok");
    expect(aggregateStatus([{ status: "ok" }, { status: "unknown" }])).toBe("warning");
    expect(aggregateStatus([{ status: "warning" }, { status: "unknown" }])).toBe("warning");
    expect(aggregateStatus([{ status: "unknown" }, { status: "critical" }, { status: "ok" }])).toBe("critical");
  });
});

describe("HealthMonitor", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date("2030-01-01T00:00:00Z"));
  });
  afterEach(() => vi.useRealTimers());

  const make = (checks: HealthCheck[], connected = true) => {
    const { publisher, reports } = fakePublisher(connected);
    const log = memoryLogger();
    const monitor = new HealthMonitor({ checks, publisher, logger: log.logger, options: OPTIONS });
    return { monitor, reports, publisher, log };
  };

  it("tells where each check comes from, for the update's confirmation gate", async () => {
    const disk = settable("disk");
    const program: HealthCheck = { ...settable("command.plc").check, kind: "command" };
    const { monitor } = make([disk.check, program]);
    monitor.start();
    await vi.advanceTimersByTimeAsync(0);
    monitor.post("local.plc-heartbeat", "ok");
    monitor.set({ name: "link.meter", status: "critical", message: "disconnected" });
    expect(
      ["disk", "command.plc", "local.plc-heartbeat", "link.meter", "nothing"].map((n) => monitor.kindOf(n)),
    ).toEqual(["builtin", "command", "posted", "link", undefined]);
    monitor.stop();
  });

  it("publishes one report after the first round, then on every status change, and every reportInterval", async () => {
    const disk = settable("disk");
    const mem = settable("memory");
    const { monitor, reports } = make([disk.check, mem.check]);
    monitor.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toEqual({
      v: 1,
      ts: Date.parse("2030-01-01T00:00:00Z"),
      status: "ok",
      checks: [
        { name: "disk", status: "ok", message: "fine" },
        { name: "memory", status: "ok", message: "fine" },
      ],
    });

    // A new message with the same status is not a change.
    disk.state.message = "still fine";
    await vi.advanceTimersByTimeAsync(30_000);
    expect(reports).toHaveLength(1);

    disk.state.status = "warning";
    disk.state.message = "12% free";
    await vi.advanceTimersByTimeAsync(30_000);
    expect(reports).toHaveLength(2);
    expect(reports[1]?.status).toBe("warning");
    expect(reports[1]?.checks[0]).toEqual({ name: "disk", status: "warning", message: "12% free" });

    // A check's status change publishes even when the aggregate stays the same.
    mem.state.status = "unknown";
    await vi.advanceTimersByTimeAsync(30_000);
    expect(reports).toHaveLength(3);
    expect(reports[2]?.status).toBe("warning");

    // Nothing changes: the periodic report still goes out (5 min after start).
    const before = reports.length;
    await vi.advanceTimersByTimeAsync(300_000 - 90_000);
    expect(reports.length).toBe(before + 1);
    expect(reports.at(-1)?.status).toBe("warning");
    monitor.stop();
  });

  it("keeps only the latest state while offline and publishes it on connect", async () => {
    const disk = settable("disk");
    const { monitor, reports, publisher } = make([disk.check], false);
    monitor.start();
    await vi.advanceTimersByTimeAsync(10);
    disk.state.status = "critical";
    await vi.advanceTimersByTimeAsync(30_000);
    disk.state.status = "warning";
    await vi.advanceTimersByTimeAsync(30_000);
    expect(reports).toHaveLength(0);
    publisher.connected = true;
    monitor.connected();
    await vi.advanceTimersByTimeAsync(0);
    expect(reports).toHaveLength(1);
    expect(reports[0]?.status).toBe("warning");
    monitor.stop();
  });

  it("emits change snapshots for the status file only when a status changes", async () => {
    const disk = settable("disk");
    const { monitor } = make([disk.check]);
    const changes: string[] = [];
    monitor.on("change", (s) => changes.push(s.status));
    monitor.start();
    await vi.advanceTimersByTimeAsync(60_010);
    disk.state.status = "critical";
    await vi.advanceTimersByTimeAsync(30_000);
    expect(changes).toEqual(["ok", "critical"]);
    monitor.stop();
  });

  it("turns a posted status unknown when its ttl passes without an update, and back when posted again", async () => {
    const { monitor, reports } = make([]);
    monitor.start();
    const stored = monitor.post("local.pump", "ok", "running", 10_000);
    expect(stored.expiresAt).toBe(Date.now() + 10_000);
    await vi.advanceTimersByTimeAsync(1);
    expect(monitor.snapshot().status).toBe("ok");
    expect(reports.at(-1)?.checks).toEqual([{ name: "local.pump", status: "ok", message: "running" }]);

    // An update before the ttl restarts it.
    await vi.advanceTimersByTimeAsync(9_000);
    monitor.post("local.pump", "ok", "running", 10_000);
    await vi.advanceTimersByTimeAsync(9_000);
    expect(monitor.get("local.pump")?.status).toBe("ok");

    await vi.advanceTimersByTimeAsync(1_001);
    expect(monitor.get("local.pump")).toEqual({
      name: "local.pump",
      status: "unknown",
      message: "no update within ttl (10s)",
    });
    expect(monitor.snapshot().status).toBe("warning");
    expect(reports.at(-1)).toMatchObject({
      status: "warning",
      checks: [{ name: "local.pump", status: "unknown", message: "no update within ttl (10s)" }],
    });

    monitor.post("local.pump", "critical", "pump stalled");
    await vi.advanceTimersByTimeAsync(1);
    expect(monitor.snapshot().status).toBe("critical");
    // Without a ttl it never expires.
    await vi.advanceTimersByTimeAsync(86_400_000);
    expect(monitor.get("local.pump")?.status).toBe("critical");
    expect(monitor.remove("local.pump")).toBe(true);
    expect(monitor.remove("local.pump")).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(reports.at(-1)?.checks).toEqual([]);
    monitor.stop();
  });

  it("refuses posted names that belong to scheduled checks, bad ttls and too many statuses", () => {
    const disk = settable("disk");
    const { publisher } = fakePublisher();
    const monitor = new HealthMonitor({
      checks: [disk.check],
      publisher,
      logger: memoryLogger().logger,
      options: { ...OPTIONS, maxPosted: 2 },
    });
    expect(() => monitor.post("disk", "ok")).toThrow(/built-in/);
    expect(() => monitor.post("local.a", "ok", "", 0)).toThrow(/ttl/);
    monitor.post("local.a", "ok");
    monitor.post("local.b", "ok");
    monitor.post("local.a", "warning"); // an update is not a new status
    expect(() => monitor.post("local.c", "ok")).toThrow(/at most 2/);
  });

  it("never runs two instances of a slow check at once", async () => {
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const slow: HealthCheck = {
      name: "command.slow",
      intervalMs: 1_000,
      run: async () => {
        runs++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, 3_500));
        running--;
        return { name: "command.slow", status: "ok", message: "" };
      },
    };
    const { monitor } = make([slow]);
    monitor.start();
    await vi.advanceTimersByTimeAsync(10_000);
    monitor.stop();
    expect(maxRunning).toBe(1);
    // Started at 0, then at the first interval tick after each run ends: 0, 4 s, 8 s.
    expect(runs).toBe(3);
  });

  it("reports a check that throws as unknown with the error", async () => {
    const broken: HealthCheck = {
      name: "disk",
      run: () => {
        throw new Error("statfs failed: EIO");
      },
    };
    const { monitor, reports } = make([broken]);
    monitor.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(reports[0]?.checks).toEqual([
      { name: "disk", status: "unknown", message: "check failed: statfs failed: EIO" },
    ]);
    expect(reports[0]?.status).toBe("warning");
    monitor.stop();
  });
});

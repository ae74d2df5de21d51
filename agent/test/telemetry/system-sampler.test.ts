import type { Reading } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ReadingSink } from "../../src/outbox/outbox-writer.js";
import { SystemSampler } from "../../src/telemetry/system-sampler.js";
import { memoryLogger } from "../helpers/logger.js";

function memorySink() {
  const readings: Reading[] = [];
  let counter = 0;
  const sink: ReadingSink = {
    append(rs) {
      readings.push(...rs);
      return { appended: rs.length, dropped: 0 };
    },
    appendCounter(name, count, ts) {
      for (let i = 0; i < count; i++) readings.push({ name, ts, value: ++counter });
      return { appended: count, dropped: 0 };
    },
  };
  return { sink, readings };
}

describe("SystemSampler", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("samples load, memory, disk and uptime at start and every sampleInterval", () => {
    const { sink, readings } = memorySink();
    const sampler = new SystemSampler({
      sink,
      dataDir: "/",
      sampleIntervalMs: 10_000,
      syntheticRate: 0,
      logger: memoryLogger().logger,
    });
    sampler.start();
    const names = readings.map((r) => r.name).sort();
    expect(names).toEqual(["system.disk.free_pct", "system.load1", "system.mem.used_pct", "system.uptime_s"]);
    const mem = readings.find((r) => r.name === "system.mem.used_pct")?.value as number;
    expect(mem).toBeGreaterThan(0);
    expect(mem).toBeLessThanOrEqual(100);
    vi.advanceTimersByTime(30_000);
    expect(readings.length).toBe(16);
    sampler.stop();
    vi.advanceTimersByTime(30_000);
    expect(readings.length).toBe(16);
  });

  it("appends the synthetic counter at the configured rate with consecutive values", () => {
    const { sink, readings } = memorySink();
    const sampler = new SystemSampler({
      sink,
      dataDir: "/",
      sampleIntervalMs: 60_000,
      syntheticRate: 50,
      logger: memoryLogger().logger,
    });
    sampler.start();
    vi.advanceTimersByTime(2000);
    sampler.stop();
    const counter = readings.filter((r) => r.name === "synthetic.counter").map((r) => r.value);
    expect(counter).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  });
});

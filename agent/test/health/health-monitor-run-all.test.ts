import { describe, expect, it } from "vitest";
import type { HealthCheck } from "../../src/health/health-check.js";
import { HealthMonitor } from "../../src/health/health-monitor.js";
import { memoryLogger } from "../helpers/logger.js";

describe("HealthMonitor.runAll (what an update's confirmation waits for)", () => {
  it("waits for a run started after the call, even when a stale one was under way", async () => {
    // The device was fine before the switch and is broken after it; the first run is slow.
    let broken = false;
    let runs = 0;
    const check: HealthCheck = {
      name: "firmware",
      run: async () => {
        runs += 1;
        const sawBroken = broken;
        await new Promise((r) => setTimeout(r, runs === 1 ? 200 : 10));
        return { name: "firmware", status: sawBroken ? "critical" : "ok", message: "" };
      },
    };
    const monitor = new HealthMonitor({
      checks: [check],
      publisher: { connected: false, publish: async () => undefined },
      logger: memoryLogger().logger,
      options: { reportIntervalMs: 300_000, checkIntervalMs: 300_000 },
    });
    monitor.start();
    await new Promise((r) => setTimeout(r, 20));
    broken = true;
    await monitor.runAll();
    expect(runs).toBe(2);
    expect(monitor.snapshot().status).toBe("critical");
    monitor.stop();
  });
});

import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";

const base = {
  uuid: "0f1e2d3c-4b5a-4968-8776-655443322110",
  dataDir: "/var/lib/fg",
  cloud: { url: "https://c.example" },
};
const load = (extra: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) =>
  loadConfig({ raw: { ...base, ...extra }, env }).config;

describe("health and localApi configuration", () => {
  it("has the documented defaults", () => {
    const c = load({ outbox: { maxRows: 1000 } });
    expect(c.health).toEqual({
      reportIntervalMs: 300_000,
      checkIntervalMs: 30_000,
      clockSkewIntervalMs: 600_000,
      thresholds: {
        diskFreeWarnPct: 15,
        diskFreeCritPct: 5,
        memoryUsedWarnPct: 90,
        memoryUsedCritPct: 97,
        loadPerCoreWarn: 2,
        loadPerCoreCrit: 4,
        clockSkewWarnS: 60,
        clockSkewCritS: 300,
        certDaysWarn: 14,
        certDaysCrit: 3,
        outboxRowsWarn: 900,
        outboxRowsCrit: 900,
        outboxAgeWarnMs: 3_600_000,
        outboxAgeCritMs: 86_400_000,
      },
      commands: [],
    });
    expect(c.localApi).toEqual({ enabled: true, socket: "/var/lib/fg/agent.sock" });
    expect(load({}).health.thresholds).toMatchObject({ outboxRowsWarn: 100_000, outboxRowsCrit: 900_000 });
  });

  it("resolves command checks with their default interval and timeout", () => {
    const c = load({
      health: { commands: [{ name: "plc", command: ["/usr/lib/nagios/check_ping", "-H", "10.0.0.2"], timeout: "3s" }] },
    });
    expect(c.health.commands).toEqual([
      { name: "plc", command: ["/usr/lib/nagios/check_ping", "-H", "10.0.0.2"], intervalMs: 60_000, timeoutMs: 3_000 },
    ]);
  });

  it("names the key of a bad health setting", () => {
    expect(() => load({ health: { diskFreeWarnPct: 3 } })).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID", field: "health.diskFreeWarnPct" }),
    );
    expect(() => load({ health: { clockSkewWarnS: 600 } })).toThrow(
      expect.objectContaining({ field: "health.clockSkewWarnS" }),
    );
    expect(() =>
      load({
        health: {
          commands: [
            { name: "a", command: ["x"] },
            { name: "a", command: ["y"] },
          ],
        },
      }),
    ).toThrow(expect.objectContaining({ field: "health.commands[1].name" }));
    expect(() => load({ health: { commands: [{ name: "a b", command: ["x"] }] } })).toThrow(
      expect.objectContaining({ field: "health.commands[0].name" }),
    );
    expect(() => load({ health: { commands: [{ name: "a", command: [] }] } })).toThrow(
      expect.objectContaining({ field: "health.commands[0].command" }),
    );
    expect(() => load({ health: { commands: [{ name: "a", command: ["x"], interval: "often" }] } })).toThrow(
      expect.objectContaining({ field: "health.commands[0].interval" }),
    );
  });

  it("takes localApi settings from the environment", () => {
    const c = load({}, { FIELDGATE_AGENT_LOCAL_API_PORT: "8787", FIELDGATE_AGENT_LOCAL_API_SOCKET: "/run/fg.sock" });
    expect(c.localApi).toEqual({ enabled: true, socket: "/run/fg.sock", port: 8787 });
    expect(load({}, { FIELDGATE_AGENT_HEALTH_REPORT_INTERVAL: "1m" }).health.reportIntervalMs).toBe(60_000);
  });
});

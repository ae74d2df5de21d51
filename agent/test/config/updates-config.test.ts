import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { FieldgateError } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { tempDir } from "../helpers/tmp.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";

describe("loadConfig: updates", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  const load = (updates: unknown) => {
    const file = join(tmp.dir, "agent.json");
    writeFileSync(file, JSON.stringify({ uuid: UUID, cloud: { url: "https://x:1" }, updates }));
    return loadConfig({ file, env: {} }).config.updates;
  };

  it("defaults: disabled, no installer, confirm deadline 5m, job timeout 60m", () => {
    expect(load(undefined)).toEqual({
      enabled: false,
      confirmDeadlineMs: 300_000,
      confirmGate: ["@commands", "@posted", "@links"],
      confirmRequiresCloud: true,
      jobTimeoutMs: 3_600_000,
      startJitterMs: 0,
    });
  });

  it("reads a script installer with its timeout (default 10m) and a confirm command", () => {
    expect(
      load({
        enabled: true,
        installer: { type: "script", command: ["/usr/bin/flash", "{image}"] },
        confirmCommand: ["/usr/bin/selftest"],
        confirmDeadline: "30s",
        jobTimeout: "2h",
      }),
    ).toEqual({
      enabled: true,
      installer: { type: "script", command: ["/usr/bin/flash", "{image}"], timeoutMs: 600_000, activation: "none" },
      confirmCommand: ["/usr/bin/selftest"],
      confirmDeadlineMs: 30_000,
      confirmGate: ["@commands", "@posted", "@links"],
      confirmRequiresCloud: true,
      jobTimeoutMs: 7_200_000,
      startJitterMs: 0,
    });
    expect(load({ installer: { type: "script", command: ["x"], timeout: "5s" } }).installer).toMatchObject({
      timeoutMs: 5000,
    });
  });

  it("resolves the ab-slots root against the config file", () => {
    expect(load({ installer: { type: "ab-slots", root: "slots" } }).installer).toEqual({
      type: "ab-slots",
      root: join(tmp.dir, "slots"),
    });
  });

  it("reads the agent installer (maxBoots default 3) and a script installer that reboots", () => {
    expect(load({ installer: { type: "agent", root: "agent" } }).installer).toEqual({
      type: "agent",
      root: join(tmp.dir, "agent"),
      maxBoots: 3,
    });
    expect(
      load({
        installer: {
          type: "script",
          command: ["/usr/bin/flash", "{image}"],
          activation: "reboot",
          rebootCommand: ["/sbin/reboot"],
          versionCommand: ["/usr/bin/fw-version"],
        },
      }).installer,
    ).toEqual({
      type: "script",
      command: ["/usr/bin/flash", "{image}"],
      timeoutMs: 600_000,
      activation: "reboot",
      rebootCommand: ["/sbin/reboot"],
      versionCommand: ["/usr/bin/fw-version"],
    });
  });

  it("reads a download rate limit and a start jitter", () => {
    expect(load({ downloadRateLimit: "512KiB/s", startJitter: "2m" })).toMatchObject({
      downloadRateLimit: 512 * 1024,
      startJitterMs: 120_000,
    });
    expect(load({ downloadRateLimit: "2MB/s" }).downloadRateLimit).toBe(2_000_000);
  });

  const err = (updates: unknown, env: NodeJS.ProcessEnv = {}) => {
    try {
      const file = join(tmp.dir, "agent.json");
      writeFileSync(file, JSON.stringify({ uuid: UUID, cloud: { url: "https://x:1" }, updates }));
      loadConfig({ file, env });
    } catch (e) {
      return e as FieldgateError;
    }
    throw new Error("expected CONFIG_INVALID");
  };

  it("names a bad rate limit or jitter, with the value and what is expected", () => {
    const rate = err({ downloadRateLimit: "fast" });
    expect(rate).toMatchObject({ code: "CONFIG_INVALID", field: "updates.downloadRateLimit" });
    expect(rate.message).toMatch(/512KiB\/s.*"fast"/);
    const fromEnv = err(undefined, { FIELDGATE_AGENT_UPDATES_DOWNLOAD_RATE_LIMIT: "0B/s" });
    expect(fromEnv.field).toBe("updates.downloadRateLimit");
    expect(fromEnv.message).toContain("FIELDGATE_AGENT_UPDATES_DOWNLOAD_RATE_LIMIT");
    expect(err({ startJitter: "soon" })).toMatchObject({ code: "CONFIG_INVALID", field: "updates.startJitter" });
  });

  it("a script installer that reboots needs rebootCommand and versionCommand", () => {
    const base = { type: "script", command: ["x"], activation: "reboot" };
    expect(err({ installer: { ...base, versionCommand: ["v"] } }).field).toBe("updates.installer.rebootCommand");
    expect(err({ installer: { ...base, rebootCommand: ["r"] } }).field).toBe("updates.installer.versionCommand");
    expect(err({ installer: { type: "agent", root: "x", maxBoots: 0 } }).code).toBe("CONFIG_INVALID");
  });

  it("reads the confirmation gate: device (the default), all, or a list; from the environment a comma list", () => {
    expect(load({ confirmGate: "device" }).confirmGate).toEqual(["@commands", "@posted", "@links"]);
    expect(load({ confirmGate: "all", confirmRequiresCloud: false })).toMatchObject({
      confirmGate: "all",
      confirmRequiresCloud: false,
    });
    expect(load({ confirmGate: ["command.plc", "link.*", "@builtin", "load"] }).confirmGate).toEqual([
      "command.plc",
      "link.*",
      "@builtin",
      "load",
    ]);
    const file = join(tmp.dir, "env.json");
    writeFileSync(file, JSON.stringify({ uuid: UUID, cloud: { url: "https://x:1" } }));
    const env = { FIELDGATE_AGENT_UPDATES_CONFIRM_GATE: "@commands, memory" };
    expect(loadConfig({ file, env }).config.updates.confirmGate).toEqual(["@commands", "memory"]);
  });

  it("names a bad confirmation gate entry, with the value and what is expected", () => {
    const kind = err({ confirmGate: ["command.plc", "@programs"] });
    expect(kind).toMatchObject({ code: "CONFIG_INVALID", field: "updates.confirmGate[1]" });
    expect(kind.message).toMatch(/@commands, @posted, @links, @builtin; got "@programs"/);
    expect(err({ confirmGate: "strict" }).field).toBe("updates.confirmGate");
    expect(err({ confirmGate: [] }).field).toBe("updates.confirmGate");
    expect(err({ confirmGate: 3 }).code).toBe("CONFIG_INVALID");
    expect(err({ confirmRequiresCloud: "yes" }).field).toBe("updates.confirmRequiresCloud");
    const fromEnv = err(undefined, { FIELDGATE_AGENT_UPDATES_CONFIRM_GATE: "load,,x" });
    expect(fromEnv.message).toContain("FIELDGATE_AGENT_UPDATES_CONFIRM_GATE");
  });

  it("names a bad installer or duration", () => {
    expect(err({ installer: { type: "nfs" } }).code).toBe("CONFIG_INVALID");
    expect(err({ installer: { type: "script", command: [] } }).field).toContain("updates.installer");
    expect(err({ jobTimeout: "soon" }).field).toBe("updates.jobTimeout");
    expect(err({ installer: { type: "script", command: ["x"], timeout: "0s" } }).field).toBe(
      "updates.installer.timeout",
    );
  });
});

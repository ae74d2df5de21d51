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
    expect(load(undefined)).toEqual({ enabled: false, confirmDeadlineMs: 300_000, jobTimeoutMs: 3_600_000 });
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
      installer: { type: "script", command: ["/usr/bin/flash", "{image}"], timeoutMs: 600_000 },
      confirmCommand: ["/usr/bin/selftest"],
      confirmDeadlineMs: 30_000,
      jobTimeoutMs: 7_200_000,
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

  it("names a bad installer or duration", () => {
    const err = (updates: unknown) => {
      try {
        load(updates);
      } catch (e) {
        return e as FieldgateError;
      }
      throw new Error("expected CONFIG_INVALID");
    };
    expect(err({ installer: { type: "nfs" } }).code).toBe("CONFIG_INVALID");
    expect(err({ installer: { type: "script", command: [] } }).field).toContain("updates.installer");
    expect(err({ jobTimeout: "soon" }).field).toBe("updates.jobTimeout");
    expect(err({ installer: { type: "script", command: ["x"], timeout: "0s" } }).field).toBe(
      "updates.installer.timeout",
    );
  });
});

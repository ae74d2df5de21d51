import { describe, expect, it } from "vitest";
import { deviceSubscriptions, deviceTopic, parseDeviceTopic } from "../src/topics.js";

const U = "0b6a2f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b";

describe("topic map", () => {
  it("round-trips every topic kind", () => {
    const kinds = [
      { kind: "telemetry" },
      { kind: "health" },
      { kind: "logs" },
      { kind: "state" },
      { kind: "events" },
      { kind: "config/reported" },
      { kind: "presence" },
      { kind: "jobs/status", jobId: "job-42" },
      { kind: "jobs/notify" },
      { kind: "telemetry/refused" },
      { kind: "config/desired" },
      { kind: "commands", commandId: "reboot.1" },
    ] as const;
    for (const t of kinds) {
      const topic = deviceTopic(U, t);
      expect(topic.startsWith(`fieldgate/v1/${U}/`)).toBe(true);
      expect(parseDeviceTopic(topic)?.topic).toEqual(t);
    }
  });

  it("refuses uuids and ids that could escape their topic level", () => {
    expect(() => deviceTopic("+", { kind: "telemetry" })).toThrow(/not a uuid/);
    expect(() => deviceTopic(U, { kind: "commands", commandId: "a/b" })).toThrow(/not a valid topic id/);
    expect(() => deviceTopic(U, { kind: "jobs/status", jobId: "#" })).toThrow();
  });

  it("does not parse foreign or malformed topics", () => {
    for (const t of [
      "$SYS/x",
      "fieldgate/v2/x/telemetry",
      `fieldgate/v1/${U}`,
      `fieldgate/v1/${U}/nope`,
      `fieldgate/v1/${U}/jobs/notify/status`,
    ]) {
      expect(parseDeviceTopic(t), t).toBeUndefined();
    }
  });

  it("lists exactly the device's own subscriptions", () => {
    expect(deviceSubscriptions(U)).toEqual([
      `fieldgate/v1/${U}/jobs/notify`,
      `fieldgate/v1/${U}/config/desired`,
      `fieldgate/v1/${U}/commands/+`,
      `fieldgate/v1/${U}/telemetry/refused`,
    ]);
  });

  it("makes telemetry/refused cloud-to-device, and nothing below it", () => {
    expect(parseDeviceTopic(`fieldgate/v1/${U}/telemetry/refused`)?.direction).toBe("cloud-to-device");
    expect(parseDeviceTopic(`fieldgate/v1/${U}/telemetry/refused/x`)).toBeUndefined();
    expect(parseDeviceTopic(`fieldgate/v1/${U}/telemetry/other`)).toBeUndefined();
  });
});

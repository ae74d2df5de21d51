import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { authorizeDevicePublish, authorizeDeviceSubscribe, mayDeliverToDevice } from "../../src/broker/device-acl.js";

const A = "0b6a2f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b";
const B = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a";

describe("device ACL", () => {
  it("allows each device-to-cloud topic in the device's own root", () => {
    for (const t of [
      "telemetry",
      "health",
      "logs",
      "state",
      "events",
      "config/reported",
      "presence",
      "jobs/j-1/status",
    ]) {
      expect(authorizeDevicePublish(A, `fieldgate/v1/${A}/${t}`), t).toEqual({ allowed: true });
    }
  });

  it("refuses other roots, the wrong direction, wildcards and $SYS for publish", () => {
    for (const topic of [
      `fieldgate/v1/${B}/telemetry`,
      `fieldgate/v1/${A}/config/desired`,
      `fieldgate/v1/${A}/commands/c1`,
      `fieldgate/v1/${A}/telemetry/extra`,
      `fieldgate/v1/${A}/telemetry/refused`,
      `fieldgate/v1/${A.toUpperCase()}/telemetry`,
      "$SYS/broker/load",
      `fieldgate/v1/${A}/+`,
      `fieldgate/v1/${A}/#`,
    ]) {
      expect(authorizeDevicePublish(A, topic).allowed, topic).toBe(false);
    }
  });

  it("allows only the device's own cloud-to-device subscriptions", () => {
    for (const f of ["config/desired", "jobs/notify", "commands/+", "commands/abc", "telemetry/refused"]) {
      expect(authorizeDeviceSubscribe(A, `fieldgate/v1/${A}/${f}`).allowed, f).toBe(true);
    }
    for (const f of [
      "#",
      "+/#",
      "$SYS/#",
      `fieldgate/v1/${B}/config/desired`,
      "fieldgate/v1/+/jobs/notify",
      `fieldgate/v1/${A}/#`,
      `fieldgate/v1/${A}/+/desired`,
      `fieldgate/v1/${A}/telemetry/+`,
      `fieldgate/v1/${B}/telemetry/refused`,
      `fieldgate/v1/${A}/telemetry`,
    ]) {
      expect(authorizeDeviceSubscribe(A, f).allowed, f).toBe(false);
    }
  });

  it("never lets any topic or filter string reach outside the device's root (property)", () => {
    const level = fc.oneof(
      fc.constantFrom(
        "+",
        "#",
        "$SYS",
        "fieldgate",
        "v1",
        A,
        B,
        "telemetry",
        "config",
        "desired",
        "commands",
        "",
        "jobs",
      ),
      fc.string(),
    );
    const topic = fc.array(level, { minLength: 1, maxLength: 7 }).map((ls) => ls.join("/"));
    fc.assert(
      fc.property(topic, (t) => {
        const ownRoot = `fieldgate/v1/${A}/`;
        if (authorizeDevicePublish(A, t).allowed) expect(t.startsWith(ownRoot) && !/[+#]/.test(t)).toBe(true);
        if (authorizeDeviceSubscribe(A, t).allowed) {
          expect(t.startsWith(ownRoot)).toBe(true);
          expect(t.includes("#")).toBe(false);
        }
        if (mayDeliverToDevice(A, t)) expect(t.startsWith(ownRoot)).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });
});

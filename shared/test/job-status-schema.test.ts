import { describe, expect, it } from "vitest";
import { DEVICE_PAYLOAD_SCHEMAS, JobStatus, MAX_JOB_STATUS_CHECKS } from "../src/schemas.js";
import { SchemaValidator } from "../src/validation.js";

const validator = new SchemaValidator();
const parse = (value: unknown) => validator.parse(JobStatus, value, "status");
const fieldOf = (value: unknown) => {
  try {
    parse(value);
  } catch (err) {
    return (err as { code: string; field?: string }).field ?? (err as { code: string }).code;
  }
  throw new Error("expected VALIDATION_FAILED");
};

const confirming = { v: 1, ts: 1_700_000_000_000, status: "IN_PROGRESS", step: "CONFIRMING" } as const;

describe("JobStatus with the checks that hold a confirmation back", () => {
  it("a status as agents before the gate send it is still valid, and it is the schema of jobs/status", () => {
    expect(DEVICE_PAYLOAD_SCHEMAS["jobs/status"]).toBe(JobStatus);
    expect(parse({ ...confirming, progress: { done: 6, total: 6 } })).toMatchObject({ step: "CONFIRMING" });
    expect(
      parse({ v: 1, ts: 1, status: "ROLLED_BACK", reason: "HEALTH_NOT_OK", message: "health was critical" }),
    ).toBeTruthy();
  });

  it("carries the failing checks with name, status and an optional message", () => {
    const status = {
      ...confirming,
      message: 'waiting on health: check "command.plc-program" critical: PLC program stopped',
      checks: [
        { name: "command.plc-program", status: "critical", message: "PLC program stopped" },
        { name: "link.meter", status: "unknown" },
      ],
    };
    expect(parse(status).checks).toEqual(status.checks);
  });

  it("bounds the checks: their number, the message size, the name and status, no other fields", () => {
    const one = { name: "command.x", status: "critical" };
    expect(fieldOf({ ...confirming, checks: Array(MAX_JOB_STATUS_CHECKS + 1).fill(one) })).toBe("status.checks");
    expect(fieldOf({ ...confirming, checks: [{ ...one, message: "m".repeat(257) }] })).toBe("status.checks[0].message");
    expect(fieldOf({ ...confirming, checks: [{ ...one, name: "x".repeat(129) }] })).toBe("status.checks[0].name");
    expect(fieldOf({ ...confirming, checks: [{ ...one, name: "no spaces" }] })).toBe("status.checks[0].name");
    expect(fieldOf({ ...confirming, checks: [{ ...one, status: "red" }] })).toBe("status.checks[0].status");
    expect(fieldOf({ ...confirming, checks: [{ ...one, output: "x" }] })).toBe("status.checks[0].output");
    expect(fieldOf({ ...confirming, checks: "command.x critical" })).toBe("status.checks");
  });
});

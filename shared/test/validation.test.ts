import { describe, expect, it } from "vitest";
import { CreateDeviceBody, TelemetryBatch } from "../src/schemas.js";
import { SchemaValidator } from "../src/validation.js";

const v = new SchemaValidator();
const fail = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err as { code: string; field?: string; message: string };
  }
  throw new Error("expected a validation error");
};

describe("SchemaValidator", () => {
  it("names nested fields as dotted paths with indexes", () => {
    const err = fail(() =>
      v.parse(TelemetryBatch, {
        v: 1,
        stream: "0123456789abcdef",
        seq: 1,
        readings: [
          { name: "a", ts: 1, value: 1 },
          { name: "b", ts: -1, value: 1 },
        ],
      }),
    );
    expect(err).toMatchObject({ code: "VALIDATION_FAILED", field: "readings[1].ts" });
  });
  it("joins a prefix with an array path without a stray dot", () => {
    const err = fail(() => v.parse(TelemetryBatch.properties.readings, [{ name: "a", ts: 1 }], "readings"));
    expect(err.field).toBe("readings[0].value");
  });
  it("names a missing and an unknown property, and explains a pattern by its description", () => {
    expect(fail(() => v.parse(CreateDeviceBody, {})).field).toBe("uuid");
    expect(
      fail(() => v.parse(CreateDeviceBody, { uuid: "0b6a2f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b", extra: 1 })).field,
    ).toBe("extra");
    expect(fail(() => v.parse(CreateDeviceBody, { uuid: "x" })).message).toBe(
      "uuid must be a device uuid (RFC 4122 text form)",
    );
  });
});

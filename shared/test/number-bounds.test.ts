import type { TSchema } from "@sinclair/typebox";
import { describe, expect, it } from "vitest";
import { DEVICE_PAYLOAD_SCHEMAS, MAX_TIMESTAMP_MS, TelemetryBatch, TelemetryRefused } from "../src/schemas.js";
import { SchemaValidator } from "../src/validation.js";

/** Every number field under `schema` with its path, and what is wrong with its bounds (if anything). */
function unboundedNumbers(schema: unknown, path: string, found: string[]): string[] {
  if (schema === null || typeof schema !== "object") return found;
  const s = schema as Record<string, unknown>;
  // A literal (`v: 1`) is bounded by its const.
  if ((s.type === "number" || s.type === "integer") && s.const === undefined) {
    const lo = (s.minimum ?? s.exclusiveMinimum) as number | undefined;
    const hi = (s.maximum ?? s.exclusiveMaximum) as number | undefined;
    const limit = s.type === "integer" ? Number.MAX_SAFE_INTEGER : Number.MAX_VALUE;
    if (lo === undefined || hi === undefined) found.push(`${path}: no minimum or maximum`);
    else if (hi > limit || lo < -limit) found.push(`${path}: bounds beyond what is exact`);
  }
  for (const [key, child] of Object.entries(s)) {
    if (Array.isArray(child)) {
      child.forEach((c, i) => {
        unboundedNumbers(c, `${path}.${key}[${i}]`, found);
      });
    } else if (typeof child === "object") unboundedNumbers(child, `${path}.${key}`, found);
  }
  return found;
}

describe("device-topic schemas bound every number", () => {
  it("has a minimum and a maximum an exact reader can hold on every number field", () => {
    const schemas: Record<string, TSchema> = { ...DEVICE_PAYLOAD_SCHEMAS, "telemetry/refused": TelemetryRefused };
    const problems = Object.entries(schemas).flatMap(([kind, schema]) => unboundedNumbers(schema, kind, []));
    expect(problems).toEqual([]);
  });

  it("catches an unbounded field (the walker itself can fail)", () => {
    expect(unboundedNumbers({ type: "object", properties: { n: { type: "integer", minimum: 0 } } }, "x", [])).toEqual([
      "x.properties.n: no minimum or maximum",
    ]);
  });

  const validator = new SchemaValidator();
  const batch = (over: Record<string, unknown>, reading: Record<string, unknown> = {}) => ({
    v: 1,
    stream: "a1b2c3d4e5f60718",
    seq: 1,
    readings: [{ name: "t", ts: 1_700_000_000_000, value: 1, ...reading }],
    ...over,
  });
  const fieldOf = (value: unknown) => {
    try {
      validator.parse(TelemetryBatch, value);
      return "accepted";
    } catch (err) {
      return (err as { field?: string }).field;
    }
  };

  it("refuses the numbers no reader can represent, naming the field", () => {
    expect(fieldOf(batch({ seq: 2 ** 64 }))).toBe("seq");
    // 2^53 + 1 arrives as 2^53 after JSON.parse: refused rather than stored rounded.
    expect(
      fieldOf(
        JSON.parse(
          '{"v":1,"stream":"a1b2c3d4e5f60718","seq":9007199254740993,"readings":[{"name":"t","ts":1,"value":1}]}',
        ),
      ),
    ).toBe("seq");
    expect(fieldOf(batch({}, { ts: 1e300 }))).toBe("readings[0].ts");
    expect(fieldOf(batch({}, { ts: MAX_TIMESTAMP_MS + 1 }))).toBe("readings[0].ts");
    expect(fieldOf(batch({}, { value: JSON.parse("-1e999") }))).toBe("readings[0].value");
    expect(fieldOf(batch({}, { value: Number.NaN }))).toBe("readings[0].value");
  });

  it("accepts the largest values that are exact", () => {
    expect(fieldOf(batch({ seq: Number.MAX_SAFE_INTEGER }, { ts: MAX_TIMESTAMP_MS, value: -Number.MAX_VALUE }))).toBe(
      "accepted",
    );
    expect(new Date(MAX_TIMESTAMP_MS).toISOString()).toBe("9999-12-31T23:59:59.999Z");
  });
});

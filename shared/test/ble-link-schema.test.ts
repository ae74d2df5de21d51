import { describe, expect, it } from "vitest";
import { BleLinkConfig } from "../src/ble-link-schema.js";
import { SchemaValidator } from "../src/validation.js";

const v = new SchemaValidator();
const sensor = {
  id: "greenhouse-env",
  type: "ble",
  match: { localName: "EnvSensor" },
  connectTimeout: "10s",
  characteristics: [
    {
      service: "181a",
      characteristic: "2a6e",
      mode: "read",
      interval: "30s",
      decode: { type: "int16", endian: "le", scale: 0.01, name: "temperature", unit: "°C" },
    },
    {
      service: "0000181a-0000-1000-8000-00805f9b34fb",
      characteristic: "2a6f",
      mode: "notify",
      decode: { type: "layout", fields: [{ byteOffset: 0, type: "uint16", scale: 0.01, name: "humidity" }] },
    },
  ],
};

const error = (value: unknown) => {
  try {
    v.parse(BleLinkConfig, value);
  } catch (err) {
    return err as { code: string; field?: string };
  }
  return undefined;
};

describe("BleLinkConfig", () => {
  it("accepts a link matched by name with a read and a notify characteristic", () => {
    expect(error(sensor)).toBeUndefined();
  });

  it("needs at least one way to match the peripheral", () => {
    expect(error({ ...sensor, match: {} })).toMatchObject({ code: "VALIDATION_FAILED", field: "match" });
  });

  it("names a bad address, UUID or decoder field", () => {
    expect(error({ ...sensor, match: { address: "aa:bb" } })).toMatchObject({ field: "match.address" });
    const bad = structuredClone(sensor);
    bad.characteristics[0] = { ...bad.characteristics[0], service: "xyz" } as (typeof bad.characteristics)[0];
    expect(error(bad)).toMatchObject({ field: "characteristics[0].service" });
    expect(error({ ...sensor, extra: 1 })).toMatchObject({ field: "extra" });
  });
});

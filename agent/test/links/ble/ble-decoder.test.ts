import { BLE_NUMBER_TYPES, type BleDecoder, type BleLayoutField } from "@fieldgate/shared";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bytesNeeded, compileDecoder } from "../../../src/links/ble/ble-decoder.js";

describe("BLE decoders", () => {
  it("decodes each number type in both byte orders, then scales and offsets", () => {
    const bytes = Uint8Array.from([0xfe, 0xff, 0x00, 0x01]);
    const value = (decoder: Partial<BleLayoutField> & Pick<BleLayoutField, "type">) => {
      const r = compileDecoder({ name: "v", ...decoder } as BleDecoder)(bytes);
      return r.ok ? r.readings[0]?.value : r.error;
    };
    expect(value({ type: "int8" })).toBe(-2);
    expect(value({ type: "uint8" })).toBe(254);
    expect(value({ type: "int16" })).toBe(-2);
    expect(value({ type: "int16", endian: "be" })).toBe(-257);
    expect(value({ type: "uint16", endian: "be" })).toBe(0xfeff);
    expect(value({ type: "int32", endian: "be" })).toBe(0xfeff0001 | 0);
    expect(value({ type: "uint32" })).toBe(0x0100fffe);
    expect(value({ type: "uint16", scale: 0.5, offset: -10 })).toBe(0xfffe * 0.5 - 10);
    const float = Buffer.alloc(4);
    float.writeFloatBE(-1.5);
    const r = compileDecoder({ type: "float32", endian: "be", name: "f" })(float);
    expect(r).toEqual({ ok: true, readings: [{ name: "f", value: -1.5 }] });
  });

  it("refuses a value shorter than the layout and a float that is not finite", () => {
    const layout: BleDecoder = {
      type: "layout",
      fields: [
        { byteOffset: 0, type: "uint8", name: "a" },
        { byteOffset: 3, type: "uint16", name: "b" },
      ],
    };
    expect(bytesNeeded(layout)).toBe(5);
    expect(compileDecoder(layout)(Uint8Array.from([1, 2, 3, 4]))).toEqual({
      ok: false,
      error: "value has 4 byte(s); the decoder needs 5",
    });
    const nan = Buffer.alloc(4);
    nan.writeFloatLE(Number.NaN);
    expect(compileDecoder({ type: "float32", name: "f" })(nan)).toMatchObject({ ok: false });
  });

  it("never throws on random bytes, and every reading is a finite number (property)", () => {
    const field = fc.record({
      byteOffset: fc.integer({ min: 0, max: 16 }),
      type: fc.constantFrom(...BLE_NUMBER_TYPES),
      endian: fc.constantFrom("le" as const, "be" as const),
      scale: fc.double({ noNaN: true }),
      offset: fc.double({ noNaN: true }),
      name: fc.string({ minLength: 1, maxLength: 8 }),
    });
    const decoder: fc.Arbitrary<BleDecoder> = fc.oneof(
      field.map(({ byteOffset: _, ...scalar }) => scalar),
      fc.array(field, { minLength: 1, maxLength: 6 }).map((fields) => ({ type: "layout" as const, fields })),
    );
    fc.assert(
      fc.property(decoder, fc.uint8Array({ maxLength: 32 }), fc.nat(8), (d, bytes, start) => {
        // A subarray: the decoder must respect the view's offset into a larger buffer.
        const view = bytes.subarray(Math.min(start, bytes.length));
        const result = compileDecoder(d)(view);
        if (result.ok) {
          expect(view.length).toBeGreaterThanOrEqual(bytesNeeded(d));
          for (const r of result.readings) expect(Number.isFinite(r.value)).toBe(true);
        } else expect(result.error).toBeTypeOf("string");
      }),
      { numRuns: 2000 },
    );
  });
});

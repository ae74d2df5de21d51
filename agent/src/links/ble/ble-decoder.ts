/**
 * Turns a characteristic value (the bytes a BLE peripheral sends) into readings, as its config
 * declares. Pure and total: a value that does not fit gives an error result, never a throw, so a
 * misbehaving peripheral costs a framing error and nothing else.
 */
import type { BleDecoder, BleLayoutField, BleNumberType, BleScalarDecoder } from "@fieldgate/shared";
import type { LinkReading } from "../link.js";

export type DecodeResult = { ok: true; readings: LinkReading[] } | { ok: false; error: string };

/** A compiled decoder: config checked once, then applied to every value. */
export type ValueDecoder = (value: Uint8Array) => DecodeResult;

const WIDTH: Record<BleNumberType, number> = {
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  float32: 4,
};

/** Bytes a value must have for this decoder (the end of its furthest field). */
export function bytesNeeded(decoder: BleDecoder): number {
  if (decoder.type === "layout") return Math.max(...decoder.fields.map((f) => f.byteOffset + WIDTH[f.type]));
  return WIDTH[decoder.type];
}

export function compileDecoder(decoder: BleDecoder): ValueDecoder {
  const fields: BleLayoutField[] =
    decoder.type === "layout" ? decoder.fields : [{ byteOffset: 0, ...(decoder as BleScalarDecoder) }];
  const needed = bytesNeeded(decoder);
  return (value) => {
    if (value.length < needed)
      return { ok: false, error: `value has ${value.length} byte(s); the decoder needs ${needed}` };
    const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
    const readings: LinkReading[] = [];
    for (const field of fields) {
      const raw = readNumber(view, field.byteOffset, field.type, field.endian !== "be");
      const scaled = raw * (field.scale ?? 1) + (field.offset ?? 0);
      // NaN or ±Infinity (a float32 bit pattern, or an absurd scale) is not a reading.
      if (!Number.isFinite(scaled)) return { ok: false, error: `${field.name} is not a finite number` };
      readings.push(
        field.unit === undefined
          ? { name: field.name, value: scaled }
          : { name: field.name, value: scaled, unit: field.unit },
      );
    }
    return { ok: true, readings };
  };
}

function readNumber(view: DataView, at: number, type: BleNumberType, littleEndian: boolean): number {
  switch (type) {
    case "int8":
      return view.getInt8(at);
    case "uint8":
      return view.getUint8(at);
    case "int16":
      return view.getInt16(at, littleEndian);
    case "uint16":
      return view.getUint16(at, littleEndian);
    case "int32":
      return view.getInt32(at, littleEndian);
    case "uint32":
      return view.getUint32(at, littleEndian);
    case "float32":
      return view.getFloat32(at, littleEndian);
  }
}

/**
 * Turns Modbus register and bit values into readings. Registers are big-endian 16-bit words (the
 * Modbus convention); for 32-bit types `wordOrder` says which register holds the high word, since
 * devices disagree (`big`: the first, as the specification implies; `little`: many meters).
 */
import { MODBUS_TYPE_REGISTERS, type ModbusPoll, READING_NAME_PATTERN } from "@fieldgate/shared";
import type { LinkReading } from "../link.js";

const NAME = new RegExp(READING_NAME_PATTERN);

/** The Modbus function code of a poll entry. */
export function functionCode(fn: ModbusPoll["function"]): 1 | 2 | 3 | 4 {
  return fn === "coil" ? 1 : fn === "discrete" ? 2 : fn === "holding" ? 3 : 4;
}

/** How many registers (or bits) one request for this entry reads. */
export function quantityOf(entry: ModbusPoll): number {
  const count = entry.count ?? 1;
  if (entry.function === "coil" || entry.function === "discrete") return count;
  return count * MODBUS_TYPE_REGISTERS[entry.type ?? "uint16"];
}

/** The reading name of value `index` of an entry: the name itself for a single value, `name.index` otherwise. */
export function readingName(entry: ModbusPoll, index: number): string {
  return (entry.count ?? 1) === 1 ? entry.name : `${entry.name}.${index}`;
}

/** Decoded readings, and the first problem met (counted as one framing error). */
export interface DecodedValues {
  readings: LinkReading[];
  error?: string;
}

/**
 * Decodes the answer to one poll entry. `registers` are 16-bit words (holding, input); `bits` are
 * booleans (coil, discrete). A short answer, a NaN/Infinity or an unusable name is an error, never a throw.
 */
export function decodePollAnswer(
  entry: ModbusPoll,
  answer: { registers?: readonly number[]; bits?: readonly boolean[] },
): DecodedValues {
  const count = entry.count ?? 1;
  const readings: LinkReading[] = [];
  let error: string | undefined;
  const push = (index: number, value: number | boolean): void => {
    const name = readingName(entry, index);
    if (!NAME.test(name)) {
      error ??= `${name.slice(0, 64)}: not a valid reading name`;
      return;
    }
    if (typeof value === "number" && !Number.isFinite(value)) {
      error ??= `${name}: decoded to ${value}`;
      return;
    }
    readings.push(entry.unit === undefined ? { name, value } : { name, value, unit: entry.unit });
  };
  if (entry.function === "coil" || entry.function === "discrete") {
    const bits = answer.bits ?? [];
    if (bits.length < count) return { readings, error: `expected ${count} bits, got ${bits.length}` };
    for (let i = 0; i < count; i++) push(i, bits[i] === true);
    return error === undefined ? { readings } : { readings, error };
  }
  const type = entry.type ?? "uint16";
  const width = MODBUS_TYPE_REGISTERS[type];
  const words = answer.registers ?? [];
  if (words.length < count * width) {
    return { readings, error: `expected ${count * width} registers, got ${words.length}` };
  }
  for (let i = 0; i < count; i++) {
    const raw = registerValue(type, words.slice(i * width, i * width + width), entry.wordOrder ?? "big");
    push(i, scaled(raw, entry));
  }
  return error === undefined ? { readings } : { readings, error };
}

/** One value of `type` from its registers (1 or 2 words of 16 bits). */
export function registerValue(
  type: NonNullable<ModbusPoll["type"]>,
  words: readonly number[],
  wordOrder: "big" | "little",
): number {
  const buf = Buffer.alloc(4);
  if (type === "int16" || type === "uint16") {
    buf.writeUInt16BE((words[0] ?? 0) & 0xffff, 0);
    return type === "int16" ? buf.readInt16BE(0) : buf.readUInt16BE(0);
  }
  const [first, second] = [(words[0] ?? 0) & 0xffff, (words[1] ?? 0) & 0xffff];
  const [high, low] = wordOrder === "big" ? [first, second] : [second, first];
  buf.writeUInt16BE(high, 0);
  buf.writeUInt16BE(low, 2);
  if (type === "int32") return buf.readInt32BE(0);
  if (type === "uint32") return buf.readUInt32BE(0);
  // A float32 carries about 7 significant digits; more would print its binary noise (23.399999618…).
  const f = buf.readFloatBE(0);
  return Number.isFinite(f) ? Number(f.toPrecision(7)) : f;
}

function scaled(raw: number, entry: ModbusPoll): number {
  if (entry.scale === undefined && entry.offset === undefined) return raw;
  const value = raw * (entry.scale ?? 1) + (entry.offset ?? 0);
  // 0.1 × 234 is 23.400000000000002 in binary floating point; 12 digits hide that and lose nothing real.
  return Number.isFinite(value) ? Number(value.toPrecision(12)) : value;
}

/**
 * The `type: "ble"` link (issue #6): which peripheral to find, which characteristics to read or
 * subscribe to, and how to turn their bytes into readings. `link-schemas.ts` puts it in the
 * union of link configs.
 */
import { type Static, Type } from "@sinclair/typebox";
import { parseDuration } from "./duration.js";
import { linkCommonProperties } from "./link-common.js";

const Duration = (description: string) => Type.String({ minLength: 1, description });

/** A 16-bit (`180f`) or 128-bit UUID, with or without dashes; matched case-insensitively. */
const BleUuid = Type.String({
  pattern: "^([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12})$",
  description: "16-bit (180f) or 128-bit UUID",
});

export const BLE_NUMBER_TYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "float32"] as const;
export type BleNumberType = (typeof BLE_NUMBER_TYPES)[number];

const scalarDecoderProperties = {
  type: Type.Union(
    BLE_NUMBER_TYPES.map((t) => Type.Literal(t)),
    { description: `one of ${BLE_NUMBER_TYPES.join(", ")}` },
  ),
  /** Byte order of multi-byte values (default le, as the Bluetooth SIG characteristics use). */
  endian: Type.Optional(Type.Union([Type.Literal("le"), Type.Literal("be")], { description: "le or be, default le" })),
  /** value = raw * scale + offset */
  scale: Type.Optional(Type.Number({ description: "multiplier, default 1" })),
  offset: Type.Optional(Type.Number({ description: "added after scaling, default 0" })),
  /** Same characters as the `Reading` schema allows, so every decoded value can be stored. */
  name: Type.String({ pattern: "^[A-Za-z0-9_.:/-]{1,128}$", description: "reading name (A-Z a-z 0-9 _ . : / -)" }),
  unit: Type.Optional(Type.String({ maxLength: 32 })),
};

/** One number at the start of the characteristic value. */
export const BleScalarDecoder = Type.Object(scalarDecoderProperties, { additionalProperties: false });
export type BleScalarDecoder = Static<typeof BleScalarDecoder>;

/** One field of a byte layout: a number at `byteOffset`. */
export const BleLayoutField = Type.Object(
  { byteOffset: Type.Integer({ minimum: 0, maximum: 511 }), ...scalarDecoderProperties },
  { additionalProperties: false },
);
export type BleLayoutField = Static<typeof BleLayoutField>;

/** Several numbers packed in one characteristic value (a temperature, a humidity, a battery level). */
export const BleLayoutDecoder = Type.Object(
  { type: Type.Literal("layout"), fields: Type.Array(BleLayoutField, { minItems: 1, maxItems: 32 }) },
  { additionalProperties: false },
);
export type BleLayoutDecoder = Static<typeof BleLayoutDecoder>;

export const BleDecoder = Type.Union([BleScalarDecoder, BleLayoutDecoder]);
export type BleDecoder = Static<typeof BleDecoder>;

export const BleCharacteristicConfig = Type.Object(
  {
    service: BleUuid,
    characteristic: BleUuid,
    /** `read` polls every `interval`; `notify` subscribes and decodes each notification. */
    mode: Type.Union([Type.Literal("read"), Type.Literal("notify")], { description: "read or notify" }),
    interval: Type.Optional(Duration("read interval for mode read, default 10s")),
    decode: BleDecoder,
  },
  { additionalProperties: false },
);
export type BleCharacteristicConfig = Static<typeof BleCharacteristicConfig>;

/** How to recognise the peripheral: every given property must match (at least one is required). */
export const BlePeripheralMatch = Type.Object(
  {
    address: Type.Optional(
      Type.String({ pattern: "^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$", description: "MAC address aa:bb:cc:dd:ee:ff" }),
    ),
    localName: Type.Optional(Type.String({ minLength: 1, maxLength: 248 })),
    serviceUuid: Type.Optional(BleUuid),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type BlePeripheralMatch = Static<typeof BlePeripheralMatch>;

export const BleLinkConfig = Type.Object(
  {
    ...linkCommonProperties,
    type: Type.Literal("ble"),
    match: BlePeripheralMatch,
    /** noble can hang connecting to a powered-off peripheral (noble #522), so every connect is bounded. */
    connectTimeout: Type.Optional(Duration("default 10s")),
    reconnectMin: Type.Optional(Duration("first reconnect delay, default 1s")),
    reconnectMax: Type.Optional(Duration("reconnect delay cap, default 60s")),
    characteristics: Type.Array(BleCharacteristicConfig, { minItems: 1, maxItems: 64 }),
  },
  { additionalProperties: false },
);
export type BleLinkConfig = Static<typeof BleLinkConfig>;

/** The BLE durations with their defaults and floors (ms): what `checkBleLink` enforces and the link uses. */
export interface BleLinkTimings {
  connectTimeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** Per characteristic, in config order (notify ones too, unused). */
  intervalsMs: number[];
}

/**
 * What the schema cannot say about a BLE link: its durations parse, are not absurdly short, and
 * the backoff bounds are in order. Calls `fail(field, message)` (which throws) on the first
 * problem; returns the timings otherwise.
 */
export function checkBleLink(
  link: BleLinkConfig,
  at: string,
  fail: (field: string, message: string) => never,
): BleLinkTimings {
  const duration = (text: string | undefined, fallback: string, field: string, minimumMs: number): number => {
    const ms = parseDuration(text ?? fallback);
    if (ms === undefined || ms < minimumMs)
      return fail(
        field,
        `must be a duration of at least ${minimumMs}ms such as 10s or 500ms, got ${JSON.stringify(text)}`,
      );
    return ms;
  };
  const connectTimeoutMs = duration(link.connectTimeout, "10s", `${at}.connectTimeout`, 100);
  const reconnectMinMs = duration(link.reconnectMin, "1s", `${at}.reconnectMin`, 10);
  const reconnectMaxMs = duration(link.reconnectMax, "60s", `${at}.reconnectMax`, 10);
  if (reconnectMaxMs < reconnectMinMs) fail(`${at}.reconnectMax`, "must not be shorter than reconnectMin");
  const intervalsMs = link.characteristics.map((c, i) =>
    duration(c.interval, "10s", `${at}.characteristics[${i}].interval`, 50),
  );
  return { connectTimeoutMs, reconnectMinMs, reconnectMaxMs, intervalsMs };
}

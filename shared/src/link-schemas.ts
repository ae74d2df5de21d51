/**
 * Device link configuration (issue #6): the `serial` link here, the `ble` link in
 * `ble-link-schema.ts`, and the `links` array that the agent config file and the cloud's desired
 * config both carry. The schema checks shapes; `checkLinks` adds what a schema cannot say (unique
 * ids, durations, a regex that compiles) and names the field at fault.
 */
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { BleLinkConfig, checkBleLink } from "./ble-link-schema.js";
import { parseDuration } from "./duration.js";
import { FieldgateError } from "./errors.js";
import { linkCommonProperties } from "./link-common.js";
import { SchemaValidator } from "./validation.js";

/** Reading names, as the shared `Reading` schema allows them. */
export const READING_NAME_PATTERN = "^[A-Za-z0-9_.:/-]{1,128}$";
const ReadingName = Type.String({ pattern: READING_NAME_PATTERN, description: "reading name (A-Z a-z 0-9 _ . : / -)" });
const Duration = (description: string) => Type.String({ minLength: 1, description });

/** The most links one gateway runs. */
export const MAX_LINKS = 64;

export const LinesProtocol = Type.Object(
  {
    type: Type.Literal("lines"),
    /** json: one object per line; kv: `key=value` pairs; regex: named groups of `regex`. */
    format: Type.Union([Type.Literal("json"), Type.Literal("kv"), Type.Literal("regex")], {
      description: "json, kv or regex",
    }),
    regex: Type.Optional(
      Type.String({ minLength: 1, maxLength: 1024, description: "for format regex: named groups become readings" }),
    ),
    /** A longer line is dropped whole and counted as a framing error. */
    maxLineLength: Type.Optional(
      Type.Integer({ minimum: 16, maximum: 65_536, description: "bytes, default 1024; longer lines are dropped" }),
    ),
    /** Units to attach by reading name (`{"temp": "°C"}`). */
    units: Type.Optional(Type.Record(Type.String(), Type.String({ maxLength: 32 }))),
  },
  { additionalProperties: false },
);
export type LinesProtocol = Static<typeof LinesProtocol>;

export const MODBUS_VALUE_TYPES = ["int16", "uint16", "int32", "uint32", "float32"] as const;
export type ModbusValueType = (typeof MODBUS_VALUE_TYPES)[number];

export const ModbusPoll = Type.Object(
  {
    unitId: Type.Integer({ minimum: 1, maximum: 247, description: "slave address 1-247" }),
    function: Type.Union(
      ["holding", "input", "coil", "discrete"].map((f) => Type.Literal(f)),
      { description: "holding (FC3), input (FC4), coil (FC1) or discrete (FC2)" },
    ),
    address: Type.Integer({ minimum: 0, maximum: 65_535, description: "first register or bit, 0-based" }),
    /** How many consecutive values of `type` (registers) or bits (coil, discrete); default 1. */
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: 2000, description: "values to read, default 1" })),
    type: Type.Optional(
      Type.Union(
        MODBUS_VALUE_TYPES.map((t) => Type.Literal(t)),
        { description: `register value type, default uint16: ${MODBUS_VALUE_TYPES.join(", ")}` },
      ),
    ),
    /** For 32-bit types: `big` puts the high word in the first register (the Modbus convention). */
    wordOrder: Type.Optional(
      Type.Union([Type.Literal("big"), Type.Literal("little")], { description: "big (default) or little" }),
    ),
    scale: Type.Optional(Type.Number({ description: "value = raw * scale + offset; default 1" })),
    offset: Type.Optional(Type.Number({ description: "default 0" })),
    name: ReadingName,
    unit: Type.Optional(Type.String({ maxLength: 32 })),
  },
  { additionalProperties: false },
);
export type ModbusPoll = Static<typeof ModbusPoll>;

export const ModbusRtuProtocol = Type.Object(
  {
    type: Type.Literal("modbus-rtu"),
    interval: Type.Optional(Duration("time between poll rounds, default 10s")),
    timeout: Type.Optional(Duration("per request, default 1s")),
    retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, description: "per request, default 2" })),
    poll: Type.Array(ModbusPoll, { minItems: 1, maxItems: 256 }),
  },
  { additionalProperties: false },
);
export type ModbusRtuProtocol = Static<typeof ModbusRtuProtocol>;

/**
 * A serial `path` as the cloud accepts it in a desired config: a node under /dev, each segment
 * starting with neither `.` nor `/` (so no `.`, `..` or empty segments). The gateway checks its own
 * allow-list again before it opens anything (agent config `linkPaths`, docs/links.md).
 */
export const DEVICE_PATH_PATTERN = "^/dev(/[A-Za-z0-9_+:@-][A-Za-z0-9_.+:@-]*)+$";

export const SerialLinkConfig = Type.Object(
  {
    ...linkCommonProperties,
    type: Type.Literal("serial"),
    path: Type.String({ minLength: 1, maxLength: 4096, description: "device path, e.g. /dev/ttyUSB0" }),
    baudRate: Type.Optional(Type.Integer({ minimum: 50, maximum: 4_000_000, description: "default 9600" })),
    dataBits: Type.Optional(
      Type.Union(
        [5, 6, 7, 8].map((n) => Type.Literal(n)),
        { description: "5, 6, 7 or 8, default 8" },
      ),
    ),
    parity: Type.Optional(
      Type.Union(
        ["none", "even", "odd", "mark", "space"].map((p) => Type.Literal(p)),
        { description: "none (default), even, odd, mark or space" },
      ),
    ),
    stopBits: Type.Optional(
      Type.Union(
        [1, 1.5, 2].map((n) => Type.Literal(n)),
        { description: "1 (default), 1.5, 2" },
      ),
    ),
    reconnectMin: Type.Optional(Duration("first reconnect delay, default 1s")),
    reconnectMax: Type.Optional(Duration("reconnect delay cap, default 30s")),
    /**
     * The backstop for unplugs the port never reports (serialport #2351): with nothing received for
     * this long, the port is reopened. Default 5m for lines, 60s for modbus-rtu.
     */
    staleAfter: Type.Optional(Duration("reopen after this long without data; default 5m (lines), 60s (modbus-rtu)")),
    protocol: Type.Union([LinesProtocol, ModbusRtuProtocol]),
  },
  { additionalProperties: false },
);
export type SerialLinkConfig = Static<typeof SerialLinkConfig>;

/** Any link, told apart by `type`. */
export const LinkConfig = Type.Union([SerialLinkConfig, BleLinkConfig]);
export type LinkConfig = Static<typeof LinkConfig>;

/** The `links` array of the agent config and of the desired config; `checkLinks` enforces unique ids. */
export const Links = Type.Array(LinkConfig, {
  maxItems: MAX_LINKS,
  description: "device links; ids must be unique (see docs/links.md)",
});
export type Links = Static<typeof Links>;

const SCHEMA_BY_TYPE: Record<string, TSchema> = { serial: SerialLinkConfig, ble: BleLinkConfig };
/** Unions inside a link, told apart by their own `type`: checked first for the same reason. */
const NESTED_BY_TYPE: Record<string, Record<string, Record<string, TSchema>>> = {
  serial: { protocol: { lines: LinesProtocol, "modbus-rtu": ModbusRtuProtocol } },
};

/** Registers per value of each type. */
export const MODBUS_TYPE_REGISTERS: Record<ModbusValueType, number> = {
  int16: 1,
  uint16: 1,
  int32: 2,
  uint32: 2,
  float32: 2,
};

const validator = new SchemaValidator();

/**
 * Validates a `links` array item by item against the schema of each item's `type` (so an error in
 * a BLE link does not read as a missing serial `path`), then checks what the schema cannot: unique
 * ids, durations, regexes, Modbus request sizes. Throws `FieldgateError(code)` naming the field,
 * e.g. `links[2].id`.
 */
export function checkLinks(
  value: unknown,
  prefix = "links",
  code: "VALIDATION_FAILED" | "CONFIG_INVALID" = "VALIDATION_FAILED",
  /** For links from the cloud: serial paths must match DEVICE_PATH_PATTERN. A gateway's own
   * file may name other paths; its allow-list (`linkPaths`) decides at open. */
  options: { devicePaths?: boolean } = {},
): LinkConfig[] {
  const fail = (field: string, message: string): never => {
    throw new FieldgateError(code, `${field} ${message}`, field);
  };
  if (!Array.isArray(value)) return fail(prefix, "must be an array of links");
  if (value.length > MAX_LINKS) fail(prefix, `must have at most ${MAX_LINKS} links`);
  const firstById = new Map<string, number>();
  const firstByPath = new Map<string, number>();
  return value.map((item, i) => {
    const at = `${prefix}[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) return fail(at, "must be an object");
    const type = (item as { type?: unknown }).type;
    const schema = typeof type === "string" ? SCHEMA_BY_TYPE[type] : undefined;
    if (!schema) return fail(`${at}.type`, `must be one of ${Object.keys(SCHEMA_BY_TYPE).join(", ")}`);
    let link: LinkConfig;
    try {
      for (const [key, schemas] of Object.entries(NESTED_BY_TYPE[type as string] ?? {})) {
        const nested = (item as Record<string, unknown>)[key];
        if (typeof nested !== "object" || nested === null) continue;
        const nestedType = (nested as { type?: unknown }).type;
        const nestedSchema = typeof nestedType === "string" ? schemas[nestedType] : undefined;
        if (!nestedSchema) fail(`${at}.${key}.type`, `must be one of ${Object.keys(schemas).join(", ")}`);
        validator.parse(nestedSchema as TSchema, nested, `${at}.${key}`);
      }
      link = validator.parse(schema, item, at) as LinkConfig;
    } catch (err) {
      if (err instanceof FieldgateError) throw new FieldgateError(code, err.message, err.field);
      throw err;
    }
    const first = firstById.get(link.id);
    if (first !== undefined) fail(`${at}.id`, `${JSON.stringify(link.id)} is already used by ${prefix}[${first}]`);
    firstById.set(link.id, i);
    const warn = checkDuration(link.downWarnAfter, `${at}.downWarnAfter`, fail);
    const crit = checkDuration(link.downCriticalAfter, `${at}.downCriticalAfter`, fail);
    if (crit !== undefined && crit < (warn ?? 30_000)) {
      fail(`${at}.downCriticalAfter`, "must not be shorter than downWarnAfter (default 30s)");
    }
    if (link.type === "ble") checkBleLink(link, at, fail);
    if (link.type === "serial") {
      if (options.devicePaths && !new RegExp(DEVICE_PATH_PATTERN).test(link.path)) {
        fail(
          `${at}.path`,
          `must be a device node under /dev such as /dev/ttyUSB0 or /dev/serial/by-id/<name> (no . or .. segments), got ${JSON.stringify(link.path)}`,
        );
      }
      checkSerial(link, at, fail);
      // One port, one master: a second enabled link on the same path could never open it.
      const other = firstByPath.get(link.path);
      if (other !== undefined && link.enabled !== false) {
        fail(`${at}.path`, `${JSON.stringify(link.path)} is already used by ${prefix}[${other}]`);
      }
      if (link.enabled !== false) firstByPath.set(link.path, i);
    }
    return link;
  });
}

function checkDuration(
  text: string | undefined,
  field: string,
  fail: (field: string, message: string) => never,
): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0)
    fail(field, `must be a positive duration such as 10s, 1m or 250ms, got ${JSON.stringify(text)}`);
  return ms;
}

function checkSerial(link: SerialLinkConfig, at: string, fail: (field: string, message: string) => never): void {
  const min = checkDuration(link.reconnectMin, `${at}.reconnectMin`, fail) ?? 1000;
  const max = checkDuration(link.reconnectMax, `${at}.reconnectMax`, fail) ?? 30_000;
  if (max < min) fail(`${at}.reconnectMax`, "must not be shorter than reconnectMin");
  checkDuration(link.staleAfter, `${at}.staleAfter`, fail);
  const p = link.protocol;
  const pat = `${at}.protocol`;
  if (p.type === "lines") {
    if (p.format === "regex") {
      if (p.regex === undefined) fail(`${pat}.regex`, "is required with format regex");
      let re: RegExp | undefined;
      try {
        re = new RegExp(p.regex as string);
      } catch (err) {
        fail(`${pat}.regex`, `does not compile: ${(err as Error).message}`);
      }
      const groups = namedGroups(re as RegExp);
      if (groups.length === 0) fail(`${pat}.regex`, "must have at least one named group, e.g. (?<temp>[0-9.]+)");
      const bad = groups.find((g) => !new RegExp(READING_NAME_PATTERN).test(g));
      if (bad) fail(`${pat}.regex`, `group name ${bad} is not a valid reading name`);
    } else if (p.regex !== undefined) {
      fail(`${pat}.regex`, "is only used with format regex");
    }
    return;
  }
  const interval = checkDuration(p.interval, `${pat}.interval`, fail);
  checkDuration(p.timeout, `${pat}.timeout`, fail);
  if (interval !== undefined && interval < 10) fail(`${pat}.interval`, "must be at least 10ms");
  const names = new Map<string, number>();
  p.poll.forEach((entry, j) => {
    const field = `${pat}.poll[${j}]`;
    const count = entry.count ?? 1;
    const bits = entry.function === "coil" || entry.function === "discrete";
    if (bits && (entry.type !== undefined || entry.wordOrder !== undefined)) {
      fail(`${field}.type`, "applies to registers only (holding, input); coils and discrete inputs read as booleans");
    }
    const quantity = bits ? count : count * MODBUS_TYPE_REGISTERS[entry.type ?? "uint16"];
    // Modbus application protocol 1.1b3, 6.1-6.4: at most 2000 bits or 125 registers per request.
    const limit = bits ? 2000 : 125;
    if (quantity > limit) {
      fail(`${field}.count`, `reads ${quantity} ${bits ? "bits" : "registers"}; one request reads at most ${limit}`);
    }
    if (entry.address + quantity > 65_536) fail(`${field}.count`, "reads past address 65535");
    const firstUse = names.get(entry.name);
    if (firstUse !== undefined)
      fail(`${field}.name`, `${JSON.stringify(entry.name)} is already used by poll[${firstUse}]`);
    names.set(entry.name, j);
  });
}

/** The names of a regex's named groups, in order. */
export function namedGroups(re: RegExp): string[] {
  const names: string[] = [];
  const scan = /\(\?<([A-Za-z_$][\w$]*)>/g;
  for (let m = scan.exec(re.source); m !== null; m = scan.exec(re.source)) names.push(m[1] as string);
  return names;
}

/**
 * The desired-config channel (cloud → device on `config/desired`, acknowledged on
 * `config/reported`) and the device-log API. The desired config grows per capability (log
 * levels, device links); unknown keys are refused so a typo never silently does nothing.
 */
import { type Static, Type } from "@sinclair/typebox";
import { Links } from "./link-schemas.js";
import { SCHEMA_VERSION, SkippedRows, Uuid } from "./schemas.js";

/** Log levels a device forwards and an operator can set, lowest first (pino's order). */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

/** The levels at or above `level`, lowest first: what "at least this level" means. */
export function levelsAtLeast(level: LogLevelName): LogLevelName[] {
  return LOG_LEVELS.slice(LOG_LEVELS.indexOf(level));
}

const Level = Type.Union(
  LOG_LEVELS.map((l) => Type.Literal(l)),
  { description: `one of ${LOG_LEVELS.join(", ")}` },
);
const Iso = Type.String({ format: "date-time" });

const desiredProperties = {
  logLevel: Type.Optional(Level),
  logForward: Type.Optional(
    Type.Object(
      {
        level: Type.Optional(Level),
        maxLinesPerSecond: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
      },
      { additionalProperties: false },
    ),
  ),
  // Device links (issue #6): when present, they replace the agent config file's `links` whole.
  links: Type.Optional(Links),
};

/** What an operator sets with `PUT /api/v1/devices/:uuid/config`: the whole desired config. */
export const DesiredConfig = Type.Object(desiredProperties, { additionalProperties: false });
export type DesiredConfig = Static<typeof DesiredConfig>;

/** The retained message on `fieldgate/v1/{uuid}/config/desired`. */
export const DesiredConfigMessage = Type.Object(
  { v: Type.Literal(SCHEMA_VERSION), version: Type.Integer({ minimum: 1 }), ...desiredProperties },
  { additionalProperties: false },
);
export type DesiredConfigMessage = Static<typeof DesiredConfigMessage>;

/** Where a device stands with its desired config. */
export const ConfigSyncState = Type.Union(
  ["none", "pending", "applied", "rejected"].map((s) => Type.Literal(s)),
  {
    description:
      "none: nothing desired yet; pending: not acknowledged; applied: the device reported this version; rejected: the device refused it",
  },
);

/** `GET /api/v1/devices/:uuid/config`. */
export const DeviceConfigView = Type.Object({
  uuid: Uuid,
  version: Type.Integer({ minimum: 0, description: "desired version; 0 when none was ever set" }),
  desired: DesiredConfig,
  updatedAt: Type.Union([Iso, Type.Null()]),
  reported: Type.Union([
    Type.Object(
      {
        version: Type.Integer(),
        ts: Iso,
        logLevel: Type.Optional(Type.String()),
        forwardLevel: Type.Optional(Type.String()),
        rejectedVersion: Type.Optional(Type.Integer()),
        error: Type.Optional(Type.String()),
      },
      { additionalProperties: true },
    ),
    Type.Null(),
  ]),
  state: ConfigSyncState,
  inSync: Type.Boolean(),
});
export type DeviceConfigView = Static<typeof DeviceConfigView>;

/** `GET /api/v1/devices/:uuid/logs` filters. */
export const DeviceLogQuery = Type.Object(
  {
    level: Type.Optional(Level),
    since: Type.Optional(Iso),
    until: Type.Optional(Iso),
    after: Type.Optional(Type.Integer({ minimum: 0, description: "cursor: only entries with a larger id" })),
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 10_000, default: 100, description: "at most this many lines, 1 to 10000" }),
    ),
  },
  { additionalProperties: false },
);
export type DeviceLogQuery = Static<typeof DeviceLogQuery>;

export const DeviceLogEntry = Type.Object({
  id: Type.Integer(),
  ts: Iso,
  level: Level,
  msg: Type.String(),
});
export type DeviceLogEntry = Static<typeof DeviceLogEntry>;

export const DeviceLogPage = Type.Object({
  uuid: Uuid,
  items: Type.Array(DeviceLogEntry),
  nextAfter: Type.Integer({ description: "pass as `after` to get only newer entries" }),
  skipped: SkippedRows,
});
export type DeviceLogPage = Static<typeof DeviceLogPage>;

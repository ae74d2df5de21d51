/**
 * TypeBox schemas for every MQTT payload and API body. One schema serves the API (Fastify),
 * the broker's ingest and the agent. Every MQTT message carries `v`, the schema version.
 */
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { LINK_ID_PATTERN } from "./link-common.js";
import { UUID_PATTERN } from "./topics.js";

export const SCHEMA_VERSION = 1 as const;
const V = Type.Literal(SCHEMA_VERSION, { description: "schema version" });

export const Uuid = Type.String({ pattern: UUID_PATTERN, description: "device uuid (RFC 4122 text form)" });
/**
 * Bounds of every number a device sends (issue #12): what SQLite stores and JavaScript reads back
 * exactly. Timestamps stop at the end of year 9999, so every reader can turn them into an ISO string;
 * counters and sequence numbers stop at 2^53 − 1, beyond which a JSON number is already rounded.
 */
export const MAX_TIMESTAMP_MS = 253_402_300_799_999;
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;
const Timestamp = Type.Integer({
  minimum: 0,
  maximum: MAX_TIMESTAMP_MS,
  description: "milliseconds since the Unix epoch, up to the end of year 9999",
});
/** A batch's sequence number within its stream. */
const Seq = Type.Integer({ minimum: 1, maximum: MAX_COUNTER, description: "sequence number, 1 to 2^53 − 1" });
/** A finite JSON number (JSON cannot carry NaN or ±Infinity; the validator refuses an overflowed `1e999`). */
const FiniteNumber = Type.Number({ minimum: -Number.MAX_VALUE, maximum: Number.MAX_VALUE });
/** A non-negative count or duration. */
const Count = Type.Number({ minimum: 0, maximum: MAX_COUNTER });
const Iso = Type.String({ format: "date-time" });
const Name = Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9_.:/-]+$" });

// ---- device → cloud -------------------------------------------------------------------------

export const Reading = Type.Object(
  {
    name: Name,
    ts: Timestamp,
    value: Type.Union([FiniteNumber, Type.String({ maxLength: 1024 }), Type.Boolean()]),
    unit: Type.Optional(Type.String({ maxLength: 32 })),
    /** The device link that produced the reading (its id); absent for the agent's own readings. */
    source: Type.Optional(Type.String({ pattern: LINK_ID_PATTERN, description: "link id (issue #6)" })),
  },
  { additionalProperties: false },
);
export type Reading = Static<typeof Reading>;

/**
 * A batch of readings. `(stream, seq)` makes ingest idempotent: `stream` is fixed for the life of
 * the agent's outbox database, and `seq` increases by one per batch within it.
 */
export const TelemetryBatch = Type.Object(
  {
    v: V,
    stream: Type.String({ pattern: "^[0-9a-f]{16,32}$" }),
    seq: Seq,
    readings: Type.Array(Reading, { minItems: 1, maxItems: 10_000 }),
  },
  { additionalProperties: false },
);
export type TelemetryBatch = Static<typeof TelemetryBatch>;

export const HealthStatus = Type.Union([Type.Literal("ok"), Type.Literal("warning"), Type.Literal("critical")]);
export type HealthStatus = Static<typeof HealthStatus>;

export const HealthReport = Type.Object(
  {
    v: V,
    ts: Timestamp,
    status: HealthStatus,
    checks: Type.Array(
      Type.Object(
        {
          name: Name,
          status: Type.Union([HealthStatus, Type.Literal("unknown")]),
          message: Type.Optional(Type.String({ maxLength: 1024 })),
        },
        { additionalProperties: false },
      ),
      { maxItems: 256 },
    ),
  },
  { additionalProperties: false },
);
export type HealthReport = Static<typeof HealthReport>;

export const Presence = Type.Object(
  { v: V, state: Type.Union([Type.Literal("online"), Type.Literal("offline")]), ts: Type.Optional(Timestamp) },
  { additionalProperties: false },
);
export type Presence = Static<typeof Presence>;

const LogLevel = Type.Union(["trace", "debug", "info", "warn", "error", "fatal"].map((l) => Type.Literal(l)));
/**
 * A batch of log lines. `stream` and `seq` (optional, sent together by agents with a durable log
 * buffer) name the batch like a telemetry batch's, so the cloud stores a resent batch once; a
 * batch without them is stored as it comes.
 */
export const LogBatch = Type.Object(
  {
    v: V,
    stream: Type.Optional(Type.String({ pattern: "^[0-9a-f]{16,32}$" })),
    seq: Type.Optional(Seq),
    entries: Type.Array(
      Type.Object(
        { ts: Timestamp, level: LogLevel, msg: Type.String({ maxLength: 8192 }) },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 1000 },
    ),
  },
  { additionalProperties: false },
);
export type LogBatch = Static<typeof LogBatch>;

export const DeviceState = Type.Object(
  {
    v: V,
    ts: Timestamp,
    agentVersion: Type.String({ maxLength: 64 }),
    firmwareVersion: Type.Optional(Type.String({ maxLength: 64 })),
    uptimeS: Type.Optional(Count),
  },
  { additionalProperties: true },
);
export type DeviceState = Static<typeof DeviceState>;

const Severity = Type.Union([Type.Literal("info"), Type.Literal("warning"), Type.Literal("error")]);
export const DeviceEvents = Type.Object(
  {
    v: V,
    events: Type.Array(
      Type.Object(
        { ts: Timestamp, code: Name, severity: Severity, message: Type.String({ maxLength: 2048 }) },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 1000 },
    ),
  },
  { additionalProperties: false },
);
export type DeviceEvents = Static<typeof DeviceEvents>;

/** At most this many checks ride on one job status; the rest are counted in its message. */
export const MAX_JOB_STATUS_CHECKS = 16;
/** A check's message on a job status is cut to this (a health report allows 1024). */
export const MAX_JOB_STATUS_CHECK_MESSAGE = 256;

/** A health check that holds back an update's confirmation, as the device reports it with CONFIRMING. */
export const JobStatusCheck = Type.Object(
  {
    name: Name,
    status: Type.Union([HealthStatus, Type.Literal("unknown")]),
    message: Type.Optional(Type.String({ maxLength: MAX_JOB_STATUS_CHECK_MESSAGE })),
  },
  { additionalProperties: false },
);
export type JobStatusCheck = Static<typeof JobStatusCheck>;

/**
 * A job's status on `jobs/{id}/status`. `checks` (added with the confirmation gate) lists, while
 * CONFIRMING, the gate checks that hold the confirmation back; a status without it is what agents
 * before it send, and it stays valid.
 */
export const JobStatus = Type.Object(
  {
    v: V,
    ts: Timestamp,
    status: Type.Union(
      ["QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "ROLLED_BACK", "REJECTED"].map((s) => Type.Literal(s)),
    ),
    step: Type.Optional(Type.String({ maxLength: 64 })),
    progress: Type.Optional(Type.Object({ done: Count, total: Count })),
    reason: Type.Optional(Type.String({ maxLength: 64 })),
    message: Type.Optional(Type.String({ maxLength: 2048 })),
    checks: Type.Optional(Type.Array(JobStatusCheck, { maxItems: MAX_JOB_STATUS_CHECKS })),
  },
  { additionalProperties: false },
);
export type JobStatus = Static<typeof JobStatus>;

export const ConfigReported = Type.Object(
  {
    v: V,
    ts: Timestamp,
    version: Type.Integer({ minimum: 0, maximum: MAX_COUNTER }),
    error: Type.Optional(Type.String({ maxLength: 2048 })),
  },
  { additionalProperties: true },
);
export type ConfigReported = Static<typeof ConfigReported>;

/**
 * Clock sync over MQTT: the device sends its clock on `time`, the cloud answers on `commands/time`
 * with its own; the device takes skew = serverTs + rtt/2 − arrival, good to a few milliseconds.
 */
export const TimeRequest = Type.Object({ v: V, t0: Timestamp }, { additionalProperties: false });
export type TimeRequest = Static<typeof TimeRequest>;
export const TimeResponse = Type.Object({ v: V, t0: Timestamp, serverTs: Timestamp }, { additionalProperties: false });
export type TimeResponse = Static<typeof TimeResponse>;

/** Schema per device-to-cloud topic kind; the broker validates each payload against its entry. */
export const DEVICE_PAYLOAD_SCHEMAS = {
  telemetry: TelemetryBatch,
  health: HealthReport,
  logs: LogBatch,
  state: DeviceState,
  events: DeviceEvents,
  "config/reported": ConfigReported,
  presence: Presence,
  time: TimeRequest,
  "jobs/status": JobStatus,
} as const satisfies Record<string, TSchema>;

/** Why the cloud refused a telemetry batch: `code` from errors.ts, `field` the failing one. */
export const TelemetryRefused = Type.Object(
  {
    v: V,
    stream: Type.String({ pattern: "^[0-9a-f]{16,32}$" }),
    seq: Seq,
    code: Type.String({ maxLength: 64 }),
    field: Type.Optional(Type.String({ maxLength: 256 })),
    message: Type.String({ maxLength: 2048 }),
  },
  { additionalProperties: false },
);
export type TelemetryRefused = Static<typeof TelemetryRefused>;

// ---- enrollment -----------------------------------------------------------------------------

export const EnrollMethod = Type.Union([Type.Literal("token"), Type.Literal("factory-key"), Type.Literal("uuid-only")]);
export type EnrollMethod = Static<typeof EnrollMethod>;

export const FactoryProof = Type.Object(
  {
    timestamp: Timestamp,
    nonce: Type.String({ pattern: "^[0-9a-f]{32,64}$" }),
    signature: Type.String({ minLength: 16, maxLength: 512, description: "base64 signature by the factory key" }),
  },
  { additionalProperties: false },
);
export type FactoryProof = Static<typeof FactoryProof>;

export const EnrollRequest = Type.Object(
  {
    v: V,
    uuid: Uuid,
    method: EnrollMethod,
    csr: Type.String({ minLength: 64, maxLength: 8192, description: "PKCS#10 CSR, PEM, P-256 key" }),
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    factory: Type.Optional(FactoryProof),
  },
  { additionalProperties: false },
);
export type EnrollRequest = Static<typeof EnrollRequest>;

export const EnrollResponse = Type.Object({
  v: V,
  uuid: Uuid,
  certificate: Type.String({ description: "the device certificate, PEM" }),
  caCertificate: Type.String({ description: "the CA certificate, PEM: trust anchor for the broker and API" }),
  serial: Type.String(),
  notAfter: Iso,
  renewAfter: Iso,
  mqttUrl: Type.String(),
  apiUrl: Type.String(),
  // Optional so that an agent still accepts answers from clouds without a firmware signing key.
  firmwarePublicKey: Type.Optional(Type.String({ description: "the firmware signing public key, PEM (Ed25519)" })),
});
export type EnrollResponse = Static<typeof EnrollResponse>;

/** What a device's factory key signs for `doctor`'s check, in place of a CSR hash. */
export const ENROLL_CHECK_DIGEST = "fieldgate-doctor-check";

/** `doctor` asks whether the device is registered and its window open, proving itself as enrollment would. */
export const EnrollCheckRequest = Type.Object(
  {
    v: V,
    uuid: Uuid,
    method: Type.Union([Type.Literal("token"), Type.Literal("factory-key")]),
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    factory: Type.Optional(FactoryProof),
  },
  { additionalProperties: false },
);
export type EnrollCheckRequest = Static<typeof EnrollCheckRequest>;

/** Unverified callers learn nothing: `{verified: false}` whatever the reason. */
export const EnrollCheckResponse = Type.Object({
  verified: Type.Boolean(),
  windowOpen: Type.Optional(Type.Boolean()),
  windowExpiresAt: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  enrolled: Type.Optional(Type.Boolean({ description: "the device holds a current certificate" })),
});
export type EnrollCheckResponse = Static<typeof EnrollCheckResponse>;

/** Renewal over mTLS: the device proves itself with its current certificate and sends a CSR for a new key. */
export const RenewRequest = Type.Object(
  { v: V, csr: Type.String({ minLength: 64, maxLength: 8192, description: "PKCS#10 CSR, PEM, for a new P-256 key" }) },
  { additionalProperties: false },
);
export type RenewRequest = Static<typeof RenewRequest>;

/**
 * The text a factory key signs. Binding the CSR hash stops a captured proof from enrolling
 * another key; the nonce and timestamp stop replays.
 */
export function factoryProofMessage(uuid: string, csrSha256Hex: string, timestamp: number, nonce: string): string {
  return `fieldgate-enroll-v1\n${uuid.toLowerCase()}\n${csrSha256Hex}\n${timestamp}\n${nonce}`;
}

// ---- operator API ---------------------------------------------------------------------------

/** The most tags a device carries. */
export const MAX_DEVICE_TAGS = 32;
const Tag = Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_.:-]+$" });
const Tags = Type.Array(Tag, { maxItems: MAX_DEVICE_TAGS, uniqueItems: true });
/** A group: its numeric id, or its name path below the root ("plant-a/line-1"). */
export const GroupRef = Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1, maxLength: 512 })], {
  description: "group id, or name path like plant-a/line-1",
});
/** A device type: its numeric id or its name. */
export const TypeRef = Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1, maxLength: 128 })], {
  description: "device type id or name",
});
const FactoryPublicKey = Type.String({
  minLength: 64,
  maxLength: 4096,
  description: "SPKI public key, PEM (P-256 or Ed25519)",
});

export const CreateDeviceBody = Type.Object(
  {
    uuid: Uuid,
    name: Type.Optional(Type.String({ maxLength: 128 })),
    location: Type.Optional(Type.String({ maxLength: 256 })),
    comment: Type.Optional(Type.String({ maxLength: 1024 })),
    tags: Type.Optional(Tags),
    factoryPublicKey: Type.Optional(FactoryPublicKey),
    group: Type.Optional(GroupRef),
    type: Type.Optional(TypeRef),
  },
  { additionalProperties: false },
);
export type CreateDeviceBody = Static<typeof CreateDeviceBody>;

export const PatchDeviceBody = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 128 })),
    location: Type.Optional(Type.String({ maxLength: 256 })),
    comment: Type.Optional(Type.String({ maxLength: 1024 })),
    tags: Type.Optional(Tags),
    addTags: Type.Optional(
      Type.Array(Tag, { maxItems: MAX_DEVICE_TAGS, uniqueItems: true, description: "tags to add to the current ones" }),
    ),
    removeTags: Type.Optional(
      Type.Array(Tag, {
        maxItems: MAX_DEVICE_TAGS,
        uniqueItems: true,
        description: "tags to take off; absent ones are fine",
      }),
    ),
    factoryPublicKey: Type.Optional(Type.Union([FactoryPublicKey, Type.Null()])),
    group: Type.Optional(GroupRef),
    type: Type.Optional(Type.Union([TypeRef, Type.Null()])),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type PatchDeviceBody = Static<typeof PatchDeviceBody>;

export const WindowState = Type.Object({
  open: Type.Boolean(),
  expiresAt: Type.Union([Iso, Type.Null()]),
  failedAttempts: Type.Integer(),
});

export const Device = Type.Object({
  uuid: Uuid,
  organization: Type.String(),
  group: Type.Object({ id: Type.Integer(), fullName: Type.String() }),
  type: Type.Union([Type.Object({ id: Type.Integer(), name: Type.String() }), Type.Null()]),
  firmwareVersion: Type.Union([Type.String(), Type.Null()]),
  health: Type.Union([Type.String(), Type.Null()]),
  retiredAt: Type.Union([Iso, Type.Null()], { description: "set when the device was replaced" }),
  replacedBy: Type.Union([Type.String(), Type.Null()]),
  name: Type.String(),
  location: Type.String(),
  comment: Type.String(),
  tags: Type.Array(Type.String()),
  hasFactoryKey: Type.Boolean(),
  createdAt: Iso,
  online: Type.Boolean(),
  offlineReason: Type.Union([Type.String(), Type.Null()], {
    description: "clean-disconnect, keepalive-timeout, last-will, revoked, packet-too-large or cloud-stopped",
  }),
  lastSeen: Type.Union([Iso, Type.Null()]),
  certificate: Type.Union([Type.Object({ serial: Type.String(), notAfter: Iso, issuedAt: Iso }), Type.Null()]),
  window: WindowState,
  telemetryCount: Type.Integer(),
});
export type Device = Static<typeof Device>;

export const DeviceWithToken = Type.Object({
  device: Device,
  enrollmentToken: Type.String({ description: "shown once; stored only as a hash" }),
  windowExpiresAt: Iso,
  revokedCertificates: Type.Optional(
    Type.Integer({ description: "reset-token: how many valid certificates it revoked (0: never enrolled)" }),
  ),
});
export type DeviceWithToken = Static<typeof DeviceWithToken>;

export const DeviceList = Type.Object({
  items: Type.Array(Device),
  total: Type.Integer(),
  limit: Type.Integer(),
  offset: Type.Integer(),
});
export type DeviceList = Static<typeof DeviceList>;

/** Columns a device list can be sorted by; `-column` sorts descending. */
export const DEVICE_SORT_COLUMNS = [
  "uuid",
  "name",
  "location",
  "group",
  "type",
  "status",
  "online",
  "lastSeen",
  "firmwareVersion",
  "createdAt",
] as const;

/** Device list filters; all given filters must match. Text filters are case-insensitive substrings. */
export const ListDevicesQuery = Type.Object(
  {
    uuid: Type.Optional(
      Type.String({ pattern: "^[0-9A-Fa-f-]{1,36}$", description: "uuid or its beginning (hex digits and -)" }),
    ),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: "part of the name, any case" })),
    location: Type.Optional(
      Type.String({ minLength: 1, maxLength: 256, description: "part of the location, any case" }),
    ),
    tag: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_.:-]+$" }), {
        maxItems: 16,
        description: "repeatable; the device must carry every tag given",
      }),
    ),
    type: Type.Optional(TypeRef),
    group: Type.Optional(GroupRef),
    includeSubgroups: Type.Optional(Type.Boolean({ default: false, description: "with group: its whole subtree" })),
    status: Type.Optional(HealthStatus),
    online: Type.Optional(Type.Boolean()),
    lastSeenFrom: Type.Optional(Type.String({ format: "date-time", description: "last seen at or after" })),
    lastSeenTo: Type.Optional(Type.String({ format: "date-time", description: "last seen before" })),
    firmwareVersion: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    retired: Type.Optional(
      Type.Boolean({
        default: false,
        description: "true: only devices retired by a replace; default: only active ones",
      }),
    ),
    q: Type.Optional(Type.String({ maxLength: 128 })),
    sort: Type.Optional(
      Type.String({
        pattern: `^-?(${DEVICE_SORT_COLUMNS.join("|")})$`,
        description: `sort column, - prefix for descending: ${DEVICE_SORT_COLUMNS.join(", ")}`,
      }),
    ),
    limit: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000,
        default: 100,
        description:
          "page size, 1 to 1000; fetch further pages with offset, or every match at once with GET /api/v1/devices/export",
      }),
    ),
    offset: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: "rows to skip: the page's start" })),
  },
  { additionalProperties: false },
);
export type ListDevicesQuery = Static<typeof ListDevicesQuery>;

export const TelemetryQuery = Type.Object(
  {
    from: Type.Optional(Iso),
    to: Type.Optional(Iso),
    name: Type.Optional(Name),
    source: Type.Optional(
      Type.String({ pattern: LINK_ID_PATTERN, description: "only readings of this device link (its id)" }),
    ),
    limit: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 10_000,
        default: 1000,
        description: "at most this many readings, 1 to 10000",
      }),
    ),
  },
  { additionalProperties: false },
);
export type TelemetryQuery = Static<typeof TelemetryQuery>;

export const StoredReading = Type.Object({
  ts: Iso,
  name: Type.String(),
  value: Type.Union([Type.Number(), Type.String(), Type.Boolean()]),
  unit: Type.Union([Type.String(), Type.Null()]),
  source: Type.Union([Type.String(), Type.Null()], { description: "the device link's id; null for the agent's own" }),
  stream: Type.String(),
  seq: Type.Integer(),
});
/** Stored rows a reader could not show (a time beyond Date's range, a non-finite value): left out and counted. */
export const SkippedRows = Type.Optional(
  Type.Integer({ minimum: 1, description: "stored rows left out because no reader can show them" }),
);
export const TelemetryPage = Type.Object({
  uuid: Uuid,
  items: Type.Array(StoredReading),
  count: Type.Integer(),
  skipped: SkippedRows,
});
export type TelemetryPage = Static<typeof TelemetryPage>;

export const DeviceEventRecord = Type.Object({
  ts: Iso,
  code: Type.String(),
  severity: Type.String(),
  message: Type.String(),
  field: Type.Union([Type.String(), Type.Null()]),
  topic: Type.Union([Type.String(), Type.Null()]),
});
export const DeviceEventPage = Type.Object({ uuid: Uuid, items: Type.Array(DeviceEventRecord), skipped: SkippedRows });
export type DeviceEventPage = Static<typeof DeviceEventPage>;

/**
 * `GET /api/v1/devices/{uuid}/health`: the checks of the latest health report the device sent
 * (`HealthReport`), as stored by ingest. `reportedAt` is the device's own time of the report,
 * `receivedAt` when the cloud stored it; all null/empty before the first report.
 */
export const DeviceHealth = Type.Object({
  uuid: Uuid,
  status: Type.Union([HealthStatus, Type.Null()]),
  reportedAt: Type.Union([Iso, Type.Null()]),
  receivedAt: Type.Union([Iso, Type.Null()]),
  checks: Type.Array(
    Type.Object({
      name: Type.String(),
      status: Type.Union([HealthStatus, Type.Literal("unknown")]),
      message: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
});
export type DeviceHealth = Static<typeof DeviceHealth>;

/**
 * `GET /api/v1/devices/{uuid}/certificates`: every certificate issued to the device, newest
 * first. Exactly one (the newest unrevoked) is `current`; a renewal supersedes the one before.
 */
export const DeviceCertificate = Type.Object({
  serial: Type.String(),
  issuedAt: Iso,
  notAfter: Iso,
  current: Type.Boolean(),
  revokedAt: Type.Union([Iso, Type.Null()]),
  revokeReason: Type.Union([Type.String(), Type.Null()], {
    description: "reset-token, renewed (by the device), superseded (enrolled again) or replaced (bulk replace)",
  }),
});
export type DeviceCertificate = Static<typeof DeviceCertificate>;
export const DeviceCertificateList = Type.Object({ uuid: Uuid, items: Type.Array(DeviceCertificate) });
export type DeviceCertificateList = Static<typeof DeviceCertificateList>;

export const ErrorResponse = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String(), field: Type.Optional(Type.String()) }),
});
export type ErrorResponse = Static<typeof ErrorResponse>;

import {
  DEVICE_PAYLOAD_SCHEMAS,
  type DeviceEvents,
  type DeviceState,
  type DeviceTopicKind,
  FieldgateError,
  type HealthReport,
  type JobStatus,
  type LogBatch,
  parseDeviceTopic,
  Reading,
  type SchemaValidator,
  type TelemetryBatch,
  type TelemetryRefused,
} from "@fieldgate/shared";
import { type Kysely, sql } from "kysely";
import type { Logger } from "pino";
import type { DeviceEventLog } from "../events/device-events.js";
import type { DeviceLogs } from "../logs/device-logs.js";
import type { CloudDatabase, Executor } from "../storage/cloud-database.js";
import type { TelemetryWriter } from "../telemetry/telemetry-writer.js";
import { StorageFailures } from "./storage-failures.js";
import { TelemetryEnvelope } from "./telemetry-envelope.js";

/** The largest payload the cloud accepts on any device topic. */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;
/** How much of a rejected payload is kept for the operator to inspect. */
const DEAD_LETTER_BYTES = 64 * 1024;

/** Why ingest refuses a message for good: the code of its event, its dead-letter copy and the device's notice. */
type RefusalCode = "PAYLOAD_MALFORMED" | "VALIDATION_FAILED" | "STORE_REFUSED";

/** A refused message: the code, the message and where it applies. */
interface Refusal {
  code: RefusalCode;
  message: string;
  field?: string;
}

/** A schema failure from the validator, as a refusal. */
const schemaRefusal = (err: FieldgateError): Refusal => ({
  code: "VALIDATION_FAILED",
  message: err.message,
  ...(err.field === undefined ? {} : { field: err.field }),
});

/** The device a message came from, as authenticated by its certificate. */
export interface IngestSource {
  deviceId: number;
  uuid: string;
}

/**
 * The copies of what a device reports that are kept on its registry row, so lists can filter and
 * sort by them with an index (DeviceRegistry implements it; it also tells the live feed).
 */
export interface DeviceRowCopies {
  /** Moves the device's last sign of life forward to `at` (never back). */
  markSeen(deviceId: number, at: number): void | Promise<void>;
  /** Stores the reported health status; returns the one stored before (null before the first report). */
  recordHealth(deviceId: number, status: string): string | null | Promise<string | null>;
  /** Stores the reported firmware version; true when it changed. */
  recordFirmwareVersion(deviceId: number, version: string): boolean | Promise<boolean>;
}

/** The tables ingest owns: the latest reported documents, and the dead letters of refused messages. */
type IngestTables = {
  device_state: {
    device_id: number;
    health: string | null;
    health_json: string | null;
    state_json: string | null;
    config_reported_json: string | null;
    updated_at: number;
  };
  rejected_messages: { device_id: number; ts: number; topic: string; code: string; payload: Buffer };
};

/**
 * Validates and stores what devices publish. A bad payload becomes a device event with its
 * error code and a dead-letter copy; it never throws past here and never touches other data.
 */
export class DeviceIngest {
  private readonly db: Kysely<IngestTables>;
  private readonly failures: StorageFailures;

  constructor(
    database: CloudDatabase,
    /** The device rows' copies of health, firmware version and last sign of life. */
    private readonly devices: DeviceRowCopies,
    private readonly validator: SchemaValidator,
    private readonly telemetry: TelemetryWriter,
    /** The device event history: refusals, health changes and what devices report. */
    private readonly events: DeviceEventLog,
    /** Where forwarded log lines go. */
    private readonly logs: DeviceLogs,
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
    /** Stores a job status; false when the job is not the device's. */
    private readonly jobs?: { report(deviceId: number, jobId: string, status: JobStatus): boolean | Promise<boolean> },
    /** How often one message may fail transiently at storage before it is refused. */
    maxTransientFailures = 5,
  ) {
    this.db = database.kysely.withTables<IngestTables>();
    this.failures = new StorageFailures(maxTransientFailures);
  }

  /**
   * Handles one message on an already-authorized topic. Resolves once what must be durable is
   * stored, or once the message is refused for good (an event, a dead-letter copy, and for a
   * telemetry batch the notice the broker sends the device before the PUBACK). Rejects only on a
   * transient storage failure, a bounded number of times per message, so the broker withholds the
   * PUBACK and the device resends.
   */
  async handle(source: IngestSource, topic: string, payload: Buffer): Promise<TelemetryRefused | undefined> {
    const parsed = parseDeviceTopic(topic)?.topic;
    const kind = parsed?.kind;
    if (!kind || !(kindKey(kind) in DEVICE_PAYLOAD_SCHEMAS)) return undefined;
    // Any message is a sign of life (the keep-alive watches last_seen); telemetry sets it in its own commit.
    if (kind !== "telemetry") await this.devices.markSeen(source.deviceId, this.clock());
    const decoded = await this.decode(source, topic, kind, payload);
    if (!decoded.ok) return decoded.refused;
    try {
      await this.store(source, topic, kind, decoded.value);
      this.failures.succeeded(source.deviceId, topic, payload);
      return undefined;
    } catch (err) {
      if (this.failures.mayRetry(source.deviceId, topic, payload, err)) throw err;
      // Refused for good: a value storage will never take, or a transient failure that kept failing.
      const code = "STORE_REFUSED";
      const message = `${kind} message refused at storage: ${(err as Error).message}`.slice(0, 2048);
      try {
        await this.reject(source, topic, payload, { code, message });
      } catch (recordErr) {
        this.logger.error({ uuid: source.uuid, err: (recordErr as Error).message }, "recording a refusal failed");
      }
      return kind === "telemetry" ? refusalOf(decoded.value as TelemetryBatch, code, undefined, message) : undefined;
    }
  }

  /** Forgets the device's dead letters (its history is dropped), in the caller's transaction when given. */
  async forgetRejected(deviceId: number, executor?: Executor): Promise<void> {
    await this.on(executor).deleteFrom("rejected_messages").where("device_id", "=", deviceId).execute();
  }

  /** The caller's transaction when given, else this store's own handle. */
  private on(executor: Executor | undefined): Kysely<IngestTables> {
    return executor ?? this.db;
  }

  private async store(source: IngestSource, topic: string, kind: DeviceTopicKind, value: unknown): Promise<void> {
    const parsed = parseDeviceTopic(topic)?.topic;
    switch (kind) {
      case "telemetry":
        await this.telemetry.write(source.deviceId, value as TelemetryBatch);
        return;
      case "health": {
        const report = value as HealthReport;
        await this.state(source, { health: report.status, healthJson: JSON.stringify(report) });
        const previous = await this.devices.recordHealth(source.deviceId, report.status);
        if (previous !== report.status) {
          // Every change of colour is in the history, with the checks that are not ok.
          const failing = report.checks
            .filter((c) => c.status !== "ok")
            .map((c) => `${c.name}: ${c.status}${c.message ? ` (${c.message})` : ""}`);
          const severity = report.status === "critical" ? "error" : report.status === "warning" ? "warning" : "info";
          await this.events.record(
            source.deviceId,
            "HEALTH_CHANGED",
            severity,
            `health ${previous ?? "unknown"} → ${report.status}${failing.length ? `: ${failing.join("; ")}` : ""}`.slice(
              0,
              2048,
            ),
          );
        }
        return;
      }
      case "state": {
        const state = value as DeviceState;
        await this.state(source, { stateJson: JSON.stringify(state) });
        if (state.firmwareVersion !== undefined)
          await this.devices.recordFirmwareVersion(source.deviceId, state.firmwareVersion);
        return;
      }
      case "config/reported":
        await this.state(source, { configJson: JSON.stringify(value) });
        return;
      case "logs":
        await this.logs.store(source.deviceId, value as LogBatch, this.clock());
        return;
      case "events":
        // The device's own codes, kept apart from the cloud's EVENT_CODES.
        await this.events.recordReported(source.deviceId, topic, (value as DeviceEvents).events);
        return;
      case "jobs/status": {
        const jobId = parsed?.kind === "jobs/status" ? parsed.jobId : "";
        if (this.jobs && !(await this.jobs.report(source.deviceId, jobId, value as JobStatus))) {
          // A device may only report on its own jobs; anything else is noted, never stored.
          await this.events.record(source.deviceId, "JOB_NOT_FOUND", "warning", `status for unknown job ${jobId}`, {
            topic,
          });
        }
        return;
      }
      default:
        // presence is validated here; its handling belongs to the presence tracker.
        return;
    }
  }

  private async decode(source: IngestSource, topic: string, kind: DeviceTopicKind, payload: Buffer): Promise<Decoded> {
    const refuse = async (err: Refusal, json?: unknown): Promise<Decoded> => {
      await this.reject(source, topic, payload, err);
      return {
        ok: false,
        refused: kind === "telemetry" ? refusalOf(json, err.code, err.field, err.message) : undefined,
      };
    };
    if (payload.length > MAX_PAYLOAD_BYTES) {
      return refuse({
        code: "VALIDATION_FAILED",
        message: `payload exceeds ${MAX_PAYLOAD_BYTES} bytes`,
        field: "payload",
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(payload.toString("utf8"));
    } catch {
      return refuse({ code: "PAYLOAD_MALFORMED", message: `payload on ${kind} is not valid JSON` });
    }
    try {
      return { ok: true, value: this.validator.parse(DEVICE_PAYLOAD_SCHEMAS[kindKey(kind)], json) };
    } catch (err) {
      if (!(err instanceof FieldgateError)) throw err;
      if (kind === "telemetry" && err.field?.startsWith("readings[")) {
        const partial = await this.keepValidReadings(source, topic, payload, json);
        if (partial) return { ok: true, value: partial };
      }
      return refuse(schemaRefusal(err), json);
    }
  }

  /**
   * A batch whose envelope is sound but some readings are not: the valid readings are stored and
   * each invalid one is refused with an event naming its index and field (the payload is kept as a
   * dead letter), so one bad value never costs the others. `undefined` when no reading is valid.
   */
  private async keepValidReadings(
    source: IngestSource,
    topic: string,
    payload: Buffer,
    json: unknown,
  ): Promise<TelemetryBatch | undefined> {
    let envelope: TelemetryEnvelope;
    try {
      envelope = this.validator.parse(TelemetryEnvelope, json);
    } catch {
      return undefined;
    }
    const kept: Reading[] = [];
    const refused: Refusal[] = [];
    envelope.readings.forEach((reading, i) => {
      try {
        kept.push(this.validator.parse(Reading, reading, `readings[${i}]`));
      } catch (err) {
        if (!(err instanceof FieldgateError)) throw err;
        refused.push(schemaRefusal(err));
      }
    });
    if (kept.length === 0) return undefined;
    await this.db.transaction().execute(async (trx) => {
      for (const err of refused) {
        const message = `${err.message}; reading refused, the other ${kept.length} of the batch stored`;
        await this.events.record(source.deviceId, err.code, "error", message, { field: err.field, topic }, trx);
      }
      await this.deadLetter(trx, source, topic, "VALIDATION_FAILED", payload);
    });
    this.logger.warn({ uuid: source.uuid, topic, refused: refused.length, kept: kept.length }, "refused readings");
    return { v: envelope.v, stream: envelope.stream, seq: envelope.seq, readings: kept };
  }

  private async reject(source: IngestSource, topic: string, payload: Buffer, err: Refusal): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await this.events.record(source.deviceId, err.code, "error", err.message, { field: err.field, topic }, trx);
      await this.deadLetter(trx, source, topic, err.code, payload);
    });
    this.logger.warn({ uuid: source.uuid, topic, code: err.code, field: err.field }, "rejected device payload");
  }

  private async deadLetter(
    trx: Kysely<IngestTables>,
    source: IngestSource,
    topic: string,
    code: RefusalCode,
    payload: Buffer,
  ): Promise<void> {
    await trx
      .insertInto("rejected_messages")
      .values({
        device_id: source.deviceId,
        ts: this.clock(),
        topic,
        code,
        payload: payload.subarray(0, DEAD_LETTER_BYTES),
      })
      .execute();
  }

  /** Keeps the latest of each reported document; a report leaves the others as they were. */
  private async state(
    source: IngestSource,
    fields: { health?: string; healthJson?: string; stateJson?: string; configJson?: string },
  ): Promise<void> {
    const now = this.clock();
    const row = {
      device_id: source.deviceId,
      health: fields.health ?? null,
      health_json: fields.healthJson ?? null,
      state_json: fields.stateJson ?? null,
      config_reported_json: fields.configJson ?? null,
      updated_at: now,
    };
    await this.db
      .insertInto("device_state")
      .values(row)
      .onConflict((oc) =>
        oc.column("device_id").doUpdateSet({
          health: sql`coalesce(excluded.health, device_state.health)`,
          health_json: sql`coalesce(excluded.health_json, device_state.health_json)`,
          state_json: sql`coalesce(excluded.state_json, device_state.state_json)`,
          config_reported_json: sql`coalesce(excluded.config_reported_json, device_state.config_reported_json)`,
          updated_at: now,
        }),
      )
      .execute();
  }
}

type Decoded = { ok: true; value: unknown } | { ok: false; refused: TelemetryRefused | undefined };

/** The notice for a refused batch; `undefined` when the payload names no batch the device could set aside. */
function refusalOf(
  json: unknown,
  code: string,
  field: string | undefined,
  message: string,
): TelemetryRefused | undefined {
  const { stream, seq } = (json ?? {}) as { stream?: unknown; seq?: unknown };
  if (typeof stream !== "string" || !/^[0-9a-f]{16,32}$/.test(stream)) return undefined;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) return undefined;
  return { v: 1, stream, seq, code, ...(field === undefined ? {} : { field }), message: message.slice(0, 2048) };
}

function kindKey(kind: DeviceTopicKind): keyof typeof DEVICE_PAYLOAD_SCHEMAS {
  return (kind === "jobs/status" ? "jobs/status" : kind) as keyof typeof DEVICE_PAYLOAD_SCHEMAS;
}

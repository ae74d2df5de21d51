import {
  DesiredConfig,
  type DesiredConfigMessage,
  type DeviceConfigView,
  FieldgateError,
  type SchemaValidator,
} from "@fieldgate/shared";
import type Database from "better-sqlite3";
import { storedIso } from "../storage/stored-row.js";

/** The device a config belongs to. */
export interface ConfigDevice {
  id: number;
  uuid: string;
}

/** Hands a desired-config message to the broker (retained on the device's `config/desired`). */
export type DesiredConfigPublisher = (uuid: string, message: DesiredConfigMessage) => void;

interface ConfigRow {
  version: number;
  desired_json: string;
  updated_at: number;
}

/**
 * Desired configuration per device, and how far the device has acknowledged it.
 *
 * Each PUT replaces the whole desired config and increments its version; the device answers on
 * `config/reported` with the version it applied (stored by ingest in `device_state`). The table,
 * not the broker's retained store, is the truth: the broker re-publishes it when a device connects
 * and its retained store (memory only) lacks the current version.
 */
export class DeviceConfigs {
  private readonly get: Database.Statement<[number], ConfigRow>;
  private readonly upsert: Database.Statement<[number, string, number]>;
  private readonly reported: Database.Statement<[number], { config_reported_json: string | null }>;

  constructor(
    db: Database.Database,
    private readonly publish: DesiredConfigPublisher,
    private readonly validator: SchemaValidator,
    private readonly clock: () => number = Date.now,
  ) {
    this.get = db.prepare("SELECT version, desired_json, updated_at FROM device_config WHERE device_id = ?");
    this.upsert = db.prepare(
      `INSERT INTO device_config (device_id, version, desired_json, updated_at) VALUES (?, 1, ?, ?)
       ON CONFLICT(device_id) DO UPDATE SET version = version + 1, desired_json = excluded.desired_json,
         updated_at = excluded.updated_at`,
    );
    this.reported = db.prepare("SELECT config_reported_json FROM device_state WHERE device_id = ?");
  }

  /** The message to (re-)publish to a device, or `undefined` when nothing was ever set. */
  message(deviceId: number): DesiredConfigMessage | undefined {
    const row = this.get.get(deviceId);
    if (!row) return undefined;
    return { v: 1, version: row.version, ...(JSON.parse(row.desired_json) as DesiredConfig) };
  }

  /** Stores a new desired config (version + 1) and publishes it; the body was validated by the route. */
  set(device: ConfigDevice, desired: DesiredConfig): DeviceConfigView {
    this.upsert.run(device.id, JSON.stringify(desired), this.clock());
    const message = this.message(device.id);
    if (message) this.publish(device.uuid, message);
    return this.view(device);
  }

  /** Desired, reported, and whether the device is in sync. */
  view(device: ConfigDevice): DeviceConfigView {
    const row = this.get.get(device.id);
    const version = row?.version ?? 0;
    const desired = row ? this.storedDesired(row) : {};
    const raw = this.reported.get(device.id)?.config_reported_json;
    const reported = raw ? readReported(raw) : null;
    let state: DeviceConfigView["state"];
    if (version === 0) state = "none";
    else if (reported?.rejectedVersion === version) state = "rejected";
    else if (reported && reported.version === version && reported.error === undefined) state = "applied";
    else state = "pending";
    return {
      uuid: device.uuid,
      version,
      desired,
      updatedAt: row ? new Date(row.updated_at).toISOString() : null,
      reported,
      state,
      inSync: state === "applied" || state === "none",
    };
  }

  /** The stored desired config, checked: one written by another version of the cloud may not fit. */
  private storedDesired(row: ConfigRow): DesiredConfig {
    try {
      return this.validator.parse(DesiredConfig, JSON.parse(row.desired_json) as unknown);
    } catch (err) {
      const field = err instanceof FieldgateError && err.field ? `desired.${err.field}` : "desired";
      throw new FieldgateError(
        "DESIRED_CONFIG_STORED_INVALID",
        `the desired config stored as version ${row.version} no longer fits this cloud's schema (${(err as Error).message}); set a new one with fieldgate-cloud devices config set`,
        field,
      );
    }
  }
}

/**
 * The stored reported config as the API shows it; `null` when the row cannot be read (a time no
 * Date holds, written before the bounds of issue #12, or broken JSON), so one bad row never fails the answer.
 */
function readReported(raw: string): DeviceConfigView["reported"] {
  let parsed: { v: number; ts: number; version: number } & Record<string, unknown>;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return null;
  }
  const { v: _v, ts, ...rest } = parsed;
  const iso = storedIso(ts);
  return iso === undefined ? null : { ...rest, version: rest.version, ts: iso };
}

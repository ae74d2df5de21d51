import {
  DesiredConfig,
  type DesiredConfigMessage,
  type DeviceConfigView,
  FieldgateError,
  type SchemaValidator,
} from "@fieldgate/shared";
import { type Kysely, sql } from "kysely";
import type { CloudDatabase } from "../storage/cloud-database.js";
import { storedIso } from "../storage/stored-row.js";

/** The `device_config` table; only this module issues SQL on it. */
export type DeviceConfigTable = {
  device_id: number;
  version: number;
  desired_json: string;
  updated_at: number;
};

/** The column of `device_state` this module reads; ingest writes the table (see `reportedConfig`). */
type DeviceStateTable = {
  device_id: number;
  config_reported_json: string | null;
};

type ConfigTables = {
  device_config: DeviceConfigTable;
  device_state: DeviceStateTable;
};

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
  private readonly db: Kysely<ConfigTables>;

  constructor(
    database: CloudDatabase,
    private readonly publish: DesiredConfigPublisher,
    private readonly validator: SchemaValidator,
    private readonly clock: () => number = Date.now,
  ) {
    this.db = database.kysely.withTables<ConfigTables>();
  }

  /** The message to (re-)publish to a device, or `undefined` when nothing was ever set. */
  async message(deviceId: number): Promise<DesiredConfigMessage | undefined> {
    const row = await this.stored(deviceId);
    return row && messageOf(row);
  }

  /** Stores a new desired config (version + 1) and publishes it; the body was validated by the route. */
  async set(device: ConfigDevice, desired: DesiredConfig): Promise<DeviceConfigView> {
    const now = this.clock();
    // The row as this upsert left it: a concurrent PUT cannot make us publish its version as ours.
    const stored = await this.db
      .insertInto("device_config")
      .values({ device_id: device.id, version: 1, desired_json: JSON.stringify(desired), updated_at: now })
      .onConflict((oc) =>
        oc.column("device_id").doUpdateSet((eb) => ({
          version: sql<number>`device_config.version + 1`,
          desired_json: eb.ref("excluded.desired_json"),
          updated_at: eb.ref("excluded.updated_at"),
        })),
      )
      .returning(["version", "desired_json", "updated_at"])
      .executeTakeFirstOrThrow();
    this.publish(device.uuid, messageOf(stored));
    return this.view(device);
  }

  /** Desired, reported, and whether the device is in sync. */
  async view(device: ConfigDevice): Promise<DeviceConfigView> {
    const row = await this.stored(device.id);
    const version = row?.version ?? 0;
    const desired = row ? this.storedDesired(row) : {};
    const raw = await this.reportedConfig(device.id);
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

  private stored(deviceId: number): Promise<ConfigRow | undefined> {
    return this.db
      .selectFrom("device_config")
      .select(["version", "desired_json", "updated_at"])
      .where("device_id", "=", deviceId)
      .executeTakeFirst();
  }

  /**
   * What the device last reported applying, as ingest stored it. `device_state` is written by
   * ingest (health, state) and read here only; this read moves to ingest's store once it offers one.
   */
  private async reportedConfig(deviceId: number): Promise<string | null | undefined> {
    const row = await this.db
      .selectFrom("device_state")
      .select("config_reported_json")
      .where("device_id", "=", deviceId)
      .executeTakeFirst();
    return row?.config_reported_json;
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

function messageOf(row: ConfigRow): DesiredConfigMessage {
  return { v: 1, version: row.version, ...(JSON.parse(row.desired_json) as DesiredConfig) };
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

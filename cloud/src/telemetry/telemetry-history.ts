import type { Kysely } from "kysely";
import type { CloudDatabase, Executor } from "../storage/cloud-database.js";
import type { TelemetryTables } from "./telemetry-tables.js";

/**
 * A device's stored readings as one history, for the bulk series (replace keeping the history,
 * move dropping it). Sequence marks (telemetry_streams, telemetry_seq_gaps) stay with the device
 * they came from: they deduplicate that device's resends and must not block another's.
 */
export class TelemetryHistory {
  private readonly db: Kysely<TelemetryTables>;

  constructor(database: CloudDatabase) {
    this.db = database.kysely.withTables<TelemetryTables>();
  }

  /** Hands every reading of one device to another, in the caller's transaction when given. */
  async moveHistory(fromDeviceId: number, toDeviceId: number, executor?: Executor): Promise<void> {
    await this.on(executor)
      .updateTable("telemetry")
      .set({ device_id: toDeviceId })
      .where("device_id", "=", fromDeviceId)
      .execute();
  }

  /** Deletes every reading of the device, in the caller's transaction when given. */
  async deleteHistory(deviceId: number, executor?: Executor): Promise<void> {
    await this.on(executor).deleteFrom("telemetry").where("device_id", "=", deviceId).execute();
  }

  /** The caller's transaction when given, else this store's own handle. */
  private on(executor: Executor | undefined): Kysely<TelemetryTables> {
    return executor ?? this.db;
  }
}

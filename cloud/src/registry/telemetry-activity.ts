import type Database from "better-sqlite3";
import { sql } from "kysely";
import type { CloudDatabase, Executor } from "../storage/cloud-database.js";

/** One device's readings stored in a commit. */
export interface DeviceActivity {
  deviceId: number;
  count: number;
}

/**
 * The telemetry writer's one write on `devices`: the stored count and the last sign of life, bumped
 * once per device per commit. Kept here because the registry owns the table; the embedded form is
 * a prepared statement because it runs inside the writer's synchronous commit (the measured fast path).
 */
export class TelemetryActivity {
  private readonly embeddedBump: Database.Statement<[number, number, number, number]> | undefined;

  constructor(database: CloudDatabase) {
    this.embeddedBump = database.embedded?.prepare(
      `UPDATE devices SET telemetry_count = telemetry_count + ?,
         last_seen = CASE WHEN coalesce(last_seen, 0) > ? THEN last_seen ELSE ? END WHERE id = ?`,
    );
  }

  /** Inside the embedded writer's synchronous transaction. */
  bumpEmbedded(activity: DeviceActivity, now: number): void {
    if (!this.embeddedBump) throw new Error("the embedded database is not open");
    this.embeddedBump.run(activity.count, now, now, activity.deviceId);
  }

  /** Every device of one commit in one UPDATE, inside the writer's transaction. */
  async bump(executor: Executor, activities: readonly DeviceActivity[], now: number): Promise<void> {
    if (activities.length === 0) return;
    const rows = sql.join(activities.map((a) => sql`(${a.deviceId}::bigint, ${a.count}::bigint)`));
    await sql`UPDATE devices SET telemetry_count = devices.telemetry_count + v.count,
        last_seen = CASE WHEN coalesce(devices.last_seen, 0) > ${now}::bigint THEN devices.last_seen ELSE ${now}::bigint END
      FROM (VALUES ${rows}) AS v(id, count) WHERE devices.id = v.id`.execute(executor);
  }
}

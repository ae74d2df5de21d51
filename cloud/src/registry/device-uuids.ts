import type { Kysely } from "kysely";
import type { CloudDatabase, Executor } from "../storage/cloud-database.js";

/** The columns of `devices` this reader needs (the registry owns the table). */
type DeviceUuidColumns = {
  devices: { id: number; uuid: string };
};

/** At most this many ids in one `IN (…)`: SQLite binds at most 32766 values per statement. */
const IDS_PER_QUERY = 1000;

/**
 * The uuids of devices by id, for stores that keep device ids and show uuids (jobs, rollouts).
 * Deleted devices are left out of the map.
 */
export class DeviceUuids {
  constructor(private readonly database: CloudDatabase) {}

  async uuidsByIds(ids: readonly number[], executor?: Executor): Promise<Map<number, string>> {
    const db =
      (executor as Kysely<DeviceUuidColumns> | undefined) ?? this.database.kysely.withTables<DeviceUuidColumns>();
    const unique = [...new Set(ids)];
    const uuids = new Map<number, string>();
    for (let i = 0; i < unique.length; i += IDS_PER_QUERY) {
      const rows = await db
        .selectFrom("devices")
        .select(["id", "uuid"])
        .where("id", "in", unique.slice(i, i + IDS_PER_QUERY))
        .execute();
      for (const row of rows) uuids.set(row.id, row.uuid);
    }
    return uuids;
  }
}

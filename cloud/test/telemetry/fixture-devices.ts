import { sql } from "kysely";
import type { CloudDatabase } from "../../src/storage/cloud-database.js";

/** The uuid of fixture device `id`. */
export const fixtureUuid = (id: number): string => `00000000-0000-4000-8000-${String(id).padStart(12, "0")}`;

/**
 * Devices with the given ids in organization 1, written directly: the registry is not async yet,
 * and these suites test the stores that hang off a device, on both backends.
 */
export async function addDevices(database: CloudDatabase, ids: readonly number[]): Promise<void> {
  await sql`INSERT INTO organizations (id, name, created_at) VALUES (1, 'o', 0) ON CONFLICT DO NOTHING`.execute(
    database.kysely,
  );
  for (const id of ids) {
    await sql`INSERT INTO devices (id, uuid, org_id, created_at) VALUES (${id}, ${fixtureUuid(id)}, 1, 0)`.execute(
      database.kysely,
    );
  }
}

/** The device row's telemetry copies, as the registry would read them. */
export async function deviceActivity(
  database: CloudDatabase,
  id: number,
): Promise<{ telemetry_count: number; last_seen: number | null }> {
  const { rows } = await sql<{ telemetry_count: number; last_seen: number | null }>`
    SELECT telemetry_count, last_seen FROM devices WHERE id = ${id}`.execute(database.kysely);
  if (!rows[0]) throw new Error(`no device ${id}`);
  return rows[0];
}

/** Deletes a device row as the registry does; what hangs off it goes by its foreign keys. */
export async function deleteDevice(database: CloudDatabase, id: number): Promise<void> {
  await sql`DELETE FROM devices WHERE id = ${id}`.execute(database.kysely);
}

/** How many rows of `table` belong to the device. */
export async function rowsOf(database: CloudDatabase, table: string, deviceId: number): Promise<number> {
  const { rows } = await sql<{
    n: number;
  }>`SELECT count(*) AS n FROM ${sql.table(table)} WHERE device_id = ${deviceId}`.execute(database.kysely);
  return Number(rows[0]?.n ?? 0);
}

/** The device rows' copies ingest keeps, in memory: the registry is not async yet. */
export function memoryRowCopies(): {
  markSeen(deviceId: number, at: number): void;
  recordHealth(deviceId: number, status: string): string | null;
  recordFirmwareVersion(deviceId: number, version: string): boolean;
  seen: Map<number, number>;
} {
  const seen = new Map<number, number>();
  const health = new Map<number, string>();
  const firmware = new Map<number, string>();
  return {
    seen,
    markSeen: (deviceId, at) => {
      seen.set(deviceId, Math.max(seen.get(deviceId) ?? 0, at));
    },
    recordHealth: (deviceId, status) => {
      const previous = health.get(deviceId) ?? null;
      health.set(deviceId, status);
      return previous;
    },
    recordFirmwareVersion: (deviceId, version) => {
      const changed = firmware.get(deviceId) !== version;
      firmware.set(deviceId, version);
      return changed;
    },
  };
}

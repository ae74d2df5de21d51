import type Database from "better-sqlite3";
import { type DeviceTypeRecord, typeNotFound } from "./device-types.js";

/**
 * Synchronous type reads on the embedded database, for bulk operations while issue #14 converts
 * them; they move to the async DeviceTypes then, and this goes.
 */
export class EmbeddedTypeLookup {
  constructor(
    private readonly db: Database.Database,
    private readonly usage: { deviceCountsByType(typeIds: readonly number[]): Map<number, number> },
  ) {}

  /** Resolves a numeric id or a name. */
  resolve(orgId: number, ref: string | number): DeviceTypeRecord {
    const byId = typeof ref === "number" || /^\d+$/.test(ref);
    const row = this.db
      .prepare(
        `SELECT t.*, g.path FROM device_types t JOIN groups g ON g.id = t.group_id WHERE ${byId ? "t.id" : "t.name"} = ? AND t.org_id = ?`,
      )
      .get(byId ? Number(ref) : ref, orgId) as
      | {
          id: number;
          org_id: number;
          group_id: number;
          path: string;
          name: string;
          description: string;
          keepalive_minutes: number | null;
          firmware_compat: string;
          default_links: string | null;
          health_thresholds: string | null;
          created_at: number;
        }
      | undefined;
    if (!row) throw typeNotFound(ref);
    return {
      id: row.id,
      orgId: row.org_id,
      groupId: row.group_id,
      groupPath: row.path,
      name: row.name,
      description: row.description,
      keepaliveMinutes: row.keepalive_minutes,
      firmwareCompat: row.firmware_compat,
      defaultLinks: row.default_links === null ? null : JSON.parse(row.default_links),
      healthThresholds: row.health_thresholds === null ? null : JSON.parse(row.health_thresholds),
      createdAt: row.created_at,
      devices: this.usage.deviceCountsByType([row.id]).get(row.id) ?? 0,
    };
  }
}

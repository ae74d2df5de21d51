import { FieldgateError } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import type { Executor } from "../storage/cloud-database.js";

/** A device type as stored, joined with its group's path. */
export interface DeviceTypeRecord {
  id: number;
  orgId: number;
  groupId: number;
  groupPath: string;
  name: string;
  description: string;
  keepaliveMinutes: number | null;
  firmwareCompat: string;
  defaultLinks: unknown;
  healthThresholds: unknown;
  createdAt: number;
  devices: number;
}

export interface DeviceTypeFields {
  name?: string;
  description?: string;
  keepaliveMinutes?: number | null;
  firmwareCompat?: string;
  defaultLinks?: unknown;
  healthThresholds?: unknown;
}

interface TypeRow {
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

const SELECT = "SELECT t.*, g.path FROM device_types t JOIN groups g ON g.id = t.group_id";

/** How many devices use each type (DeviceRegistry implements it: it owns the devices). */
export interface DeviceTypeUsage {
  /** Per type id given, how many devices have that type; types no device uses may be left out. */
  deviceCountsByType(typeIds: readonly number[]): Map<number, number>;
}

/** Device types: devices of one kind share a keep-alive, a firmware compatibility id and defaults. */
export class DeviceTypes {
  constructor(
    private readonly db: Database.Database,
    private readonly usage: DeviceTypeUsage,
    private readonly clock: () => number = Date.now,
  ) {}

  private records(rows: TypeRow[]): DeviceTypeRecord[] {
    const counts = rows.length === 0 ? new Map<number, number>() : this.usage.deviceCountsByType(rows.map((r) => r.id));
    return rows.map((row) => toRecord(row, counts.get(row.id) ?? 0));
  }

  create(orgId: number, groupId: number, fields: DeviceTypeFields & { name: string }): DeviceTypeRecord {
    try {
      const id = Number(
        this.db
          .prepare(
            `INSERT INTO device_types (org_id, group_id, name, description, keepalive_minutes, firmware_compat, default_links, health_thresholds, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            orgId,
            groupId,
            fields.name,
            fields.description ?? "",
            fields.keepaliveMinutes ?? null,
            fields.firmwareCompat ?? fields.name,
            json(fields.defaultLinks),
            json(fields.healthThresholds),
            this.clock(),
          ).lastInsertRowid,
      );
      return this.get(orgId, id);
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") {
        throw new FieldgateError(
          "TYPE_EXISTS",
          `a device type is already named ${JSON.stringify(fields.name)}`,
          "name",
        );
      }
      throw err;
    }
  }

  /** The type's firmware-compat id, or undefined when there is no such type (jobs and rollouts ask). */
  firmwareCompat(typeId: number, _executor?: Executor): string | undefined {
    const row = this.db.prepare("SELECT firmware_compat FROM device_types WHERE id = ?").get(typeId) as
      | { firmware_compat: string }
      | undefined;
    return row?.firmware_compat;
  }

  get(orgId: number, id: number): DeviceTypeRecord {
    const row = this.db.prepare(`${SELECT} WHERE t.id = ? AND t.org_id = ?`).get(id, orgId) as TypeRow | undefined;
    if (!row) throw typeNotFound(id);
    return this.records([row])[0] as DeviceTypeRecord;
  }

  /** Resolves a numeric id or a name. */
  resolve(orgId: number, ref: string | number): DeviceTypeRecord {
    if (typeof ref === "number" || /^\d+$/.test(ref)) return this.get(orgId, Number(ref));
    const row = this.db.prepare(`${SELECT} WHERE t.name = ? AND t.org_id = ?`).get(ref, orgId) as TypeRow | undefined;
    if (!row) throw typeNotFound(ref);
    return this.records([row])[0] as DeviceTypeRecord;
  }

  list(orgId: number, scope: { clause: string; params: string[] }): DeviceTypeRecord[] {
    return this.records(
      this.db
        .prepare(`${SELECT} WHERE t.org_id = ? AND ${scope.clause} ORDER BY t.name`)
        .all(orgId, ...scope.params) as TypeRow[],
    );
  }

  edit(orgId: number, id: number, fields: DeviceTypeFields): DeviceTypeRecord {
    const current = this.get(orgId, id);
    const next = { ...current, ...stripUndefined(fields) };
    try {
      this.db
        .prepare(
          `UPDATE device_types SET name = ?, description = ?, keepalive_minutes = ?, firmware_compat = ?, default_links = ?, health_thresholds = ? WHERE id = ?`,
        )
        .run(
          next.name,
          next.description,
          next.keepaliveMinutes,
          next.firmwareCompat,
          json(next.defaultLinks),
          json(next.healthThresholds),
          id,
        );
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE") {
        throw new FieldgateError("TYPE_EXISTS", `a device type is already named ${JSON.stringify(next.name)}`, "name");
      }
      throw err;
    }
    return this.get(orgId, id);
  }

  delete(orgId: number, id: number): void {
    const current = this.get(orgId, id);
    if (current.devices > 0) {
      throw new FieldgateError(
        "TYPE_IN_USE",
        `${current.devices} device(s) still use this type; transfer them first`,
        "type",
      );
    }
    this.db.prepare("DELETE FROM device_types WHERE id = ?").run(id);
  }
}

function json(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function toRecord(row: TypeRow, devices: number): DeviceTypeRecord {
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
    devices,
  };
}

/** What an unknown type reference gets (by id or by name); also a type outside the caller's scope. */
export function typeNotFound(ref: string | number): FieldgateError {
  const shown = typeof ref === "number" || /^\d+$/.test(ref) ? String(Number(ref)) : JSON.stringify(ref);
  return new FieldgateError("TYPE_NOT_FOUND", `no device type ${shown}`, "type");
}

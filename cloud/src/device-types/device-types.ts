import { FieldgateError } from "@fieldgate/shared";
import type { Generated, Kysely, Updateable } from "kysely";
import {
  affectedRows,
  type CloudDatabase,
  type Executor,
  isForeignKeyViolation,
  isUniqueViolation,
} from "../storage/cloud-database.js";

/** The `device_types` table; only this module issues SQL on it. */
export type DeviceTypesTable = {
  id: Generated<number>;
  org_id: number;
  group_id: number;
  name: string;
  description: Generated<string>;
  keepalive_minutes: number | null;
  firmware_compat: Generated<string>;
  default_links: string | null;
  health_thresholds: string | null;
  created_at: number;
};

type TypeTables = {
  device_types: DeviceTypesTable;
};

/** A device type as stored, with its group's path. */
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
  name: string;
  description: string;
  keepalive_minutes: number | null;
  firmware_compat: string;
  default_links: string | null;
  health_thresholds: string | null;
  created_at: number;
}

/** How many devices use each type (DeviceRegistry implements it: it owns the devices). */
export interface DeviceTypeUsage {
  /** Per type id given, how many devices have that type; types no device uses may be left out. */
  deviceCountsByType(
    typeIds: readonly number[],
    executor?: Executor,
  ): Map<number, number> | Promise<Map<number, number>>;
}

/** Where a type's group sits in the tree (GroupTree implements it: it owns the groups). */
export interface TypeGroupPaths {
  /** Every group's materialized path in the organization, by id. */
  paths(orgId: number, executor?: Executor): Promise<Map<number, string>>;
}

/** Device types: devices of one kind share a keep-alive, a firmware compatibility id and defaults. */
export class DeviceTypes {
  private readonly db: Kysely<TypeTables>;

  constructor(
    database: CloudDatabase,
    private readonly groups: TypeGroupPaths,
    private readonly usage: DeviceTypeUsage,
    private readonly clock: () => number = Date.now,
  ) {
    this.db = database.kysely.withTables<TypeTables>();
  }

  private async records(orgId: number, rows: TypeRow[], executor?: Executor): Promise<DeviceTypeRecord[]> {
    if (rows.length === 0) return [];
    const counts = await this.usage.deviceCountsByType(
      rows.map((r) => r.id),
      executor,
    );
    const paths = await this.groups.paths(orgId, executor);
    return rows.map((row) => toRecord(row, paths.get(row.group_id) ?? "", counts.get(row.id) ?? 0));
  }

  async create(orgId: number, groupId: number, fields: DeviceTypeFields & { name: string }): Promise<DeviceTypeRecord> {
    try {
      const { id } = await this.db
        .insertInto("device_types")
        .values({
          org_id: orgId,
          group_id: groupId,
          name: fields.name,
          description: fields.description ?? "",
          keepalive_minutes: fields.keepaliveMinutes ?? null,
          firmware_compat: fields.firmwareCompat ?? fields.name,
          default_links: json(fields.defaultLinks),
          health_thresholds: json(fields.healthThresholds),
          created_at: this.clock(),
        })
        .returning("id")
        .executeTakeFirstOrThrow();
      return await this.get(orgId, id);
    } catch (err) {
      if (isUniqueViolation(err)) throw nameTaken(fields.name);
      throw err;
    }
  }

  async get(orgId: number, id: number, executor?: Executor): Promise<DeviceTypeRecord> {
    const row = await ((executor as Kysely<TypeTables> | undefined) ?? this.db)
      .selectFrom("device_types")
      .selectAll()
      .where("id", "=", id)
      .where("org_id", "=", orgId)
      .executeTakeFirst();
    if (!row) throw typeNotFound(id);
    return (await this.records(orgId, [row], executor))[0] as DeviceTypeRecord;
  }

  /** Resolves a numeric id or a name. */
  async resolve(orgId: number, ref: string | number, executor?: Executor): Promise<DeviceTypeRecord> {
    if (typeof ref === "number" || /^\d+$/.test(ref)) return this.get(orgId, Number(ref), executor);
    const row = await ((executor as Kysely<TypeTables> | undefined) ?? this.db)
      .selectFrom("device_types")
      .selectAll()
      .where("name", "=", ref)
      .where("org_id", "=", orgId)
      .executeTakeFirst();
    if (!row) throw typeNotFound(ref);
    return (await this.records(orgId, [row], executor))[0] as DeviceTypeRecord;
  }

  /** The organization's types defined inside the given subtrees (`AccessPolicy.scopes`), by name. */
  async list(orgId: number, scopes: readonly string[]): Promise<DeviceTypeRecord[]> {
    if (scopes.length === 0) return [];
    const rows = await this.db
      .selectFrom("device_types")
      .selectAll()
      .where("org_id", "=", orgId)
      .orderBy("name")
      .execute();
    const records = await this.records(orgId, rows);
    return records.filter((t) => scopes.some((scope) => t.groupPath.startsWith(scope)));
  }

  async edit(orgId: number, id: number, fields: DeviceTypeFields): Promise<DeviceTypeRecord> {
    const current = await this.get(orgId, id);
    // Only the fields given: two edits of different fields at once both hold.
    const changes: Updateable<DeviceTypesTable> = {};
    if (fields.name !== undefined) changes.name = fields.name;
    if (fields.description !== undefined) changes.description = fields.description;
    if (fields.keepaliveMinutes !== undefined) changes.keepalive_minutes = fields.keepaliveMinutes;
    if (fields.firmwareCompat !== undefined) changes.firmware_compat = fields.firmwareCompat;
    if (fields.defaultLinks !== undefined) changes.default_links = json(fields.defaultLinks);
    if (fields.healthThresholds !== undefined) changes.health_thresholds = json(fields.healthThresholds);
    if (Object.keys(changes).length > 0) {
      try {
        await this.db.updateTable("device_types").set(changes).where("id", "=", id).execute();
      } catch (err) {
        if (isUniqueViolation(err)) throw nameTaken(fields.name ?? current.name);
        throw err;
      }
    }
    return this.get(orgId, id);
  }

  async delete(orgId: number, id: number): Promise<void> {
    const current = await this.get(orgId, id);
    if (current.devices > 0) throw inUse(current.devices);
    try {
      await this.db.deleteFrom("device_types").where("id", "=", id).execute();
    } catch (err) {
      // A device took the type between the count and the delete.
      if (isForeignKeyViolation(err)) throw inUse((await this.usage.deviceCountsByType([id])).get(id) ?? 1);
      throw err;
    }
  }

  /** Removes the types defined on these groups, in a recursive group delete's transaction. */
  async removeInGroups(groupIds: readonly number[], executor: Executor): Promise<number> {
    const db = executor as Kysely<TypeTables>;
    let removed = 0;
    for (let start = 0; start < groupIds.length; start += 500) {
      const result = await db
        .deleteFrom("device_types")
        .where("group_id", "in", groupIds.slice(start, start + 500))
        .execute();
      removed += affectedRows(result);
    }
    return removed;
  }

  /** The firmware compatibility id of a type (firmware, jobs): undefined for an unknown type. */
  async firmwareCompat(typeId: number, executor?: Executor): Promise<string | undefined> {
    const row = await ((executor as Kysely<TypeTables> | undefined) ?? this.db)
      .selectFrom("device_types")
      .select("firmware_compat")
      .where("id", "=", typeId)
      .executeTakeFirst();
    return row?.firmware_compat;
  }

  /** Every type's firmware compatibility id in the organization, by type id (rollout targets). */
  async firmwareCompats(orgId: number, executor?: Executor): Promise<Map<number, string>> {
    const rows = await ((executor as Kysely<TypeTables> | undefined) ?? this.db)
      .selectFrom("device_types")
      .select(["id", "firmware_compat"])
      .where("org_id", "=", orgId)
      .execute();
    return new Map(rows.map((r) => [r.id, r.firmware_compat]));
  }

  /** A type's id and name (a device's view): undefined for an unknown type. */
  async nameOf(typeId: number): Promise<{ id: number; name: string } | undefined> {
    return this.db.selectFrom("device_types").select(["id", "name"]).where("id", "=", typeId).executeTakeFirst();
  }
}

function json(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

function nameTaken(name: string): FieldgateError {
  return new FieldgateError("TYPE_EXISTS", `a device type is already named ${JSON.stringify(name)}`, "name");
}

function inUse(devices: number): FieldgateError {
  return new FieldgateError("TYPE_IN_USE", `${devices} device(s) still use this type; transfer them first`, "type");
}

function toRecord(row: TypeRow, groupPath: string, devices: number): DeviceTypeRecord {
  return {
    id: row.id,
    orgId: row.org_id,
    groupId: row.group_id,
    groupPath,
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

import {
  type CreateDeviceBody,
  type Device,
  type DeviceCertificateList,
  type DeviceHealth,
  FieldgateError,
  type HealthReport,
  type ListDevicesQuery,
  MAX_DEVICE_TAGS,
  type PatchDeviceBody,
} from "@fieldgate/shared";
import { type Generated, type Kysely, sql, type Updateable } from "kysely";
import { hashSecret, newSecret } from "../credentials/secrets.js";
import { type GroupRow, groupNotFound } from "../groups/group-tree.js";
import { type LiveDeviceRef, type LiveSink, NO_LIVE } from "../live/live-feed.js";
import type { IssuedCertificate } from "../pki/certificate-authority.js";
import { type CloudDatabase, type Executor, isUniqueViolation, type SqlDialect } from "../storage/cloud-database.js";
import { CertificateStore, type StoredCertificate } from "./certificate-store.js";
import type { DeviceExportRecord } from "./device-export.js";
import {
  asKyselySql,
  buildDeviceQuery,
  type DeviceCursor,
  type DeviceFilters,
  type SqlScope,
  type SqlValue,
} from "./device-query.js";

/** A device row as stored. */
export interface DeviceRow {
  id: number;
  uuid: string;
  org_id: number;
  name: string;
  location: string;
  comment: string;
  tags: string;
  factory_public_key: string | null;
  created_at: number;
  online: number;
  last_seen: number | null;
  telemetry_count: number;
  window_expires_at: number | null;
  window_failed_attempts: number;
  token_hash: Buffer | null;
  group_id: number;
  type_id: number | null;
  firmware_version: string | null;
  health: string | null;
  retired_at: number | null;
  replaced_by: string | null;
  presence_changed_at: number | null;
  offline_reason: string | null;
}

/** The `devices` table: a device row, with the columns the database fills in when left out. */
export interface DevicesTable extends Omit<DeviceRow, "id" | "name" | "location" | "comment" | "tags" | "online"> {
  id: Generated<number>;
  name: Generated<string>;
  location: Generated<string>;
  comment: Generated<string>;
  tags: Generated<string>;
  online: Generated<number>;
  keepalive_alerted_at: number | null;
}

/** The `organizations` table. */
export interface OrganizationsTable {
  id: Generated<number>;
  name: string;
  uuid_only_enrollment: Generated<number>;
  created_at: number;
}

/** The tables the registry owns (`certificates` is its CertificateStore's). */
type RegistryTables = {
  devices: DevicesTable;
  organizations: OrganizationsTable;
};

type Awaitable<T> = T | Promise<T>;

/** What the registry needs of the group tree (GroupTree implements it). */
export interface RegistryGroups {
  /** The root group of a new organization, inside the organization's transaction. */
  createRoot(orgId: number, name: string, executor?: Executor): Awaitable<unknown>;
  /** The group, or GROUP_NOT_FOUND. */
  get(orgId: number, id: number): Awaitable<GroupRow>;
  /** A group by id or full name, or GROUP_NOT_FOUND. */
  resolve(orgId: number, ref: string | number): Awaitable<GroupRow>;
  /** "default/plant-a/line-1" for a group path. */
  fullName(orgId: number, path: string): Awaitable<string>;
}

/** The enrollment columns of a device, or nulls for an unknown uuid (`DeviceRegistry.enrollmentProbe`). */
export type EnrollmentProbe = {
  [K in "id" | "uuid" | "window_expires_at" | "token_hash" | "factory_public_key"]: DeviceRow[K] | null;
};

/** A row of a device query: the device with its group path, type name, certificate expiry and sort key. */
interface ListedRow extends DeviceRow {
  group_path: string;
  type_name: string | null;
  certificate_not_after: number | null;
  sort_key: SqlValue;
}

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** Where a device is filed: its group (with path and full name) and its type. */
export interface DevicePlacement {
  groupId: number;
  typeId?: number | null;
}

/** Wrong proofs allowed per enrollment window; the fifth closes it (docs/architecture.md, "Identity and enrollment"). */
export const MAX_FAILED_ATTEMPTS = 5;

/** The window an enrollment request saw before it awaited issuing: only that window may be spent. */
export interface SeenWindow {
  window_expires_at: number | null;
  token_hash: Buffer | null;
}

/** What a newly opened enrollment window hands the operator, once. */
export interface OpenedWindow {
  token: string;
  expiresAt: number;
}

/** Called after certificates were revoked, so live sessions using them can be dropped. */
export type RevocationListener = (uuid: string, reason: string) => void;

/** Ids per statement in `IN (…)` lists: bound parameters per statement are limited on both backends. */
const IDS_PER_STATEMENT = 500;

function chunksOf<T>(items: readonly T[]): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += IDS_PER_STATEMENT)
    chunks.push(items.slice(start, start + IDS_PER_STATEMENT));
  return chunks;
}

/** The device registry: devices, their enrollment windows and their certificates, per organization. */
export class DeviceRegistry {
  private readonly revocationListeners: RevocationListener[] = [];
  private readonly tables: Kysely<RegistryTables>;
  private readonly dialect: SqlDialect;
  /** The `certificates` table; only the registry uses it. */
  private readonly certificateStore: CertificateStore;

  constructor(
    readonly database: CloudDatabase,
    private readonly groups: RegistryGroups,
    private readonly windowMs: number,
    private readonly clock: () => number = Date.now,
    /** Told of every change to a device row, for live updates. */
    private readonly live: LiveSink = NO_LIVE,
  ) {
    this.tables = database.kysely.withTables<RegistryTables>();
    this.dialect = database.dialect;
    this.certificateStore = new CertificateStore(database, clock);
  }

  private on(executor: Executor | undefined): Kysely<RegistryTables> {
    return executor ?? this.tables;
  }

  /** The device row, locked against concurrent writers until the transaction ends (PostgreSQL; SQLite has one writer). */
  private async lockedRow(
    trx: Executor,
    where: { column: "id"; value: number } | { column: "uuid"; value: string },
  ): Promise<DeviceRow | undefined> {
    const query = (trx as Kysely<RegistryTables>)
      .selectFrom("devices")
      .selectAll()
      .where(where.column, "=", where.value as never);
    return this.dialect === "postgres" ? query.forUpdate().executeTakeFirst() : query.executeTakeFirst();
  }

  /** Where a device belongs, for the live feed; undefined once it is deleted. */
  async liveRef(deviceId: number, executor?: Executor): Promise<LiveDeviceRef | undefined> {
    const { rows } = await sql<{ org_id: number; uuid: string; path: string }>`
      SELECT d.org_id, d.uuid, g.path FROM devices d JOIN groups g ON g.id = d.group_id WHERE d.id = ${deviceId}`.execute(
      this.on(executor),
    );
    const row = rows[0];
    return row && { orgId: row.org_id, uuid: row.uuid, groupPath: row.path };
  }

  onRevocation(listener: RevocationListener): void {
    this.revocationListeners.push(listener);
  }

  async ensureDefaultOrganization(): Promise<number> {
    const row = await this.tables.selectFrom("organizations").select("id").orderBy("id").limit(1).executeTakeFirst();
    if (row) return row.id;
    return this.createOrganization("default");
  }

  /**
   * A new tenant with its root group, named like the organization. `alongside` runs in the same
   * transaction (its admin credential), on `executor`: a failure there leaves no organization behind.
   */
  createOrganization(name: string): Promise<number>;
  createOrganization<T>(
    name: string,
    alongside: (orgId: number, executor: Executor) => Awaitable<T>,
  ): Promise<{ orgId: number; alongside: T }>;
  async createOrganization<T>(
    name: string,
    alongside?: (orgId: number, executor: Executor) => Awaitable<T>,
  ): Promise<number | { orgId: number; alongside: T }> {
    return this.tables.transaction().execute(async (trx) => {
      const { id: orgId } = await trx
        .insertInto("organizations")
        .values({ name, created_at: this.clock() })
        .returning("id")
        .executeTakeFirstOrThrow();
      await this.groups.createRoot(orgId, name, trx);
      return alongside ? { orgId, alongside: await alongside(orgId, trx) } : orgId;
    });
  }

  async organization(orgId: number): Promise<{ id: number; name: string; uuidOnlyEnrollment: boolean }> {
    const row = await this.tables
      .selectFrom("organizations")
      .select(["id", "name", "uuid_only_enrollment"])
      .where("id", "=", orgId)
      .executeTakeFirst();
    if (!row) throw new FieldgateError("NOT_FOUND", "no such organization");
    return { id: row.id, name: row.name, uuidOnlyEnrollment: row.uuid_only_enrollment === 1 };
  }

  /** The organization with this name, or undefined. */
  async organizationNamed(name: string): Promise<{ id: number; name: string } | undefined> {
    return this.tables.selectFrom("organizations").select(["id", "name"]).where("name", "=", name).executeTakeFirst();
  }

  /** Every organization, oldest first, with how many devices it has. */
  async organizations(): Promise<{ id: number; name: string; devices: number }[]> {
    const rows = await this.tables
      .selectFrom("organizations as o")
      .select((eb) => [
        "o.id",
        "o.name",
        eb
          .selectFrom("devices as d")
          .select((inner) => inner.fn.countAll<number>().as("n"))
          .whereRef("d.org_id", "=", "o.id")
          .as("devices"),
      ])
      .orderBy("o.id")
      .execute();
    return rows.map((r) => ({ id: r.id, name: r.name, devices: Number(r.devices ?? 0) }));
  }

  async setUuidOnlyEnrollment(orgId: number, enabled: boolean): Promise<void> {
    await this.tables
      .updateTable("organizations")
      .set({ uuid_only_enrollment: enabled ? 1 : 0 })
      .where("id", "=", orgId)
      .execute();
  }

  /** Registers a device in a group and opens its first enrollment window. */
  async create(
    orgId: number,
    body: CreateDeviceBody,
    placement: DevicePlacement,
  ): Promise<{ device: Device; window: OpenedWindow }> {
    const uuid = body.uuid.toLowerCase();
    await this.assertUuidFree(orgId, uuid);
    let window: OpenedWindow;
    try {
      window = await this.insert(orgId, { ...body, uuid }, placement);
    } catch (err) {
      // Another request registered the uuid since the check (PostgreSQL runs them side by side).
      if (isUniqueViolation(err)) await this.assertUuidFree(orgId, uuid);
      throw err;
    }
    return { device: await this.get(orgId, uuid), window };
  }

  private async assertUuidFree(orgId: number, uuid: string): Promise<void> {
    const existing = await this.findByUuid(uuid);
    if (!existing) return;
    // Another tenant's device: say only that the uuid is taken elsewhere, nothing about whom.
    if (existing.org_id !== orgId) {
      throw new FieldgateError("DEVICE_OWNED_ELSEWHERE", `uuid ${uuid} is registered to another organization`, "uuid");
    }
    throw new FieldgateError("DEVICE_EXISTS", `a device with uuid ${uuid} is already registered`, "uuid");
  }

  /**
   * Inserts a device and opens its first window, without the checks of `create` (callers that
   * checked a whole series themselves, like the bulk import, use it inside their transaction).
   * Returns the one-time token; only its hash is stored.
   */
  async insert(
    orgId: number,
    fields: Omit<CreateDeviceBody, "group" | "type">,
    placement: DevicePlacement,
    telemetryCount = 0,
    executor?: Executor,
  ): Promise<OpenedWindow> {
    const token = newSecret("fgt_");
    const expiresAt = this.clock() + this.windowMs;
    const { id } = await this.on(executor)
      .insertInto("devices")
      .values({
        uuid: fields.uuid.toLowerCase(),
        org_id: orgId,
        group_id: placement.groupId,
        type_id: placement.typeId ?? null,
        name: fields.name ?? "",
        location: fields.location ?? "",
        comment: fields.comment ?? "",
        tags: JSON.stringify(fields.tags ?? []),
        factory_public_key: fields.factoryPublicKey ?? null,
        created_at: this.clock(),
        window_expires_at: expiresAt,
        window_failed_attempts: 0,
        token_hash: hashSecret(token),
        telemetry_count: telemetryCount,
      })
      .returning("id")
      .executeTakeFirstOrThrow();
    this.live.device(id);
    return { token, expiresAt };
  }

  /** The stored row, or undefined; not scoped to an organization (enrollment and the broker use it). */
  async findByUuid(uuid: string, executor?: Executor): Promise<DeviceRow | undefined> {
    return this.on(executor)
      .selectFrom("devices")
      .selectAll()
      .where("uuid", "=", uuid.toLowerCase())
      .executeTakeFirst();
  }

  /** The stored row by its internal id, or undefined; not scoped to an organization. */
  async findById(deviceId: number, executor?: Executor): Promise<DeviceRow | undefined> {
    return this.on(executor).selectFrom("devices").selectAll().where("id", "=", deviceId).executeTakeFirst();
  }

  /** Per device id given, its uuid (ids of deleted devices are left out). */
  async uuidsByIds(ids: readonly number[], executor?: Executor): Promise<Map<number, string>> {
    const uuids = new Map<number, string>();
    for (const chunk of chunksOf(ids)) {
      const rows = await this.on(executor)
        .selectFrom("devices")
        .select(["id", "uuid"])
        .where("id", "in", chunk)
        .execute();
      for (const r of rows) uuids.set(r.id, r.uuid);
    }
    return uuids;
  }

  /** Per group id given, how many devices are filed directly in it (groups without devices are left out). */
  async countByGroups(groupIds: readonly number[], executor?: Executor): Promise<Map<number, number>> {
    const counts = new Map<number, number>();
    for (const chunk of chunksOf(groupIds)) {
      const rows = await this.on(executor)
        .selectFrom("devices")
        .select((eb) => ["group_id", eb.fn.countAll<number>().as("n")])
        .where("group_id", "in", chunk)
        .groupBy("group_id")
        .execute();
      for (const r of rows) counts.set(r.group_id, Number(r.n));
    }
    return counts;
  }

  /**
   * Deletes every device filed in these groups, inside the caller's transaction (their
   * certificates, telemetry, events and the rest go by cascade); returns their uuids, for
   * `notifyRevoked` after the commit.
   */
  async removeInGroups(groupIds: readonly number[], executor: Executor): Promise<string[]> {
    const uuids: string[] = [];
    for (const chunk of chunksOf(groupIds)) {
      const { rows } = await sql<{ id: number; uuid: string; org_id: number; path: string }>`
        SELECT d.id, d.uuid, d.org_id, g.path FROM devices d JOIN groups g ON g.id = d.group_id
        WHERE d.group_id IN (${sql.join(chunk)})`.execute(executor);
      if (rows.length === 0) continue;
      await (executor as Kysely<RegistryTables>).deleteFrom("devices").where("group_id", "in", chunk).execute();
      for (const r of rows) {
        uuids.push(r.uuid);
        this.live.device(r.id, { orgId: r.org_id, uuid: r.uuid, groupPath: r.path });
      }
    }
    return uuids;
  }

  /**
   * What the public enrollment routes need before anything is proven, always as one row of the
   * same shape (all null for an unknown uuid): a known and an unknown uuid then cost the same
   * lookup, and their closed-window answers cannot be told apart by time either.
   */
  async enrollmentProbe(uuid: string): Promise<EnrollmentProbe> {
    const { rows } = await sql<EnrollmentProbe>`
      SELECT d.id, d.uuid, d.window_expires_at, d.token_hash, d.factory_public_key
      FROM (SELECT CAST(${uuid.toLowerCase()} AS TEXT) AS uuid) AS q LEFT JOIN devices d ON d.uuid = q.uuid`.execute(
      this.tables,
    );
    return rows[0] as EnrollmentProbe;
  }

  /** The device row in this organization, or DEVICE_NOT_FOUND. */
  async row(orgId: number, uuid: string, executor?: Executor): Promise<DeviceRow> {
    const row = await this.findByUuid(uuid, executor);
    // A device of another organization is reported exactly like a missing one.
    if (!row || row.org_id !== orgId) throw deviceNotFound(uuid);
    return row;
  }

  async get(orgId: number, uuid: string): Promise<Device> {
    return this.toApi(await this.row(orgId, uuid));
  }

  /** The materialized path of the device's group, for access checks. */
  async groupPath(row: DeviceRow): Promise<string> {
    return (await this.groups.get(row.org_id, row.group_id)).path;
  }

  /**
   * Turns API filters into resolved ones: the group reference into its row (GROUP_NOT_FOUND when
   * it does not exist, or when the caller may not see it — `visible` — so that the two read
   * alike), times into milliseconds. A group the caller sees but outside the scope of this
   * request's permission lists nothing: the scope still applies.
   */
  async resolveFilters(
    orgId: number,
    query: ListDevicesQuery,
    visible: (groupPath: string) => boolean,
  ): Promise<DeviceFilters> {
    const { lastSeenFrom, lastSeenTo } = query;
    if (lastSeenFrom && lastSeenTo && Date.parse(lastSeenFrom) > Date.parse(lastSeenTo)) {
      throw new FieldgateError("VALIDATION_FAILED", "lastSeenFrom must not be after lastSeenTo", "lastSeenFrom");
    }
    const group = query.group === undefined ? undefined : await this.groups.resolve(orgId, query.group);
    if (group && query.group !== undefined && !visible(group.path)) throw groupNotFound(query.group);
    const type = query.type;
    return {
      uuid: query.uuid,
      name: query.name,
      location: query.location,
      tags: query.tag,
      type: typeof type === "string" && /^\d+$/.test(type) ? Number(type) : type,
      group: group && { id: group.id, path: group.path, includeSubgroups: query.includeSubgroups === true },
      status: query.status,
      online: query.online,
      lastSeenFrom: lastSeenFrom === undefined ? undefined : Date.parse(lastSeenFrom),
      lastSeenTo: lastSeenTo === undefined ? undefined : Date.parse(lastSeenTo),
      firmwareVersion: query.firmwareVersion,
      retired: query.retired === true,
      q: query.q,
      sort: query.sort,
    };
  }

  /** One page of the devices inside `scope` that match `filters`, with the total that match. */
  async list(
    orgId: number,
    scope: SqlScope,
    filters: DeviceFilters,
    page: { limit: number; offset: number },
  ): Promise<{ items: Device[]; total: number }> {
    const query = buildDeviceQuery(orgId, scope, filters, this.dialect);
    const counted = await asKyselySql<{ n: number }>(query.count).execute(this.tables);
    const { rows } = await asKyselySql<DeviceRow>({
      sql: `${query.select.sql} LIMIT ? OFFSET ?`,
      params: [...query.select.params, page.limit, page.offset],
    }).execute(this.tables);
    const items: Device[] = [];
    for (const r of rows) items.push(await this.toApi(r));
    return { items, total: Number(counted.rows[0]?.n ?? 0) };
  }

  /** Every device inside `scope` that matches `filters`, as stored rows in the filters' sort order (rollout targets). */
  async matching(orgId: number, scope: SqlScope, filters: DeviceFilters): Promise<DeviceRow[]> {
    const { select } = buildDeviceQuery(orgId, scope, filters, this.dialect);
    return (await asKyselySql<DeviceRow>(select).execute(this.tables)).rows;
  }

  /**
   * Every matching device as export records, a page at a time: each page is one keyset query,
   * read whole before it is handed out, so no connection is held while the client reads.
   */
  async *exportPages(
    orgId: number,
    scope: SqlScope,
    filters: DeviceFilters,
    pageSize = 1000,
  ): AsyncGenerator<DeviceExportRecord[]> {
    const query = buildDeviceQuery(orgId, scope, filters, this.dialect);
    const groupNames = new Map<string, string>();
    let cursor: DeviceCursor | undefined;
    for (;;) {
      const { rows } = await asKyselySql<ListedRow>(query.page(cursor, pageSize)).execute(this.tables);
      const records: DeviceExportRecord[] = [];
      for (const row of rows) {
        let group = groupNames.get(row.group_path);
        if (group === undefined) {
          group = await this.groups.fullName(orgId, row.group_path);
          groupNames.set(row.group_path, group);
        }
        records.push({
          uuid: row.uuid,
          name: row.name,
          location: row.location,
          comment: row.comment,
          tags: JSON.parse(row.tags) as string[],
          group,
          type: row.type_name,
          status: row.health,
          online: row.online === 1,
          lastSeen: isoOrNull(row.last_seen),
          firmwareVersion: row.firmware_version,
          certificateExpires: isoOrNull(row.certificate_not_after),
          createdAt: new Date(row.created_at).toISOString(),
        });
        cursor = { key: row.sort_key, id: row.id };
      }
      if (records.length > 0) yield records;
      if (records.length < pageSize) return;
    }
  }

  async patch(
    orgId: number,
    uuid: string,
    body: PatchDeviceBody,
    placement: Partial<DevicePlacement> = {},
  ): Promise<Device> {
    // Adding and removing tags reads the current ones: the row is locked until the write.
    await this.tables.transaction().execute((trx) => this.patchRow(trx, orgId, uuid, body, placement));
    return this.get(orgId, uuid);
  }

  private async patchRow(
    trx: Kysely<RegistryTables>,
    orgId: number,
    uuid: string,
    body: PatchDeviceBody,
    placement: Partial<DevicePlacement>,
  ): Promise<void> {
    const row = await this.lockedRow(trx, { column: "uuid", value: uuid.toLowerCase() });
    if (!row || row.org_id !== orgId) throw deviceNotFound(uuid);
    const tags = editedTags(JSON.parse(row.tags) as string[], body);
    const changes: Updateable<DevicesTable> = {};
    if (body.name !== undefined) changes.name = body.name;
    if (body.location !== undefined) changes.location = body.location;
    if (body.comment !== undefined) changes.comment = body.comment;
    if (tags !== undefined) changes.tags = JSON.stringify(tags);
    if (body.factoryPublicKey !== undefined) changes.factory_public_key = body.factoryPublicKey;
    if (placement.groupId !== undefined) changes.group_id = placement.groupId;
    if (placement.typeId !== undefined) changes.type_id = placement.typeId;
    if (Object.keys(changes).length > 0) {
      await trx.updateTable("devices").set(changes).where("id", "=", row.id).execute();
      this.live.device(row.id);
    }
  }

  /** Deletes the device and everything stored about it; its certificates stop working at once. */
  async delete(orgId: number, uuid: string): Promise<void> {
    const row = await this.row(orgId, uuid);
    await this.remove(row);
    this.notifyRevoked(row.uuid, "device deleted");
  }

  /**
   * Deletes a device row (and by cascade, in the same statement, everything stored about it)
   * inside the caller's transaction; the caller calls `notifyRevoked` after the commit.
   */
  async remove(row: DeviceRow, executor?: Executor): Promise<void> {
    const ref = await this.liveRef(row.id, executor);
    await this.on(executor).deleteFrom("devices").where("id", "=", row.id).execute();
    if (ref) this.live.device(row.id, ref);
  }

  /**
   * Sets the given descriptive fields and, when `typeId` is given, the type (null clears it);
   * fields left out keep their value. For callers that checked the edit themselves (bulk edit).
   */
  async editFields(
    deviceId: number,
    fields: { name?: string; location?: string; comment?: string; tags?: readonly string[]; typeId?: number | null },
    executor?: Executor,
  ): Promise<void> {
    const changes: Updateable<DevicesTable> = {};
    if (fields.name !== undefined) changes.name = fields.name;
    if (fields.location !== undefined) changes.location = fields.location;
    if (fields.comment !== undefined) changes.comment = fields.comment;
    if (fields.tags !== undefined) changes.tags = JSON.stringify(fields.tags);
    if (fields.typeId !== undefined) changes.type_id = fields.typeId;
    if (Object.keys(changes).length > 0) {
      await this.on(executor).updateTable("devices").set(changes).where("id", "=", deviceId).execute();
    }
    this.live.device(deviceId);
  }

  /** Files the device in another group with this type (bulk transfer checked both). */
  async move(
    deviceId: number,
    placement: { groupId: number; typeId: number | null },
    executor?: Executor,
  ): Promise<void> {
    await this.on(executor)
      .updateTable("devices")
      .set({ group_id: placement.groupId, type_id: placement.typeId })
      .where("id", "=", deviceId)
      .execute();
    this.live.device(deviceId);
  }

  /** Zeroes the device's telemetry count, for a caller that just dropped its readings. */
  async resetTelemetryCount(deviceId: number, executor?: Executor): Promise<void> {
    await this.on(executor).updateTable("devices").set({ telemetry_count: 0 }).where("id", "=", deviceId).execute();
  }

  /**
   * Retires a device replaced by `replacedBy`, inside the caller's transaction: its window closes
   * with its token spent, it is marked offline, its certificates are revoked (reason "replaced")
   * and, when its history moved to the new device (`movedHistory`), its telemetry count is zeroed.
   * The caller calls `notifyRevoked` after the commit.
   */
  async retire(
    deviceId: number,
    replacedBy: string,
    options: { movedHistory: boolean },
    executor?: Executor,
  ): Promise<void> {
    const apply = async (trx: Executor) => {
      await (trx as Kysely<RegistryTables>)
        .updateTable("devices")
        .set({
          retired_at: this.clock(),
          replaced_by: replacedBy,
          window_expires_at: null,
          token_hash: null,
          online: 0,
          ...(options.movedHistory && { telemetry_count: 0 }),
        })
        .where("id", "=", deviceId)
        .execute();
      await this.certificateStore.revokeCertificates(deviceId, "replaced", trx);
    };
    if (executor) await apply(executor);
    else await this.tables.transaction().execute(apply);
    this.live.device(deviceId);
  }

  /** The names of the organization's devices that start with `prefix` (taken literally, any case). */
  async namesStartingWith(orgId: number, prefix: string, executor?: Executor): Promise<string[]> {
    const like = `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const rows = await this.on(executor)
      .selectFrom("devices")
      .select("name")
      .where("org_id", "=", orgId)
      .where(sql<boolean>`lower(name) LIKE lower(${like}) ESCAPE '\\'`)
      .execute();
    return rows.map((r) => r.name);
  }

  /**
   * Revokes the device's certificates and opens a new window with a new one-time token. The device
   * comes back as it is once its session is dropped: offline, because it was revoked.
   */
  async resetToken(orgId: number, uuid: string): Promise<{ device: Device; window: OpenedWindow; revoked: number }> {
    const row = await this.row(orgId, uuid);
    if (row.retired_at !== null) {
      throw new FieldgateError(
        "DEVICE_RETIRED",
        `${row.uuid} was retired when ${row.replaced_by ?? "another device"} replaced it; delete it to reuse the uuid`,
        "uuid",
      );
    }
    const token = newSecret("fgt_");
    const now = this.clock();
    const expiresAt = now + this.windowMs;
    const revoked = await this.tables.transaction().execute(async (trx) => {
      const count = await this.certificateStore.revokeCertificates(row.id, "reset-token", trx);
      await trx
        .updateTable("devices")
        .set({ window_expires_at: expiresAt, window_failed_attempts: 0, token_hash: hashSecret(token) })
        .where("id", "=", row.id)
        .execute();
      // The live session is dropped right after: the answer shows that state, not the one before.
      await trx
        .updateTable("devices")
        .set({ online: 0, presence_changed_at: now, offline_reason: "revoked" })
        .where("id", "=", row.id)
        .where("online", "=", 1)
        .execute();
      return count;
    });
    this.notifyRevoked(row.uuid, "reset-token");
    this.live.device(row.id);
    return { device: await this.get(orgId, uuid), window: { token, expiresAt }, revoked };
  }

  /**
   * Marks every unrevoked certificate of the device revoked and returns how many were; joins the
   * caller's transaction. Live sessions are dropped by `notifyRevoked`, after the commit.
   */
  async revokeCertificates(deviceId: number, reason: string, executor?: Executor): Promise<number> {
    return this.certificateStore.revokeCertificates(deviceId, reason, executor);
  }

  notifyRevoked(uuid: string, reason: string): void {
    for (const listener of this.revocationListeners) listener(uuid, reason);
  }

  /** Records presence; false when the device is gone (deleted while connected), with nothing to update. */
  async setPresence(
    deviceId: number,
    online: boolean,
    at: number,
    offlineReason: string | null,
    executor?: Executor,
  ): Promise<boolean> {
    const updated = await this.on(executor)
      .updateTable("devices")
      .set({ online: online ? 1 : 0, last_seen: at, presence_changed_at: at, offline_reason: offlineReason })
      .where("id", "=", deviceId)
      .returning("id")
      .execute();
    const changed = updated.length > 0;
    if (changed) this.live.device(deviceId);
    return changed;
  }

  /**
   * Up to `limit` devices whose type has a keep-alive of M minutes (of `minuteMs`) and that sent
   * nothing for M minutes at `now`, not yet alerted for this silence (never-seen devices are not
   * watched). For the keep-alive monitor.
   */
  async silentDevices(
    minuteMs: number,
    now: number,
    limit: number,
    executor?: Executor,
  ): Promise<{ id: number; uuid: string; orgId: number; lastSeen: number; keepaliveMinutes: number }[]> {
    const { rows } = await sql<{
      id: number;
      uuid: string;
      org_id: number;
      last_seen: number;
      keepalive_minutes: number;
    }>`SELECT d.id, d.uuid, d.org_id, d.last_seen, t.keepalive_minutes
       FROM devices d JOIN device_types t ON t.id = d.type_id
       WHERE t.keepalive_minutes IS NOT NULL AND d.last_seen IS NOT NULL
         AND d.last_seen + t.keepalive_minutes * ${minuteMs} <= ${now}
         AND (d.keepalive_alerted_at IS NULL OR d.keepalive_alerted_at <= d.last_seen)
       LIMIT ${limit}`.execute(this.on(executor));
    return rows.map((r) => ({
      id: r.id,
      uuid: r.uuid,
      orgId: r.org_id,
      lastSeen: r.last_seen,
      keepaliveMinutes: r.keepalive_minutes,
    }));
  }

  /** Marks the device's current silence alerted: it raises one KEEPALIVE_MISSED until it speaks again. */
  async markKeepaliveAlerted(deviceId: number, at: number, executor?: Executor): Promise<void> {
    await this.on(executor)
      .updateTable("devices")
      .set({ keepalive_alerted_at: at })
      .where("id", "=", deviceId)
      .execute();
  }

  /** Per type id given, how many devices have that type (types no device uses are left out). */
  async deviceCountsByType(typeIds: readonly number[], executor?: Executor): Promise<Map<number, number>> {
    const counts = new Map<number, number>();
    for (const chunk of chunksOf(typeIds)) {
      const rows = await this.on(executor)
        .selectFrom("devices")
        .select((eb) => ["type_id", eb.fn.countAll<number>().as("n")])
        .where("type_id", "in", chunk)
        .groupBy("type_id")
        .execute();
      for (const r of rows) if (r.type_id !== null) counts.set(r.type_id, Number(r.n));
    }
    return counts;
  }

  /** Moves the device's last sign of life forward to `at` (never back). */
  async markSeen(deviceId: number, at: number, executor?: Executor): Promise<void> {
    await this.on(executor)
      .updateTable("devices")
      .set({ last_seen: sql<number>`CASE WHEN coalesce(last_seen, 0) > ${at} THEN last_seen ELSE ${at} END` })
      .where("id", "=", deviceId)
      .execute();
  }

  /** Stores the device's reported health status (the copy lists filter on); returns the one before. */
  async recordHealth(deviceId: number, status: string, executor?: Executor): Promise<string | null> {
    const record = async (trx: Executor) => {
      const before = await this.lockedRow(trx, { column: "id", value: deviceId });
      await (trx as Kysely<RegistryTables>)
        .updateTable("devices")
        .set({ health: status })
        .where("id", "=", deviceId)
        .execute();
      return before?.health ?? null;
    };
    const previous = executor ? await record(executor) : await this.tables.transaction().execute(record);
    if (previous !== status) this.live.device(deviceId);
    return previous;
  }

  /** Stores the device's reported firmware version; true when it changed. */
  async recordFirmwareVersion(deviceId: number, version: string, executor?: Executor): Promise<boolean> {
    const updated = await this.on(executor)
      .updateTable("devices")
      .set({ firmware_version: version })
      .where("id", "=", deviceId)
      .where((eb) => eb.or([eb("firmware_version", "is", null), eb("firmware_version", "<>", version)]))
      .returning("id")
      .execute();
    const changed = updated.length > 0;
    if (changed) this.live.device(deviceId);
    return changed;
  }

  /**
   * Enrollment's last step, in one transaction: if the device still has the open window this
   * request saw before issuing (another request may have spent or closed it meanwhile), its
   * certificates are superseded, the new one is recorded and the window is closed with its token
   * spent. Of two requests racing for one token exactly one gets here first (the row is locked
   * until the commit); the other gets ENROLL_TOKEN_INVALID (or ENROLL_WINDOW_CLOSED). Returns how
   * many certificates were superseded, for `notifyRevoked` after the commit.
   */
  async spendWindow(
    uuid: string,
    seen: SeenWindow,
    issued: IssuedCertificate,
    publicKeySha256: string,
  ): Promise<number> {
    return this.tables.transaction().execute(async (trx) => {
      const current = await this.lockedRow(trx, { column: "uuid", value: uuid.toLowerCase() });
      if (!current || current.window_expires_at === null || current.window_expires_at <= this.clock())
        throw new FieldgateError("ENROLL_WINDOW_CLOSED");
      const sameWindow =
        current.window_expires_at === seen.window_expires_at && sameBytes(current.token_hash, seen.token_hash);
      if (!sameWindow)
        throw new FieldgateError("ENROLL_TOKEN_INVALID", "the window was used by another request", "token");
      const revoked = await this.certificateStore.revokeCertificates(current.id, "superseded", trx);
      await this.certificateStore.issueCertificate(current.id, issued, publicKeySha256, trx);
      await trx
        .updateTable("devices")
        .set({ window_expires_at: null, window_failed_attempts: 0, token_hash: null })
        .where("id", "=", current.id)
        .execute();
      this.live.device(current.id);
      return revoked;
    });
  }

  /**
   * Counts a wrong proof against the device's open window; the MAX_FAILED_ATTEMPTS-th closes it
   * and spends its token. One statement, so concurrent wrong proofs all count.
   */
  async countWrongProof(deviceId: number): Promise<void> {
    const closes = sql<boolean>`window_failed_attempts + 1 >= ${MAX_FAILED_ATTEMPTS}`;
    await this.tables
      .updateTable("devices")
      .set({
        window_failed_attempts: sql<number>`window_failed_attempts + 1`,
        window_expires_at: sql<number | null>`CASE WHEN ${closes} THEN NULL ELSE window_expires_at END`,
        token_hash: sql<Buffer | null>`CASE WHEN ${closes} THEN NULL ELSE token_hash END`,
      })
      .where("id", "=", deviceId)
      .execute();
  }

  /**
   * Renewal's last step, in one transaction: if `currentSerial` is still the device's current
   * certificate, it is superseded (reason "renewed") by the new one; otherwise CERT_REVOKED.
   */
  async renewCertificate(
    deviceId: number,
    currentSerial: string,
    issued: IssuedCertificate,
    publicKeySha256: string,
  ): Promise<void> {
    await this.tables.transaction().execute(async (trx) => {
      // Two renewals from one certificate: the second waits here, then finds it superseded.
      await this.lockedRow(trx, { column: "id", value: deviceId });
      if ((await this.certificateStore.currentCertificate(deviceId, trx))?.serial !== currentSerial)
        throw new FieldgateError("CERT_REVOKED", "the certificate changed meanwhile");
      await this.certificateStore.revokeCertificates(deviceId, "renewed", trx);
      await this.certificateStore.issueCertificate(deviceId, issued, publicKeySha256, trx);
    });
    this.live.device(deviceId);
  }

  /**
   * Refuses a key that any certificate of the device was issued for: the current one is about to
   * be superseded, and the others were revoked or superseded already, perhaps because it was stolen.
   */
  async assertKeyNotUsed(deviceId: number, publicKeySha256: string): Promise<void> {
    if (await this.certificateStore.keyWasCertified(deviceId, publicKeySha256)) {
      throw new FieldgateError(
        "ENROLL_KEY_REUSED",
        "a certificate of this device was already issued for this public key; generate a new key and CSR",
        "csr",
      );
    }
  }

  /** Every certificate issued to the device, newest first; the current one is marked. */
  async certificates(orgId: number, uuid: string): Promise<DeviceCertificateList> {
    const row = await this.row(orgId, uuid);
    const current = (await this.currentCertificate(row.id))?.serial;
    return {
      uuid: row.uuid,
      items: (await this.certificateStore.certificateHistory(row.id)).map((c) => ({
        serial: c.serial,
        issuedAt: new Date(c.issuedAt).toISOString(),
        notAfter: new Date(c.notAfter).toISOString(),
        current: c.serial === current,
        revokedAt: isoOrNull(c.revokedAt),
        revokeReason: c.revokeReason,
      })),
    };
  }

  /**
   * The latest health report's checks as ingest stored them (`device_state.health_json`), or
   * none before the first report. A stored report that no longer parses is served as none.
   */
  async health(orgId: number, uuid: string): Promise<DeviceHealth> {
    const row = await this.row(orgId, uuid);
    const { rows } = await sql<{ health_json: string | null; updated_at: number }>`
      SELECT health_json, updated_at FROM device_state WHERE device_id = ${row.id}`.execute(this.tables);
    const state = rows[0];
    const none: DeviceHealth = { uuid: row.uuid, status: null, reportedAt: null, receivedAt: null, checks: [] };
    if (!state?.health_json) return none;
    let report: HealthReport;
    try {
      report = JSON.parse(state.health_json) as HealthReport;
    } catch {
      return none;
    }
    if (!report || !Array.isArray(report.checks)) return none;
    const ts = typeof report.ts === "number" ? new Date(report.ts) : undefined;
    return {
      uuid: row.uuid,
      status: report.status ?? null,
      reportedAt: ts && !Number.isNaN(ts.getTime()) ? ts.toISOString() : null,
      receivedAt: new Date(state.updated_at).toISOString(),
      checks: report.checks.map((c) => ({ name: c.name, status: c.status, message: c.message ?? null })),
    };
  }

  /** The device's current certificate: the newest unrevoked one. */
  async currentCertificate(deviceId: number): Promise<StoredCertificate | undefined> {
    return this.certificateStore.currentCertificate(deviceId);
  }

  /** Whether the device holds a current certificate (it enrolled and was not revoked since). */
  async isEnrolled(deviceId: number): Promise<boolean> {
    return (await this.certificateStore.currentCertificate(deviceId)) !== undefined;
  }

  async toApi(row: DeviceRow): Promise<Device> {
    const cert = await this.currentCertificate(row.id);
    const org = await this.organization(row.org_id);
    const group = await this.groups.get(row.org_id, row.group_id);
    const type =
      row.type_id === null
        ? undefined
        : (
            await sql<{
              id: number;
              name: string;
            }>`SELECT id, name FROM device_types WHERE id = ${row.type_id}`.execute(this.tables)
          ).rows[0];
    const now = this.clock();
    const open = row.window_expires_at !== null && row.window_expires_at > now;
    return {
      uuid: row.uuid,
      organization: org.name,
      group: { id: group.id, fullName: await this.groups.fullName(row.org_id, group.path) },
      type: type ? { id: type.id, name: type.name } : null,
      firmwareVersion: row.firmware_version,
      health: row.health,
      retiredAt: row.retired_at === null ? null : new Date(row.retired_at).toISOString(),
      replacedBy: row.replaced_by,
      name: row.name,
      location: row.location,
      comment: row.comment,
      tags: JSON.parse(row.tags) as string[],
      hasFactoryKey: row.factory_public_key !== null,
      createdAt: new Date(row.created_at).toISOString(),
      online: row.online === 1,
      offlineReason: row.online === 1 ? null : row.offline_reason,
      lastSeen: row.last_seen === null ? null : new Date(row.last_seen).toISOString(),
      certificate: cert
        ? {
            serial: cert.serial,
            issuedAt: new Date(cert.issuedAt).toISOString(),
            notAfter: new Date(cert.notAfter).toISOString(),
          }
        : null,
      window: {
        open,
        expiresAt: open && row.window_expires_at !== null ? new Date(row.window_expires_at).toISOString() : null,
        failedAttempts: row.window_failed_attempts,
      },
      telemetryCount: row.telemetry_count,
    };
  }
}

/** What an unknown uuid gets; also what a device outside the caller's scope gets (AccessPolicy.requireOn). */
export function deviceNotFound(uuid: string, field = "uuid"): FieldgateError {
  return new FieldgateError("DEVICE_NOT_FOUND", `no device with uuid ${uuid}`, field);
}

/** The tags after a patch: `tags` replaces them; `addTags`/`removeTags` change the current ones. */
export function editedTags(current: readonly string[], body: PatchDeviceBody): string[] | undefined {
  const { tags, addTags = [], removeTags = [] } = body;
  if (tags !== undefined && (body.addTags !== undefined || body.removeTags !== undefined)) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      "give tags (replace them all) or addTags/removeTags, not both",
      "tags",
    );
  }
  if (tags !== undefined) return [...tags];
  if (body.addTags === undefined && body.removeTags === undefined) return undefined;
  const both = addTags.find((t) => removeTags.includes(t));
  if (both !== undefined) {
    throw new FieldgateError("VALIDATION_FAILED", `tag ${both} is both added and removed`, "removeTags");
  }
  const next = [...current.filter((t) => !removeTags.includes(t)), ...addTags.filter((t) => !current.includes(t))];
  if (next.length > MAX_DEVICE_TAGS) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `a device carries at most ${MAX_DEVICE_TAGS} tags; this would make ${next.length}: remove some first`,
      "addTags",
    );
  }
  return next;
}

function sameBytes(a: Buffer | null, b: Buffer | null): boolean {
  return a === null || b === null ? a === b : a.equals(b);
}

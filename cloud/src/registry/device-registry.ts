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
import type Database from "better-sqlite3";
import { hashSecret, newSecret } from "../credentials/secrets.js";
import { type GroupTree, groupNotFound } from "../groups/group-tree.js";
import { type LiveDeviceRef, type LiveSink, NO_LIVE } from "../live/live-feed.js";
import type { IssuedCertificate } from "../pki/certificate-authority.js";
import { CertificateStore, type StoredCertificate } from "./certificate-store.js";
import type { DeviceExportRecord } from "./device-export.js";
import {
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

/** The device registry: devices, their enrollment windows and their certificates, per organization. */
export class DeviceRegistry {
  private readonly revocationListeners: RevocationListener[] = [];
  private insertStatement: Database.Statement | undefined;
  /** Statements of the connect and enrollment paths, prepared once: a storm runs them thousands of times. */
  private readonly statements = new Map<string, Database.Statement>();
  /** The `certificates` table; only the registry uses it. */
  private readonly certificateStore: CertificateStore;

  constructor(
    private readonly db: Database.Database,
    private readonly groups: GroupTree,
    private readonly windowMs: number,
    private readonly clock: () => number = Date.now,
    /** Told of every change to a device row, for live updates. */
    private readonly live: LiveSink = NO_LIVE,
  ) {
    this.certificateStore = new CertificateStore(db, clock);
  }

  /** Where a device belongs, for the live feed; undefined once it is deleted. */
  liveRef(deviceId: number): LiveDeviceRef | undefined {
    const row = this.statement(
      "SELECT d.org_id, d.uuid, g.path FROM devices d JOIN groups g ON g.id = d.group_id WHERE d.id = ?",
    ).get(deviceId) as { org_id: number; uuid: string; path: string } | undefined;
    return row && { orgId: row.org_id, uuid: row.uuid, groupPath: row.path };
  }

  onRevocation(listener: RevocationListener): void {
    this.revocationListeners.push(listener);
  }

  ensureDefaultOrganization(): number {
    const row = this.db.prepare("SELECT id FROM organizations ORDER BY id LIMIT 1").get() as { id: number } | undefined;
    if (row) return row.id;
    return this.createOrganization("default");
  }

  /**
   * A new tenant with its root group, named like the organization. `alongside` runs in the same
   * transaction (its admin credential): a failure there leaves no organization behind.
   */
  createOrganization(name: string): number;
  createOrganization<T>(name: string, alongside: (orgId: number) => T): { orgId: number; alongside: T };
  createOrganization<T>(name: string, alongside?: (orgId: number) => T): number | { orgId: number; alongside: T } {
    return this.db.transaction(() => {
      const orgId = Number(
        this.db.prepare("INSERT INTO organizations (name, created_at) VALUES (?, ?)").run(name, this.clock())
          .lastInsertRowid,
      );
      this.groups.createRoot(orgId, name);
      return alongside ? { orgId, alongside: alongside(orgId) } : orgId;
    })();
  }

  organization(orgId: number): { id: number; name: string; uuidOnlyEnrollment: boolean } {
    const row = this.db.prepare("SELECT id, name, uuid_only_enrollment FROM organizations WHERE id = ?").get(orgId) as
      | { id: number; name: string; uuid_only_enrollment: number }
      | undefined;
    if (!row) throw new FieldgateError("NOT_FOUND", "no such organization");
    return { id: row.id, name: row.name, uuidOnlyEnrollment: row.uuid_only_enrollment === 1 };
  }

  /** The organization with this name, or undefined. */
  organizationNamed(name: string): { id: number; name: string } | undefined {
    return this.db.prepare("SELECT id, name FROM organizations WHERE name = ?").get(name) as
      | { id: number; name: string }
      | undefined;
  }

  /** Every organization, oldest first, with how many devices it has. */
  organizations(): { id: number; name: string; devices: number }[] {
    return this.db
      .prepare(
        "SELECT o.id, o.name, (SELECT count(*) FROM devices d WHERE d.org_id = o.id) AS devices FROM organizations o ORDER BY o.id",
      )
      .all() as { id: number; name: string; devices: number }[];
  }

  setUuidOnlyEnrollment(orgId: number, enabled: boolean): void {
    this.db.prepare("UPDATE organizations SET uuid_only_enrollment = ? WHERE id = ?").run(enabled ? 1 : 0, orgId);
  }

  /** Registers a device in a group and opens its first enrollment window. */
  create(orgId: number, body: CreateDeviceBody, placement: DevicePlacement): { device: Device; window: OpenedWindow } {
    const uuid = body.uuid.toLowerCase();
    const existing = this.findByUuid(uuid);
    if (existing) {
      // Another tenant's device: say only that the uuid is taken elsewhere, nothing about whom.
      if (existing.org_id !== orgId) {
        throw new FieldgateError(
          "DEVICE_OWNED_ELSEWHERE",
          `uuid ${uuid} is registered to another organization`,
          "uuid",
        );
      }
      throw new FieldgateError("DEVICE_EXISTS", `a device with uuid ${uuid} is already registered`, "uuid");
    }
    const window = this.insert(orgId, { ...body, uuid }, placement);
    return { device: this.get(orgId, uuid), window };
  }

  /**
   * Inserts a device and opens its first window, without the checks of `create` (callers that
   * checked a whole series themselves, like the bulk import, use it inside their transaction).
   * Returns the one-time token; only its hash is stored.
   */
  insert(
    orgId: number,
    fields: Omit<CreateDeviceBody, "group" | "type">,
    placement: DevicePlacement,
    telemetryCount = 0,
  ): OpenedWindow {
    const token = newSecret("fgt_");
    const expiresAt = this.clock() + this.windowMs;
    this.insertStatement ??= this.db.prepare(
      `INSERT INTO devices (uuid, org_id, group_id, type_id, name, location, comment, tags, factory_public_key, created_at,
         window_expires_at, window_failed_attempts, token_hash, telemetry_count)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
    );
    const { lastInsertRowid } = this.insertStatement.run(
      fields.uuid.toLowerCase(),
      orgId,
      placement.groupId,
      placement.typeId ?? null,
      fields.name ?? "",
      fields.location ?? "",
      fields.comment ?? "",
      JSON.stringify(fields.tags ?? []),
      fields.factoryPublicKey ?? null,
      this.clock(),
      expiresAt,
      hashSecret(token),
      telemetryCount,
    );
    this.live.device(Number(lastInsertRowid));
    return { token, expiresAt };
  }

  /** The stored row, or undefined; not scoped to an organization (enrollment and the broker use it). */
  findByUuid(uuid: string): DeviceRow | undefined {
    return this.statement("SELECT * FROM devices WHERE uuid = ?").get(uuid.toLowerCase()) as DeviceRow | undefined;
  }

  /** The stored row by its internal id, or undefined; not scoped to an organization. */
  findById(deviceId: number): DeviceRow | undefined {
    return this.statement("SELECT * FROM devices WHERE id = ?").get(deviceId) as DeviceRow | undefined;
  }

  /**
   * What the public enrollment routes need before anything is proven, always as one row of the
   * same shape (all null for an unknown uuid): a known and an unknown uuid then cost the same
   * lookup, and their closed-window answers cannot be told apart by time either.
   */
  enrollmentProbe(uuid: string): EnrollmentProbe {
    return this.statement(
      `SELECT d.id, d.uuid, d.window_expires_at, d.token_hash, d.factory_public_key
       FROM (SELECT ? AS uuid) AS q LEFT JOIN devices d ON d.uuid = q.uuid`,
    ).get(uuid.toLowerCase()) as EnrollmentProbe;
  }

  /** The device row in this organization, or DEVICE_NOT_FOUND. */
  row(orgId: number, uuid: string): DeviceRow {
    const row = this.findByUuid(uuid);
    // A device of another organization is reported exactly like a missing one.
    if (!row || row.org_id !== orgId) throw deviceNotFound(uuid);
    return row;
  }

  get(orgId: number, uuid: string): Device {
    return this.toApi(this.row(orgId, uuid));
  }

  /** The materialized path of the device's group, for access checks. */
  groupPath(row: DeviceRow): string {
    return this.groups.get(row.org_id, row.group_id).path;
  }

  /**
   * Turns API filters into resolved ones: the group reference into its row (GROUP_NOT_FOUND when
   * it does not exist, or when the caller may not see it — `visible` — so that the two read
   * alike), times into milliseconds. A group the caller sees but outside the scope of this
   * request's permission lists nothing: the scope still applies.
   */
  resolveFilters(orgId: number, query: ListDevicesQuery, visible: (groupPath: string) => boolean): DeviceFilters {
    const { lastSeenFrom, lastSeenTo } = query;
    if (lastSeenFrom && lastSeenTo && Date.parse(lastSeenFrom) > Date.parse(lastSeenTo)) {
      throw new FieldgateError("VALIDATION_FAILED", "lastSeenFrom must not be after lastSeenTo", "lastSeenFrom");
    }
    const group = query.group === undefined ? undefined : this.groups.resolve(orgId, query.group);
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
  list(
    orgId: number,
    scope: SqlScope,
    filters: DeviceFilters,
    page: { limit: number; offset: number },
  ): { items: Device[]; total: number } {
    const query = buildDeviceQuery(orgId, scope, filters);
    const total = (this.db.prepare(query.count.sql).get(...query.count.params) as { n: number }).n;
    const rows = this.db
      .prepare(`${query.select.sql} LIMIT ? OFFSET ?`)
      .all(...query.select.params, page.limit, page.offset) as DeviceRow[];
    return { items: rows.map((r) => this.toApi(r)), total };
  }

  /** Every device inside `scope` that matches `filters`, as stored rows in the filters' sort order (rollout targets). */
  matching(orgId: number, scope: SqlScope, filters: DeviceFilters): DeviceRow[] {
    const { select } = buildDeviceQuery(orgId, scope, filters);
    return this.db.prepare(select.sql).all(...select.params) as DeviceRow[];
  }

  /**
   * Every matching device as export records, a page at a time. Each page is read to its end
   * before it is handed out: the connection is shared, and a statement left open across an
   * await would block every other query.
   */
  *exportPages(
    orgId: number,
    scope: SqlScope,
    filters: DeviceFilters,
    pageSize = 1000,
  ): Generator<DeviceExportRecord[]> {
    const query = buildDeviceQuery(orgId, scope, filters);
    const groupNames = new Map<string, string>();
    let cursor: DeviceCursor | undefined;
    for (;;) {
      const statement = query.page(cursor, pageSize);
      const records: DeviceExportRecord[] = [];
      for (const row of this.db.prepare(statement.sql).iterate(...statement.params) as IterableIterator<ListedRow>) {
        let group = groupNames.get(row.group_path);
        if (group === undefined) {
          group = this.groups.fullName(orgId, row.group_path);
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

  patch(orgId: number, uuid: string, body: PatchDeviceBody, placement: Partial<DevicePlacement> = {}): Device {
    // Immediate: adding and removing tags reads the current ones, and no other writer may come between.
    return this.db.transaction(() => this.patchRow(orgId, uuid, body, placement)).immediate();
  }

  private patchRow(orgId: number, uuid: string, body: PatchDeviceBody, placement: Partial<DevicePlacement>): Device {
    const row = this.row(orgId, uuid);
    const tags = editedTags(JSON.parse(row.tags) as string[], body);
    const sets: string[] = [];
    const params: (string | number | null)[] = [];
    const assign = (column: string, value: string | number | null) => {
      sets.push(`${column} = ?`);
      params.push(value);
    };
    if (body.name !== undefined) assign("name", body.name);
    if (body.location !== undefined) assign("location", body.location);
    if (body.comment !== undefined) assign("comment", body.comment);
    if (tags !== undefined) assign("tags", JSON.stringify(tags));
    if (body.factoryPublicKey !== undefined) assign("factory_public_key", body.factoryPublicKey);
    if (placement.groupId !== undefined) assign("group_id", placement.groupId);
    if (placement.typeId !== undefined) assign("type_id", placement.typeId);
    if (sets.length > 0) {
      this.db.prepare(`UPDATE devices SET ${sets.join(", ")} WHERE id = ?`).run(...params, row.id);
      this.live.device(row.id);
    }
    return this.get(orgId, uuid);
  }

  /** Deletes the device and everything stored about it; its certificates stop working at once. */
  delete(orgId: number, uuid: string): void {
    const row = this.row(orgId, uuid);
    this.remove(row);
    this.notifyRevoked(row.uuid, "device deleted");
  }

  /**
   * Deletes a device row (and by cascade everything stored about it) inside the caller's
   * transaction; the caller calls `notifyRevoked` after the commit.
   */
  remove(row: DeviceRow): void {
    const ref = { orgId: row.org_id, uuid: row.uuid, groupPath: this.groupPath(row) };
    this.statement("DELETE FROM devices WHERE id = ?").run(row.id);
    this.live.device(row.id, ref);
  }

  /**
   * Sets the given descriptive fields and, when `typeId` is given, the type (null clears it);
   * fields left out keep their value. For callers that checked the edit themselves (bulk edit).
   */
  editFields(
    deviceId: number,
    fields: { name?: string; location?: string; comment?: string; tags?: readonly string[]; typeId?: number | null },
  ): void {
    this.statement(
      `UPDATE devices SET name = coalesce(?, name), location = coalesce(?, location), comment = coalesce(?, comment),
         tags = coalesce(?, tags), type_id = CASE WHEN ? THEN ? ELSE type_id END WHERE id = ?`,
    ).run(
      fields.name ?? null,
      fields.location ?? null,
      fields.comment ?? null,
      fields.tags ? JSON.stringify(fields.tags) : null,
      fields.typeId === undefined ? 0 : 1,
      fields.typeId ?? null,
      deviceId,
    );
    this.live.device(deviceId);
  }

  /** Files the device in another group with this type (bulk transfer checked both). */
  move(deviceId: number, placement: { groupId: number; typeId: number | null }): void {
    this.statement("UPDATE devices SET group_id = ?, type_id = ? WHERE id = ?").run(
      placement.groupId,
      placement.typeId,
      deviceId,
    );
    this.live.device(deviceId);
  }

  /** Zeroes the device's telemetry count, for a caller that just dropped its readings. */
  resetTelemetryCount(deviceId: number): void {
    this.statement("UPDATE devices SET telemetry_count = 0 WHERE id = ?").run(deviceId);
  }

  /**
   * Retires a device replaced by `replacedBy`, inside the caller's transaction: its window closes
   * with its token spent, it is marked offline, its certificates are revoked (reason "replaced")
   * and, when its history moved to the new device (`movedHistory`), its telemetry count is zeroed.
   * The caller calls `notifyRevoked` after the commit.
   */
  retire(deviceId: number, replacedBy: string, options: { movedHistory: boolean }): void {
    this.statement(
      `UPDATE devices SET retired_at = ?, replaced_by = ?, window_expires_at = NULL, token_hash = NULL, online = 0,
         telemetry_count = CASE WHEN ? THEN 0 ELSE telemetry_count END WHERE id = ?`,
    ).run(this.clock(), replacedBy, options.movedHistory ? 1 : 0, deviceId);
    this.certificateStore.revokeCertificates(deviceId, "replaced");
    this.live.device(deviceId);
  }

  /** The names of the organization's devices that start with `prefix` (taken literally). */
  namesStartingWith(orgId: number, prefix: string): string[] {
    const like = `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const rows = this.statement("SELECT name FROM devices WHERE org_id = ? AND name LIKE ? ESCAPE '\\'").all(
      orgId,
      like,
    ) as { name: string }[];
    return rows.map((r) => r.name);
  }

  /**
   * Revokes the device's certificates and opens a new window with a new one-time token. The device
   * comes back as it is once its session is dropped: offline, because it was revoked.
   */
  resetToken(orgId: number, uuid: string): { device: Device; window: OpenedWindow; revoked: number } {
    const row = this.row(orgId, uuid);
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
    const revoked = this.db.transaction(() => {
      const count = this.certificateStore.revokeCertificates(row.id, "reset-token");
      this.db
        .prepare("UPDATE devices SET window_expires_at = ?, window_failed_attempts = 0, token_hash = ? WHERE id = ?")
        .run(expiresAt, hashSecret(token), row.id);
      // The live session is dropped right after: the answer shows that state, not the one before.
      this.db
        .prepare(
          "UPDATE devices SET online = 0, presence_changed_at = ?, offline_reason = 'revoked' WHERE id = ? AND online = 1",
        )
        .run(now, row.id);
      return count;
    })();
    this.notifyRevoked(row.uuid, "reset-token");
    this.live.device(row.id);
    return { device: this.get(orgId, uuid), window: { token, expiresAt }, revoked };
  }

  /**
   * Marks every unrevoked certificate of the device revoked and returns how many were; joins the
   * caller's transaction. Live sessions are dropped by `notifyRevoked`, after the commit.
   */
  revokeCertificates(deviceId: number, reason: string): number {
    return this.certificateStore.revokeCertificates(deviceId, reason);
  }

  notifyRevoked(uuid: string, reason: string): void {
    for (const listener of this.revocationListeners) listener(uuid, reason);
  }

  /** Records presence; false when the device is gone (deleted while connected), with nothing to update. */
  setPresence(deviceId: number, online: boolean, at: number, offlineReason: string | null): boolean {
    const changed =
      this.statement(
        "UPDATE devices SET online = ?, last_seen = ?, presence_changed_at = ?, offline_reason = ? WHERE id = ?",
      ).run(online ? 1 : 0, at, at, offlineReason, deviceId).changes > 0;
    if (changed) this.live.device(deviceId);
    return changed;
  }

  /**
   * Up to `limit` devices whose type has a keep-alive of M minutes (of `minuteMs`) and that sent
   * nothing for M minutes at `now`, not yet alerted for this silence (never-seen devices are not
   * watched). For the keep-alive monitor.
   */
  silentDevices(
    minuteMs: number,
    now: number,
    limit: number,
  ): { id: number; uuid: string; orgId: number; lastSeen: number; keepaliveMinutes: number }[] {
    const rows = this.statement(
      `SELECT d.id, d.uuid, d.org_id, d.last_seen, t.keepalive_minutes
       FROM devices d JOIN device_types t ON t.id = d.type_id
       WHERE t.keepalive_minutes IS NOT NULL AND d.last_seen IS NOT NULL
         AND d.last_seen + t.keepalive_minutes * ? <= ?
         AND (d.keepalive_alerted_at IS NULL OR d.keepalive_alerted_at <= d.last_seen)
       LIMIT ?`,
    ).all(minuteMs, now, limit) as {
      id: number;
      uuid: string;
      org_id: number;
      last_seen: number;
      keepalive_minutes: number;
    }[];
    return rows.map((r) => ({
      id: r.id,
      uuid: r.uuid,
      orgId: r.org_id,
      lastSeen: r.last_seen,
      keepaliveMinutes: r.keepalive_minutes,
    }));
  }

  /** Marks the device's current silence alerted: it raises one KEEPALIVE_MISSED until it speaks again. */
  markKeepaliveAlerted(deviceId: number, at: number): void {
    this.statement("UPDATE devices SET keepalive_alerted_at = ? WHERE id = ?").run(at, deviceId);
  }

  /** Per type id given, how many devices have that type (types no device uses are left out). */
  deviceCountsByType(typeIds: readonly number[]): Map<number, number> {
    const counts = new Map<number, number>();
    // Bound parameters per statement are limited; an organization has far fewer types than this.
    for (let start = 0; start < typeIds.length; start += 500) {
      const chunk = typeIds.slice(start, start + 500);
      const rows = this.db
        .prepare(
          `SELECT type_id, count(*) AS n FROM devices WHERE type_id IN (${chunk.map(() => "?").join(",")}) GROUP BY type_id`,
        )
        .all(...chunk) as { type_id: number; n: number }[];
      for (const r of rows) counts.set(r.type_id, r.n);
    }
    return counts;
  }

  /** Moves the device's last sign of life forward to `at` (never back). */
  markSeen(deviceId: number, at: number): void {
    this.statement("UPDATE devices SET last_seen = max(coalesce(last_seen, 0), ?) WHERE id = ?").run(at, deviceId);
  }

  /** Stores the device's reported health status (the copy lists filter on); returns the one before. */
  recordHealth(deviceId: number, status: string): string | null {
    const before = this.statement("SELECT health FROM devices WHERE id = ?").get(deviceId) as
      | { health: string | null }
      | undefined;
    this.statement("UPDATE devices SET health = ? WHERE id = ?").run(status, deviceId);
    const previous = before?.health ?? null;
    if (previous !== status) this.live.device(deviceId);
    return previous;
  }

  /** Stores the device's reported firmware version; true when it changed. */
  recordFirmwareVersion(deviceId: number, version: string): boolean {
    const changed =
      this.statement("UPDATE devices SET firmware_version = ? WHERE id = ? AND firmware_version IS NOT ?").run(
        version,
        deviceId,
        version,
      ).changes > 0;
    if (changed) this.live.device(deviceId);
    return changed;
  }

  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /**
   * Enrollment's last step, in one transaction: if the device still has the open window this
   * request saw before issuing (another request may have spent or closed it meanwhile), its
   * certificates are superseded, the new one is recorded and the window is closed with its token
   * spent. Of two requests racing for one token exactly one gets here first; the other gets
   * ENROLL_TOKEN_INVALID (or ENROLL_WINDOW_CLOSED). Returns how many certificates were superseded,
   * for `notifyRevoked` after the commit.
   */
  spendWindow(uuid: string, seen: SeenWindow, issued: IssuedCertificate, publicKeySha256: string): number {
    return this.db.transaction(() => {
      const current = this.findByUuid(uuid);
      if (!current || current.window_expires_at === null || current.window_expires_at <= this.clock())
        throw new FieldgateError("ENROLL_WINDOW_CLOSED");
      const sameWindow =
        current.window_expires_at === seen.window_expires_at && sameBytes(current.token_hash, seen.token_hash);
      if (!sameWindow)
        throw new FieldgateError("ENROLL_TOKEN_INVALID", "the window was used by another request", "token");
      const revoked = this.certificateStore.revokeCertificates(current.id, "superseded");
      this.certificateStore.issueCertificate(current.id, issued, publicKeySha256);
      this.statement(
        "UPDATE devices SET window_expires_at = NULL, window_failed_attempts = 0, token_hash = NULL WHERE id = ?",
      ).run(current.id);
      this.live.device(current.id);
      return revoked;
    })();
  }

  /**
   * Counts a wrong proof against the device's open window; the MAX_FAILED_ATTEMPTS-th closes it
   * and spends its token. One statement, so concurrent wrong proofs all count.
   */
  countWrongProof(deviceId: number): void {
    this.statement(
      `UPDATE devices SET window_failed_attempts = window_failed_attempts + 1,
         window_expires_at = CASE WHEN window_failed_attempts + 1 >= ? THEN NULL ELSE window_expires_at END,
         token_hash = CASE WHEN window_failed_attempts + 1 >= ? THEN NULL ELSE token_hash END
       WHERE id = ?`,
    ).run(MAX_FAILED_ATTEMPTS, MAX_FAILED_ATTEMPTS, deviceId);
  }

  /**
   * Renewal's last step, in one transaction: if `currentSerial` is still the device's current
   * certificate, it is superseded (reason "renewed") by the new one; otherwise CERT_REVOKED.
   */
  renewCertificate(deviceId: number, currentSerial: string, issued: IssuedCertificate, publicKeySha256: string): void {
    this.db.transaction(() => {
      if (this.certificateStore.currentCertificate(deviceId)?.serial !== currentSerial)
        throw new FieldgateError("CERT_REVOKED", "the certificate changed meanwhile");
      this.certificateStore.revokeCertificates(deviceId, "renewed");
      this.certificateStore.issueCertificate(deviceId, issued, publicKeySha256);
    })();
    this.live.device(deviceId);
  }

  /**
   * Refuses a key that any certificate of the device was issued for: the current one is about to
   * be superseded, and the others were revoked or superseded already, perhaps because it was stolen.
   */
  assertKeyNotUsed(deviceId: number, publicKeySha256: string): void {
    if (this.certificateStore.keyWasCertified(deviceId, publicKeySha256)) {
      throw new FieldgateError(
        "ENROLL_KEY_REUSED",
        "a certificate of this device was already issued for this public key; generate a new key and CSR",
        "csr",
      );
    }
  }

  /** Every certificate issued to the device, newest first; the current one is marked. */
  certificates(orgId: number, uuid: string): DeviceCertificateList {
    const row = this.row(orgId, uuid);
    const current = this.currentCertificate(row.id)?.serial;
    return {
      uuid: row.uuid,
      items: this.certificateStore.certificateHistory(row.id).map((c) => ({
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
  health(orgId: number, uuid: string): DeviceHealth {
    const row = this.row(orgId, uuid);
    const state = this.statement("SELECT health_json, updated_at FROM device_state WHERE device_id = ?").get(row.id) as
      | { health_json: string | null; updated_at: number }
      | undefined;
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
  currentCertificate(deviceId: number): StoredCertificate | undefined {
    return this.certificateStore.currentCertificate(deviceId);
  }

  /** Whether the device holds a current certificate (it enrolled and was not revoked since). */
  isEnrolled(deviceId: number): boolean {
    return this.certificateStore.currentCertificate(deviceId) !== undefined;
  }

  toApi(row: DeviceRow): Device {
    const cert = this.currentCertificate(row.id);
    const org = this.organization(row.org_id);
    const group = this.groups.get(row.org_id, row.group_id);
    const type =
      row.type_id === null
        ? undefined
        : (this.db.prepare("SELECT id, name FROM device_types WHERE id = ?").get(row.type_id) as
            | { id: number; name: string }
            | undefined);
    const now = this.clock();
    const open = row.window_expires_at !== null && row.window_expires_at > now;
    return {
      uuid: row.uuid,
      organization: org.name,
      group: { id: group.id, fullName: this.groups.fullName(row.org_id, group.path) },
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

  /**
   * The storage, window length and clock the registry uses, for the bulk series: they write
   * thousands of devices in batched transactions with their own prepared statements, and must open
   * the same windows as `create`.
   */
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

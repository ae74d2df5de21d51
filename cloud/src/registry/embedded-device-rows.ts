import type { CreateDeviceBody } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import { hashSecret, newSecret } from "../credentials/secrets.js";
import type { DeviceTypeUsage } from "../device-types/device-types.js";
import type { KeepaliveDevices, SilentDevice } from "../keepalive/keepalive-monitor.js";
import type { LiveDeviceRef, LiveSink } from "../live/live-feed.js";
import type { DevicePlacement, DeviceRow, OpenedWindow } from "./device-registry.js";

/**
 * TRANSITIONAL (issue #14): the registry's methods that consumers not yet async call inside their
 * synchronous better-sqlite3 transactions (DeviceTypes, KeepaliveMonitor, Rollouts, BulkOperations),
 * on the embedded handle, with the SQL they had before. Delete this file once those consumers await
 * the DeviceRegistry methods of the same names (with `executor` for their transactions).
 */
export class EmbeddedDeviceRows implements DeviceTypeUsage, KeepaliveDevices {
  constructor(
    private readonly db: Database.Database,
    private readonly windowMs: number = 0,
    private readonly clock: () => number = Date.now,
    private readonly live?: LiveSink,
  ) {}

  /** Prepared once: the bulk series runs these thousands of times. */
  private readonly statements = new Map<string, Database.Statement>();

  private statement(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  findByUuid(uuid: string): DeviceRow | undefined {
    return this.statement("SELECT * FROM devices WHERE uuid = ?").get(uuid.toLowerCase()) as DeviceRow | undefined;
  }

  insert(
    orgId: number,
    fields: Omit<CreateDeviceBody, "group" | "type">,
    placement: DevicePlacement,
    telemetryCount = 0,
  ): OpenedWindow {
    const token = newSecret("fgt_");
    const expiresAt = this.clock() + this.windowMs;
    const { lastInsertRowid } = this.statement(
      `INSERT INTO devices (uuid, org_id, group_id, type_id, name, location, comment, tags, factory_public_key, created_at,
           window_expires_at, window_failed_attempts, token_hash, telemetry_count)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
    ).run(
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
    this.live?.device(Number(lastInsertRowid));
    return { token, expiresAt };
  }

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
    this.live?.device(deviceId);
  }

  move(deviceId: number, placement: { groupId: number; typeId: number | null }): void {
    this.statement("UPDATE devices SET group_id = ?, type_id = ? WHERE id = ?").run(
      placement.groupId,
      placement.typeId,
      deviceId,
    );
    this.live?.device(deviceId);
  }

  resetTelemetryCount(deviceId: number): void {
    this.statement("UPDATE devices SET telemetry_count = 0 WHERE id = ?").run(deviceId);
  }

  retire(deviceId: number, replacedBy: string, options: { movedHistory: boolean }): void {
    this.statement(
      `UPDATE devices SET retired_at = ?, replaced_by = ?, window_expires_at = NULL, token_hash = NULL, online = 0,
           telemetry_count = CASE WHEN ? THEN 0 ELSE telemetry_count END WHERE id = ?`,
    ).run(this.clock(), replacedBy, options.movedHistory ? 1 : 0, deviceId);
    this.statement(
      "UPDATE certificates SET revoked_at = ?, revoke_reason = ? WHERE device_id = ? AND revoked_at IS NULL",
    ).run(this.clock(), "replaced", deviceId);
    this.live?.device(deviceId);
  }

  remove(row: DeviceRow): void {
    const ref = this.statement(
      "SELECT d.org_id, d.uuid, g.path FROM devices d JOIN groups g ON g.id = d.group_id WHERE d.id = ?",
    ).get(row.id) as { org_id: number; uuid: string; path: string } | undefined;
    this.statement("DELETE FROM devices WHERE id = ?").run(row.id);
    const live: LiveDeviceRef | undefined = ref && { orgId: ref.org_id, uuid: ref.uuid, groupPath: ref.path };
    if (live) this.live?.device(row.id, live);
  }

  namesStartingWith(orgId: number, prefix: string): string[] {
    const like = `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const rows = this.statement("SELECT name FROM devices WHERE org_id = ? AND name LIKE ? ESCAPE '\\'").all(
      orgId,
      like,
    ) as { name: string }[];
    return rows.map((r) => r.name);
  }

  deviceCountsByType(typeIds: readonly number[]): Map<number, number> {
    const counts = new Map<number, number>();
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

  silentDevices(minuteMs: number, now: number, limit: number): SilentDevice[] {
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

  findById(deviceId: number): DeviceRow | undefined {
    return this.statement("SELECT * FROM devices WHERE id = ?").get(deviceId) as DeviceRow | undefined;
  }

  markKeepaliveAlerted(deviceId: number, at: number): void {
    this.statement("UPDATE devices SET keepalive_alerted_at = ? WHERE id = ?").run(at, deviceId);
  }
}

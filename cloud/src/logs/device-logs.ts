import {
  type DeviceLogPage,
  type DeviceLogQuery,
  type LogBatch,
  type LogLevelName,
  levelsAtLeast,
} from "@fieldgate/shared";
import type { Kysely } from "kysely";
import type { CloudDatabase, Executor } from "../storage/cloud-database.js";
import { readRows, storedIso } from "../storage/stored-row.js";
import type { LogTables } from "./log-tables.js";

/**
 * The log lines devices forwarded: stores them (for ingest) and reads them. Entries are ordered by
 * `id`, the order of arrival, so `after` is a cursor that never skips a line, whatever the device
 * clocks say.
 */
export class DeviceLogs {
  private readonly db: Kysely<LogTables>;

  constructor(database: CloudDatabase) {
    this.db = database.kysely.withTables<LogTables>();
  }

  /**
   * Stores a batch's lines, all or none. A named batch seen before is a resend (its PUBACK was
   * lost, or the agent restarted): stored once; false then.
   */
  async store(deviceId: number, batch: LogBatch, receivedAt: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      if (batch.stream !== undefined && batch.seq !== undefined) {
        const claimed = await trx
          .insertInto("log_batches")
          .values({ device_id: deviceId, stream: batch.stream, seq: batch.seq, received_at: receivedAt })
          .onConflict((oc) => oc.doNothing())
          .returning("seq")
          .executeTakeFirst();
        if (!claimed) return false;
      }
      if (batch.entries.length > 0) {
        await trx
          .insertInto("device_logs")
          .values(batch.entries.map((e) => ({ device_id: deviceId, ts: e.ts, level: e.level, msg: e.msg })))
          .execute();
      }
      return true;
    });
  }

  /**
   * With `after` or `since`: the oldest matching entries first (for following); otherwise the
   * newest `limit` entries, newest first. `nextAfter` is the cursor for the next poll.
   */
  async query(device: { id: number; uuid: string }, q: DeviceLogQuery): Promise<DeviceLogPage> {
    const ascending = q.after !== undefined || q.since !== undefined;
    let select = this.db
      .selectFrom("device_logs")
      .select(["id", "ts", "level", "msg"])
      .where("device_id", "=", device.id);
    if (q.level && q.level !== "trace") select = select.where("level", "in", levelsAtLeast(q.level));
    if (q.since) select = select.where("ts", ">=", Date.parse(q.since));
    if (q.until) select = select.where("ts", "<", Date.parse(q.until));
    if (q.after !== undefined) select = select.where("id", ">", q.after);
    const rows = await select
      .orderBy("id", ascending ? "asc" : "desc")
      .limit(q.limit ?? 100)
      .execute();
    const newest = ascending ? rows[rows.length - 1] : rows[0];
    const { items, skipped } = readRows(rows, (r) => {
      const ts = storedIso(r.ts);
      return ts === undefined ? undefined : { id: r.id, ts, level: r.level as LogLevelName, msg: r.msg };
    });
    return {
      uuid: device.uuid,
      items,
      ...(skipped > 0 ? { skipped } : {}),
      nextAfter: newest?.id ?? Math.max(q.after ?? 0, await this.newestId(device.id)),
    };
  }

  /** Hands a device's log lines to another device (a replacement keeping the history). */
  async moveHistory(fromDeviceId: number, toDeviceId: number, executor?: Executor): Promise<void> {
    await this.on(executor)
      .updateTable("device_logs")
      .set({ device_id: toDeviceId })
      .where("device_id", "=", fromDeviceId)
      .execute();
  }

  /** Forgets a device's log lines. */
  async deleteHistory(deviceId: number, executor?: Executor): Promise<void> {
    await this.on(executor).deleteFrom("device_logs").where("device_id", "=", deviceId).execute();
  }

  /** The caller's transaction when given, else this store's own handle. */
  private on(executor: Executor | undefined): Kysely<LogTables> {
    return executor ?? this.db;
  }

  private async newestId(deviceId: number): Promise<number> {
    const row = await this.db
      .selectFrom("device_logs")
      .select((eb) => eb.fn.max("id").as("id"))
      .where("device_id", "=", deviceId)
      .executeTakeFirst();
    return row?.id ?? 0;
  }
}

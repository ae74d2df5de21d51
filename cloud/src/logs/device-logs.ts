import { type DeviceLogPage, type DeviceLogQuery, type LogLevelName, levelsAtLeast } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import { readRows, storedIso } from "../storage/stored-row.js";

interface LogRow {
  id: number;
  ts: number;
  level: LogLevelName;
  msg: string;
}

/**
 * Reads the log lines devices forwarded (ingest writes them). Entries are ordered by `id`, the
 * order of arrival, so `after` is a cursor that never skips a line, whatever the device clocks say.
 */
export class DeviceLogs {
  private readonly maxId: Database.Statement<[number], { id: number | null }>;

  constructor(private readonly db: Database.Database) {
    this.maxId = db.prepare("SELECT max(id) AS id FROM device_logs WHERE device_id = ?");
  }

  /**
   * With `after` or `since`: the oldest matching entries first (for following); otherwise the
   * newest `limit` entries, newest first. `nextAfter` is the cursor for the next poll.
   */
  query(device: { id: number; uuid: string }, q: DeviceLogQuery): DeviceLogPage {
    const where = ["device_id = ?"];
    const args: (number | string)[] = [device.id];
    if (q.level && q.level !== "trace") {
      const levels = levelsAtLeast(q.level);
      where.push(`level IN (${levels.map(() => "?").join(", ")})`);
      args.push(...levels);
    }
    if (q.since) {
      where.push("ts >= ?");
      args.push(Date.parse(q.since));
    }
    if (q.until) {
      where.push("ts < ?");
      args.push(Date.parse(q.until));
    }
    if (q.after !== undefined) {
      where.push("id > ?");
      args.push(q.after);
    }
    const ascending = q.after !== undefined || q.since !== undefined;
    const limit = q.limit ?? 100;
    const rows = this.db
      .prepare(
        `SELECT id, ts, level, msg FROM device_logs WHERE ${where.join(" AND ")} ORDER BY id ${ascending ? "ASC" : "DESC"} LIMIT ?`,
      )
      .all(...args, limit) as LogRow[];
    const newest = ascending ? rows[rows.length - 1] : rows[0];
    const { items, skipped } = readRows(rows, (r) => {
      const ts = storedIso(r.ts);
      return ts === undefined ? undefined : { id: r.id, ts, level: r.level, msg: r.msg };
    });
    return {
      uuid: device.uuid,
      items,
      ...(skipped > 0 ? { skipped } : {}),
      nextAfter: newest?.id ?? Math.max(q.after ?? 0, this.maxId.get(device.id)?.id ?? 0),
    };
  }
}

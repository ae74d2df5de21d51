import type { TelemetryPage } from "@fieldgate/shared";
import { type RawBuilder, sql } from "kysely";
import type { CloudDatabase } from "../storage/cloud-database.js";
import { readRows, storedIso } from "../storage/stored-row.js";

/** One reading as the API shows it. */
export type StoredReading = TelemetryPage["items"][number];

/** The filters of a telemetry read; `to` is exclusive. */
export interface TelemetryFilters {
  from?: string;
  to?: string;
  name?: string;
  source?: string;
}

interface TelemetryRow {
  /** The arrival order among readings of one millisecond. */
  id: number;
  ts: number;
  name: string;
  /** SQLite's one column; PostgreSQL's two, by kind. */
  value?: number | string | null;
  value_number?: number | null;
  value_text?: string | null;
  kind: number;
  unit: string | null;
  source: string | null;
  stream: string;
  seq: number;
}

/**
 * Reads stored telemetry (the writer stores it). Readings of the same millisecond keep their order
 * of arrival: SQLite's rowid, PostgreSQL's identity.
 */
export class TelemetryReader {
  private readonly arrival: RawBuilder<unknown>;
  private readonly columns: RawBuilder<unknown>;

  constructor(private readonly database: CloudDatabase) {
    const sqlite = database.dialect === "sqlite";
    this.arrival = sqlite ? sql`rowid` : sql`id`;
    this.columns = sqlite
      ? sql`rowid AS id, ts, name, value, kind, unit, source, stream, seq`
      : sql`id, ts, name, value_number, value_text, kind, unit, source, stream, seq`;
  }

  /** The device's newest readings in the range, newest first; `count` is what the device row says was stored. */
  async telemetry(
    device: { id: number; uuid: string; telemetry_count: number },
    query: TelemetryFilters & { limit?: number },
  ): Promise<TelemetryPage> {
    const { rows } = await sql<TelemetryRow>`SELECT ${this.columns} FROM telemetry WHERE ${this.where(device.id, query)}
      ORDER BY ts DESC, ${this.arrival} DESC LIMIT ${query.limit ?? 1000}`.execute(this.database.kysely);
    const { items, skipped } = readRows(rows, readingOf);
    return { uuid: device.uuid, count: device.telemetry_count, items, ...(skipped > 0 ? { skipped } : {}) };
  }

  /**
   * Every reading of the device in the range, oldest first, as pages of `pageSize`: each page is one
   * keyset query, done with before the page is handed on, so no connection is held between pages
   * and memory holds one page whatever the range. Lazy: a page is read only when the consumer asks
   * for it (a streamed answer, as fast as the client takes it).
   */
  async *pages(deviceId: number, query: TelemetryFilters, pageSize = 1000): AsyncGenerator<StoredReading[]> {
    let cursor: { ts: number; id: number } | undefined;
    for (;;) {
      const after = cursor ? sql`AND (ts, ${this.arrival}) > (${cursor.ts}, ${cursor.id})` : sql``;
      const { rows } = await sql<TelemetryRow>`SELECT ${this.columns} FROM telemetry
        WHERE ${this.where(deviceId, query)} ${after} ORDER BY ts, ${this.arrival} LIMIT ${pageSize}`.execute(
        this.database.kysely,
      );
      const last = rows[rows.length - 1];
      if (last) cursor = { ts: last.ts, id: last.id };
      const page = readRows(rows, readingOf).items;
      if (page.length > 0) yield page;
      if (rows.length < pageSize) return;
    }
  }

  private where(deviceId: number, query: TelemetryFilters): RawBuilder<unknown> {
    const conditions = [sql`device_id = ${deviceId}`];
    if (query.from) conditions.push(sql`ts >= ${Date.parse(query.from)}`);
    if (query.to) conditions.push(sql`ts < ${Date.parse(query.to)}`);
    if (query.name) conditions.push(sql`name = ${query.name}`);
    if (query.source) conditions.push(sql`source = ${query.source}`);
    return sql.join(conditions, sql` AND `);
  }
}

/** A stored reading as the API shows it, or undefined for a row no reader can show. */
function readingOf(r: TelemetryRow): StoredReading | undefined {
  const ts = storedIso(r.ts);
  const stored = r.value !== undefined ? r.value : r.kind === 1 ? r.value_text : r.value_number;
  const value = r.kind === 2 ? stored === 1 : stored;
  if (
    ts === undefined ||
    value === null ||
    value === undefined ||
    (typeof value === "number" && !Number.isFinite(value))
  )
    return undefined;
  if (!Number.isSafeInteger(r.seq)) return undefined;
  return { ts, name: r.name, value, unit: r.unit, source: r.source, stream: r.stream, seq: r.seq };
}

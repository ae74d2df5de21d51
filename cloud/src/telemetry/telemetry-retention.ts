import { type Kysely, sql } from "kysely";
import type { Logger } from "pino";
import { affectedRows, type CloudDatabase } from "../storage/cloud-database.js";
import type { TelemetryTables } from "./telemetry-tables.js";

const DAY_MS = 86_400_000;
const WEEK_MS = 7 * DAY_MS;
/** PostgreSQL: partitions exist at least this far ahead of now, so a reading never waits for one. */
const AHEAD_MS = 2 * WEEK_MS;
/** SQLite deletes in chunks so ingest never waits long for the write lock. */
const CHUNK = 10_000;
/** The lock two cloud processes take before changing the partitions of one database. */
const PARTITION_LOCK_KEY = 0x74656c65; // "tele"

/** Settings of the telemetry upkeep. */
export interface TelemetryRetentionOptions {
  /** Readings older than this go; undefined keeps them for ever. */
  retentionMs?: number;
  /** How often to run; hourly by default. */
  intervalMs?: number;
  clock?: () => number;
}

/** What one run did. */
export interface TelemetryUpkeep {
  /** PostgreSQL: partitions created (readings already in their range moved in). */
  created: string[];
  /** PostgreSQL: partitions dropped by the retention. */
  dropped: string[];
  /** SQLite: readings deleted by the retention. */
  deleted: number;
}

/** Monday 00:00 UTC of the week holding `ts`. */
export function weekStart(ts: number): number {
  const day = Math.floor(ts / DAY_MS);
  // 1970-01-01 was a Thursday: day 0 is 3 days after a Monday.
  return (day - ((day + 3) % 7)) * DAY_MS;
}

/** `telemetry_YYYYMMDD`, named by the week's Monday. */
export function partitionName(from: number): string {
  return `telemetry_${new Date(from).toISOString().slice(0, 10).replaceAll("-", "")}`;
}

/**
 * Keeps telemetry within its retention. On PostgreSQL the table is range-partitioned by `ts` in
 * weeks: this creates the partitions ahead of time (a reading outside every one lands in the
 * DEFAULT partition `telemetry_outside` and is kept) and drops whole partitions past the
 * retention instead of deleting rows. On SQLite it deletes old readings in bounded batches.
 * The device rows' telemetry counts stay what was stored, as before any retention.
 */
export class TelemetryRetention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly db: Kysely<TelemetryTables>;
  private readonly clock: () => number;
  readonly intervalMs: number;

  constructor(
    private readonly database: CloudDatabase,
    private readonly options: TelemetryRetentionOptions = {},
    private readonly logger?: Logger,
  ) {
    this.db = database.kysely.withTables<TelemetryTables>();
    this.clock = options.clock ?? Date.now;
    this.intervalMs = options.intervalMs ?? 3_600_000;
  }

  /** Runs once now (partitions must exist before readings arrive), then on the timer. */
  async start(): Promise<void> {
    if (this.timer) return;
    await this.run();
    this.timer = setInterval(() => this.runSafely(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer; resolves once a run in progress is done, so the database can close. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /** One run: partitions ahead, then the retention. */
  async run(): Promise<TelemetryUpkeep> {
    const now = this.clock();
    const cutoff = this.options.retentionMs === undefined ? undefined : now - this.options.retentionMs;
    if (this.database.dialect === "sqlite") {
      return { created: [], dropped: [], deleted: cutoff === undefined ? 0 : await this.deleteBefore(cutoff) };
    }
    const created = await this.createAhead(now);
    const dropped = cutoff === undefined ? [] : await this.dropBefore(cutoff);
    return { created, dropped, deleted: 0 };
  }

  private runSafely(): void {
    if (!this.timer || this.running) return;
    const run = this.run()
      .then((upkeep) => {
        if (upkeep.created.length + upkeep.dropped.length + upkeep.deleted > 0) {
          this.logger?.info(upkeep, "telemetry partitions and retention");
        }
      })
      .catch((err: Error) => {
        if (this.timer) this.logger?.error({ err: err.message }, "telemetry upkeep failed");
      })
      .finally(() => {
        this.running = undefined;
      });
    this.running = run;
  }

  private async deleteBefore(cutoff: number): Promise<number> {
    let deleted = 0;
    for (;;) {
      const result = await sql`DELETE FROM telemetry WHERE rowid IN
          (SELECT rowid FROM telemetry WHERE ts < ${cutoff} LIMIT ${CHUNK})`.execute(this.db);
      const n = Number(result.numAffectedRows ?? 0n);
      deleted += n;
      if (n < CHUNK) return deleted;
    }
  }

  /** Each week from this one to AHEAD_MS on that has no partition yet gets one. */
  private async createAhead(now: number): Promise<string[]> {
    const known = new Set(
      (await this.db.selectFrom("telemetry_partitions").select("name").execute()).map((r) => r.name),
    );
    const created: string[] = [];
    for (let from = weekStart(now); from <= now + AHEAD_MS; from += WEEK_MS) {
      const name = partitionName(from);
      if (!known.has(name) && (await this.createPartition(name, from, from + WEEK_MS))) created.push(name);
    }
    return created;
  }

  /**
   * One transaction: readings of the range already in the DEFAULT partition move into the new
   * table before it is attached (PostgreSQL refuses to attach over rows the default holds).
   */
  private createPartition(name: string, from: number, to: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      await sql`SELECT pg_advisory_xact_lock(${PARTITION_LOCK_KEY})`.execute(trx);
      const exists = await trx
        .selectFrom("telemetry_partitions")
        .select("name")
        .where("name", "=", name)
        .executeTakeFirst();
      if (exists) return false;
      const table = sql.table(name);
      await sql`CREATE TABLE ${table} (LIKE telemetry INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`.execute(trx);
      await sql`INSERT INTO ${table} SELECT * FROM telemetry_outside WHERE ts >= ${from} AND ts < ${to}`.execute(trx);
      await sql`DELETE FROM telemetry_outside WHERE ts >= ${from} AND ts < ${to}`.execute(trx);
      await sql`ALTER TABLE telemetry ATTACH PARTITION ${table} FOR VALUES FROM (${sql.lit(from)}) TO (${sql.lit(to)})`.execute(
        trx,
      );
      await trx.insertInto("telemetry_partitions").values({ name, from_ts: from, to_ts: to }).execute();
      return true;
    });
  }

  /** Drops every partition wholly older than the cutoff. */
  private async dropBefore(cutoff: number): Promise<string[]> {
    const old = await this.db
      .selectFrom("telemetry_partitions")
      .select("name")
      .where("to_ts", "<=", cutoff)
      .orderBy("from_ts")
      .execute();
    const dropped: string[] = [];
    for (const { name } of old) {
      await this.db.transaction().execute(async (trx) => {
        await sql`SELECT pg_advisory_xact_lock(${PARTITION_LOCK_KEY})`.execute(trx);
        const gone = await trx.deleteFrom("telemetry_partitions").where("name", "=", name).executeTakeFirst();
        if (affectedRows(gone) === 0) return;
        await sql`DROP TABLE IF EXISTS ${sql.table(name)}`.execute(trx);
        dropped.push(name);
      });
    }
    return dropped;
  }
}

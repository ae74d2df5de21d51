import { type Kysely, sql } from "kysely";
import type { Logger } from "pino";
import { affectedRows, type CloudDatabase } from "../storage/cloud-database.js";
import type { LogTables } from "./log-tables.js";

/** Settings of the log retention. */
export interface LogRetentionOptions {
  /** Entries with a device timestamp older than this are deleted. */
  retentionMs: number;
  /** Newest entries kept per device; older ones go even within the retention. */
  maxRowsPerDevice?: number;
  /** How often to purge; default a tenth of the retention, between 1 s and 1 h. */
  intervalMs?: number;
  clock?: () => number;
}

/** What one purge removed. */
export interface PurgeResult {
  expired: number;
  capped: number;
}

/** The per-device cap when none is configured. */
export const DEFAULT_MAX_LOG_ROWS_PER_DEVICE = 100_000;
/** Deletes run in chunks so ingest never waits long for the write lock. */
const CHUNK = 10_000;

/**
 * Keeps `device_logs` bounded: by age (`--log-retention`) and by count per device, so a chatty
 * device cannot fill the disk within the retention. Runs on a timer with start/stop.
 */
export class LogRetention {
  private timer: NodeJS.Timeout | undefined;
  private purging: Promise<void> | undefined;
  private readonly db: Kysely<LogTables>;
  private readonly clock: () => number;
  readonly intervalMs: number;
  readonly maxRowsPerDevice: number;

  constructor(
    database: CloudDatabase,
    private readonly options: LogRetentionOptions,
    private readonly logger?: Logger,
  ) {
    this.db = database.kysely.withTables<LogTables>();
    this.clock = options.clock ?? Date.now;
    this.maxRowsPerDevice = options.maxRowsPerDevice ?? DEFAULT_MAX_LOG_ROWS_PER_DEVICE;
    this.intervalMs = options.intervalMs ?? Math.min(3_600_000, Math.max(1000, Math.round(options.retentionMs / 10)));
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.runSafely(), this.intervalMs);
    this.timer.unref();
    // A cloud that was down for a while purges at once rather than an interval later.
    setImmediate(() => this.runSafely());
  }

  /** Stops the timer; resolves once a purge in progress is done, so the database can close. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.purging;
  }

  /** One purge: expired entries, then each device's excess over the cap. */
  async purge(): Promise<PurgeResult> {
    const cutoff = this.clock() - this.options.retentionMs;
    let expired = 0;
    for (;;) {
      const n = affectedRows(
        await this.db
          .deleteFrom("device_logs")
          .where("id", "in", (eb) =>
            eb.selectFrom("device_logs").select("id").where("ts", "<", cutoff).orderBy("ts").limit(CHUNK),
          )
          .executeTakeFirst(),
      );
      expired += n;
      if (n < CHUNK) break;
    }
    // A resend comes within minutes of the original (a lost PUBACK, a restart); a key older than the
    // retention guards nothing.
    for (;;) {
      const result = await sql`DELETE FROM log_batches WHERE (device_id, stream, seq) IN
          (SELECT device_id, stream, seq FROM log_batches WHERE received_at < ${cutoff} LIMIT ${CHUNK})`.execute(
        this.db,
      );
      if (Number(result.numAffectedRows ?? 0n) < CHUNK) break;
    }
    let capped = 0;
    const overCap = await this.db
      .selectFrom("device_logs")
      .select("device_id")
      .groupBy("device_id")
      .having((eb) => eb.fn.countAll(), ">", this.maxRowsPerDevice)
      .execute();
    for (const { device_id } of overCap) {
      // The newest row beyond the cap; it and everything older go.
      const edge = await this.db
        .selectFrom("device_logs")
        .select("id")
        .where("device_id", "=", device_id)
        .orderBy("id", "desc")
        .limit(1)
        .offset(this.maxRowsPerDevice)
        .executeTakeFirst();
      if (edge) {
        capped += affectedRows(
          await this.db
            .deleteFrom("device_logs")
            .where("device_id", "=", device_id)
            .where("id", "<=", edge.id)
            .executeTakeFirst(),
        );
      }
    }
    return { expired, capped };
  }

  private runSafely(): void {
    // One purge at a time: a slow one is not overtaken by the next tick.
    if (!this.timer || this.purging) return;
    this.purging = this.purge()
      .then((result) => {
        if (result.expired + result.capped > 0) this.logger?.info(result, "purged old device log entries");
      })
      .catch((err: Error) => {
        if (this.timer) this.logger?.error({ err: err.message }, "log retention purge failed");
      })
      .finally(() => {
        this.purging = undefined;
      });
  }
}

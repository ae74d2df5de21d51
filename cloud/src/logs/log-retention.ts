import type Database from "better-sqlite3";
import type { Logger } from "pino";

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
  private readonly expire: Database.Statement<[number, number]>;
  private readonly overCap: Database.Statement<[number], { device_id: number }>;
  private readonly threshold: Database.Statement<[number, number], { id: number }>;
  private readonly trim: Database.Statement<[number, number]>;
  private readonly forgetBatches: Database.Statement<[number, number]>;
  private readonly clock: () => number;
  readonly intervalMs: number;
  readonly maxRowsPerDevice: number;

  constructor(
    private readonly db: Database.Database,
    private readonly options: LogRetentionOptions,
    private readonly logger?: Logger,
  ) {
    this.clock = options.clock ?? Date.now;
    this.maxRowsPerDevice = options.maxRowsPerDevice ?? DEFAULT_MAX_LOG_ROWS_PER_DEVICE;
    this.intervalMs = options.intervalMs ?? Math.min(3_600_000, Math.max(1000, Math.round(options.retentionMs / 10)));
    this.expire = db.prepare(
      "DELETE FROM device_logs WHERE id IN (SELECT id FROM device_logs WHERE ts < ? ORDER BY ts LIMIT ?)",
    );
    this.overCap = db.prepare("SELECT device_id FROM device_logs GROUP BY device_id HAVING count(*) > ?");
    this.threshold = db.prepare("SELECT id FROM device_logs WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?");
    this.trim = db.prepare("DELETE FROM device_logs WHERE device_id = ? AND id <= ?");
    // A resend comes within minutes of the original (a lost PUBACK, a restart); a key older than the
    // retention guards nothing.
    this.forgetBatches = db.prepare(
      `DELETE FROM log_batches WHERE (device_id, stream, seq) IN
         (SELECT device_id, stream, seq FROM log_batches WHERE received_at < ? LIMIT ?)`,
    );
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.runSafely(), this.intervalMs);
    this.timer.unref();
    // A cloud that was down for a while purges at once rather than an interval later.
    setImmediate(() => this.runSafely());
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One purge: expired entries, then each device's excess over the cap. */
  purge(): PurgeResult {
    const cutoff = this.clock() - this.options.retentionMs;
    let expired = 0;
    for (;;) {
      const n = this.expire.run(cutoff, CHUNK).changes;
      expired += n;
      if (n < CHUNK) break;
    }
    for (;;) {
      if (this.forgetBatches.run(cutoff, CHUNK).changes < CHUNK) break;
    }
    let capped = 0;
    for (const { device_id } of this.overCap.all(this.maxRowsPerDevice)) {
      // The newest row beyond the cap; it and everything older go.
      const edge = this.threshold.get(device_id, this.maxRowsPerDevice);
      if (edge) capped += this.trim.run(device_id, edge.id).changes;
    }
    return { expired, capped };
  }

  private runSafely(): void {
    if (!this.timer || !this.db.open) return;
    try {
      const result = this.purge();
      if (result.expired + result.capped > 0) this.logger?.info(result, "purged old device log entries");
    } catch (err) {
      this.logger?.error({ err: (err as Error).message }, "log retention purge failed");
    }
  }
}

import type { TelemetryBatch } from "@fieldgate/shared";
import type Database from "better-sqlite3";

interface Pending {
  deviceId: number;
  batch: TelemetryBatch;
  resolve: (stored: boolean) => void;
  reject: (err: Error) => void;
}

/**
 * Stores telemetry batches with group commit: every batch that arrives in one turn of the event
 * loop shares a transaction. A batch resolves only once committed, so the broker can hold the
 * PUBACK until then. `(device, stream, seq)` makes a redelivered batch a no-op.
 */
export class TelemetryWriter {
  private queue: Pending[] = [];
  private scheduled = false;
  private readonly insertBatch: Database.Statement;
  private readonly insertReading: Database.Statement;
  private readonly bumpDevice: Database.Statement;
  private readonly commit: (items: Pending[]) => boolean[];

  constructor(
    db: Database.Database,
    private readonly clock: () => number = Date.now,
  ) {
    this.insertBatch = db.prepare(
      "INSERT OR IGNORE INTO telemetry_batches (device_id, stream, seq, received_at) VALUES (?, ?, ?, ?)",
    );
    this.insertReading = db.prepare(
      "INSERT INTO telemetry (device_id, ts, name, value, kind, unit, stream, seq, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.bumpDevice = db.prepare(
      "UPDATE devices SET telemetry_count = telemetry_count + ?, last_seen = max(coalesce(last_seen, 0), ?) WHERE id = ?",
    );
    this.commit = db.transaction((items: Pending[]) => {
      const now = this.clock();
      // One counter update per device per commit, not per batch: with one reading per message the
      // device row was rewritten for every message.
      const counts = new Map<number, number>();
      const stored = items.map(({ deviceId, batch }) => {
        if (this.insertBatch.run(deviceId, batch.stream, batch.seq, now).changes === 0) return false;
        for (const r of batch.readings) {
          const [value, kind] =
            typeof r.value === "boolean" ? [r.value ? 1 : 0, 2] : [r.value, typeof r.value === "string" ? 1 : 0];
          this.insertReading.run(
            deviceId,
            r.ts,
            r.name,
            value,
            kind,
            r.unit ?? null,
            batch.stream,
            batch.seq,
            r.source ?? null,
          );
        }
        counts.set(deviceId, (counts.get(deviceId) ?? 0) + batch.readings.length);
        return true;
      });
      for (const [deviceId, count] of counts) this.bumpDevice.run(count, now, deviceId);
      return stored;
    });
  }

  /** Resolves `true` once stored, `false` if this batch was already stored (a redelivery). */
  write(deviceId: number, batch: TelemetryBatch): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ deviceId, batch, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits whatever is queued now. */
  flush(): void {
    this.scheduled = false;
    const items = this.queue;
    this.queue = [];
    if (items.length === 0) return;
    try {
      const stored = this.commit(items);
      items.forEach((item, i) => {
        item.resolve(stored[i] ?? false);
      });
    } catch (err) {
      for (const item of items) item.reject(err as Error);
    }
  }
}

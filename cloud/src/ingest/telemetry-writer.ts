import type { TelemetryBatch } from "@fieldgate/shared";
import type Database from "better-sqlite3";

/** A stream's new high mark within one commit. */
interface StreamMark {
  deviceId: number;
  stream: string;
  high: number;
}

interface Pending {
  deviceId: number;
  batch: TelemetryBatch;
  resolve: (stored: boolean) => void;
  reject: (err: Error) => void;
}

/**
 * Stores telemetry batches with group commit: every batch that arrives in one turn of the event
 * loop shares a transaction. A batch resolves only once committed, so the broker can hold the
 * PUBACK until then. A redelivered batch is a no-op: per (device, stream) the writer keeps the
 * highest seq stored and the ranges below it never stored; a batch is new if its seq is above the
 * mark or inside such a gap (migration 12 explains why not one key row per batch).
 */
export class TelemetryWriter {
  private queue: Pending[] = [];
  private scheduled = false;
  private readonly insertReading: Database.Statement;
  private readonly bumpDevice: Database.Statement;
  private readonly selectHigh: Database.Statement<[number, string], { high_seq: number }>;
  private readonly upsertHigh: Database.Statement<[number, string, number]>;
  private readonly findGap: Database.Statement<[number, string, number], { from_seq: number; to_seq: number }>;
  private readonly insertGap: Database.Statement<[number, string, number, number]>;
  private readonly deleteGap: Database.Statement<[number, string, number]>;
  /**
   * The high marks already read or written, by device and stream. This writer is the only one to
   * change them, so after a commit the cache is the table; a failed commit leaves it untouched.
   */
  private readonly highs = new Map<string, number>();
  private readonly commit: (items: Pending[]) => { stored: boolean[]; highs: Map<string, StreamMark> };

  constructor(
    db: Database.Database,
    private readonly clock: () => number = Date.now,
  ) {
    this.insertReading = db.prepare(
      "INSERT INTO telemetry (device_id, ts, name, value, kind, unit, stream, seq, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.bumpDevice = db.prepare(
      "UPDATE devices SET telemetry_count = telemetry_count + ?, last_seen = max(coalesce(last_seen, 0), ?) WHERE id = ?",
    );
    this.selectHigh = db.prepare("SELECT high_seq FROM telemetry_streams WHERE device_id = ? AND stream = ?");
    this.upsertHigh = db.prepare(
      `INSERT INTO telemetry_streams (device_id, stream, high_seq) VALUES (?, ?, ?)
       ON CONFLICT (device_id, stream) DO UPDATE SET high_seq = excluded.high_seq`,
    );
    this.findGap = db.prepare(
      `SELECT from_seq, to_seq FROM telemetry_seq_gaps
       WHERE device_id = ? AND stream = ? AND from_seq <= ? ORDER BY from_seq DESC LIMIT 1`,
    );
    this.insertGap = db.prepare(
      "INSERT INTO telemetry_seq_gaps (device_id, stream, from_seq, to_seq) VALUES (?, ?, ?, ?)",
    );
    this.deleteGap = db.prepare("DELETE FROM telemetry_seq_gaps WHERE device_id = ? AND stream = ? AND from_seq = ?");
    this.commit = db.transaction((items: Pending[]) => {
      const now = this.clock();
      // One counter update per device per commit, not per batch: with one reading per message the
      // device row was rewritten for every message. Likewise one high mark per stream per commit.
      const counts = new Map<number, number>();
      const highs = new Map<string, StreamMark>();
      const stored = items.map(({ deviceId, batch }) => {
        if (!this.claim(deviceId, batch.stream, batch.seq, highs)) return false;
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
      for (const { deviceId, stream, high } of highs.values()) this.upsertHigh.run(deviceId, stream, high);
      return { stored, highs };
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
      this.commitAndSettle(items);
    } catch (err) {
      if (items.length === 1) {
        (items[0] as Pending).reject(err as Error);
        return;
      }
      // One poison batch must not fail the batches that shared its commit: each again on its own.
      for (const item of items) {
        try {
          this.commitAndSettle([item]);
        } catch (alone) {
          item.reject(alone as Error);
        }
      }
    }
  }

  private commitAndSettle(items: Pending[]): void {
    const { stored, highs } = this.commit(items);
    for (const [key, mark] of highs) this.highs.set(key, mark.high);
    items.forEach((item, i) => {
      item.resolve(stored[i] ?? false);
    });
  }

  /**
   * Inside the commit: whether `seq` of this stream is new, recording it as stored. `highs` holds
   * this commit's new marks, applied to the cache only once the commit succeeds.
   */
  private claim(deviceId: number, stream: string, seq: number, highs: Map<string, StreamMark>): boolean {
    const key = streamKey(deviceId, stream);
    const high = highs.get(key)?.high ?? this.highs.get(key) ?? this.selectHigh.get(deviceId, stream)?.high_seq ?? 0;
    if (seq > high) {
      // Batches skipped on the way up may still come (out of order): remember them as a gap.
      if (seq > high + 1) this.insertGap.run(deviceId, stream, high + 1, seq - 1);
      highs.set(key, { deviceId, stream, high: seq });
      return true;
    }
    const gap = this.findGap.get(deviceId, stream, seq);
    if (!gap || gap.to_seq < seq) return false;
    this.deleteGap.run(deviceId, stream, gap.from_seq);
    if (gap.from_seq < seq) this.insertGap.run(deviceId, stream, gap.from_seq, seq - 1);
    if (seq < gap.to_seq) this.insertGap.run(deviceId, stream, seq + 1, gap.to_seq);
    return true;
  }
}

function streamKey(deviceId: number, stream: string): string {
  return `${deviceId}\u0000${stream}`;
}

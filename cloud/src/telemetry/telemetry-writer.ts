import type { TelemetryBatch } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import type { Insertable, Kysely } from "kysely";
import { type DeviceActivity, TelemetryActivity } from "../registry/telemetry-activity.js";
import type { CloudDatabase } from "../storage/cloud-database.js";
import { storedValue, type TelemetryTables } from "./telemetry-tables.js";

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

interface Gap {
  from_seq: number;
  to_seq: number;
}

/** What one commit decided: per batch whether it was new, and the streams' new high marks. */
interface Committed {
  stored: boolean[];
  highs: Map<string, StreamMark>;
}

/**
 * How a commit reads and changes the dedup state, the same decisions on either backend: the
 * embedded one synchronously inside a better-sqlite3 transaction, PostgreSQL inside a Kysely one.
 */
interface DedupSteps<M extends "sync" | "async"> {
  high(deviceId: number, stream: string): Result<M, number>;
  gapAt(deviceId: number, stream: string, seq: number): Result<M, Gap | undefined>;
  addGap(deviceId: number, stream: string, from: number, to: number): Result<M, void>;
  removeGap(deviceId: number, stream: string, from: number): Result<M, void>;
}

type Result<M extends "sync" | "async", T> = M extends "sync" ? T : Promise<T>;

/** Columns of a PostgreSQL telemetry row; a multi-row INSERT stays under the protocol's 65535 parameters. */
const POSTGRES_COLUMNS = 10;
const POSTGRES_ROWS_PER_INSERT = Math.floor(65_535 / POSTGRES_COLUMNS);

/**
 * Stores telemetry batches with group commit: every batch that arrives in one turn of the event
 * loop shares a transaction. A batch resolves only once committed, so the broker can hold the
 * PUBACK until then. A redelivered batch is a no-op: per (device, stream) the writer keeps the
 * highest seq stored and the ranges below it never stored; a batch is new if its seq is above the
 * mark or inside such a gap (migration 12 explains why not one key row per batch).
 *
 * On the embedded database the commit is synchronous prepared statements (measured: Kysely's
 * per-query overhead would halve ingest); on PostgreSQL it is one transaction with one multi-row
 * INSERT, and commits run one at a time so the cached high marks stay the table's.
 */
export class TelemetryWriter {
  private queue: Pending[] = [];
  private scheduled = false;
  /** PostgreSQL: the commit in flight; batches arriving meanwhile wait for the next one. */
  private committing: Promise<void> | undefined;
  /**
   * The high marks already read or written, by device and stream. This writer is the only one to
   * change them, so after a commit the cache is the table; a failed commit leaves it untouched.
   */
  private readonly highs = new Map<string, number>();
  private readonly commit: (items: Pending[]) => Committed | Promise<Committed>;

  constructor(
    private readonly database: CloudDatabase,
    private readonly clock: () => number = Date.now,
    private readonly activity: TelemetryActivity = new TelemetryActivity(database),
  ) {
    this.commit = database.embedded ? this.embeddedCommit(database.embedded) : (items) => this.postgresCommit(items);
  }

  /** Resolves `true` once stored, `false` if this batch was already stored (a redelivery). */
  write(deviceId: number, batch: TelemetryBatch): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ deviceId, batch, resolve, reject });
      this.schedule();
    });
  }

  /** Commits whatever is queued now; resolves once those batches are settled. */
  async flush(): Promise<void> {
    this.scheduled = false;
    // A Kysely transaction open on the embedded connection would swallow this commit into its own.
    if (this.database.embedded?.inTransaction || this.committing) {
      if (this.committing) await this.committing.catch(() => undefined);
      else await new Promise((resolve) => setImmediate(resolve));
      return this.flush();
    }
    const items = this.queue;
    this.queue = [];
    if (items.length === 0) return;
    this.committing = this.settle(items);
    try {
      await this.committing;
    } finally {
      this.committing = undefined;
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      void this.flush();
    });
  }

  private async settle(items: Pending[]): Promise<void> {
    try {
      await this.commitAndSettle(items);
    } catch (err) {
      if (items.length === 1) {
        (items[0] as Pending).reject(err as Error);
        return;
      }
      // One poison batch must not fail the batches that shared its commit: each again on its own.
      for (const item of items) {
        try {
          await this.commitAndSettle([item]);
        } catch (alone) {
          item.reject(alone as Error);
        }
      }
    }
  }

  private async commitAndSettle(items: Pending[]): Promise<void> {
    const { stored, highs } = await this.commit(items);
    for (const [key, mark] of highs) this.highs.set(key, mark.high);
    items.forEach((item, i) => {
      item.resolve(stored[i] ?? false);
    });
  }

  private embeddedCommit(db: Database.Database): (items: Pending[]) => Committed {
    const insertReading = db.prepare(
      "INSERT INTO telemetry (device_id, ts, name, value, kind, unit, stream, seq, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    const selectHigh = db.prepare<[number, string], { high_seq: number }>(
      "SELECT high_seq FROM telemetry_streams WHERE device_id = ? AND stream = ?",
    );
    const upsertHigh = db.prepare<[number, string, number]>(
      `INSERT INTO telemetry_streams (device_id, stream, high_seq) VALUES (?, ?, ?)
       ON CONFLICT (device_id, stream) DO UPDATE SET high_seq = excluded.high_seq`,
    );
    const findGap = db.prepare<[number, string, number], Gap>(
      `SELECT from_seq, to_seq FROM telemetry_seq_gaps
       WHERE device_id = ? AND stream = ? AND from_seq <= ? ORDER BY from_seq DESC LIMIT 1`,
    );
    const insertGap = db.prepare<[number, string, number, number]>(
      "INSERT INTO telemetry_seq_gaps (device_id, stream, from_seq, to_seq) VALUES (?, ?, ?, ?)",
    );
    const deleteGap = db.prepare<[number, string, number]>(
      "DELETE FROM telemetry_seq_gaps WHERE device_id = ? AND stream = ? AND from_seq = ?",
    );
    const steps: DedupSteps<"sync"> = {
      high: (deviceId, stream) => selectHigh.get(deviceId, stream)?.high_seq ?? 0,
      gapAt: (deviceId, stream, seq) => findGap.get(deviceId, stream, seq),
      addGap: (deviceId, stream, from, to) => {
        insertGap.run(deviceId, stream, from, to);
      },
      removeGap: (deviceId, stream, from) => {
        deleteGap.run(deviceId, stream, from);
      },
    };
    return db.transaction((items: Pending[]): Committed => {
      const now = this.clock();
      // One counter update per device per commit, not per batch: with one reading per message the
      // device row was rewritten for every message. Likewise one high mark per stream per commit.
      const counts = new Map<number, number>();
      const highs = new Map<string, StreamMark>();
      const stored = items.map(({ deviceId, batch }) => {
        if (!this.claimNow(steps, deviceId, batch.stream, batch.seq, highs)) return false;
        for (const r of batch.readings) {
          const { value, kind } = storedValue(r.value);
          insertReading.run(
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
      for (const activity of activities(counts)) this.activity.bumpEmbedded(activity, now);
      for (const { deviceId, stream, high } of highs.values()) upsertHigh.run(deviceId, stream, high);
      return { stored, highs };
    });
  }

  private postgresCommit(items: Pending[]): Promise<Committed> {
    const db = this.database.kysely.withTables<TelemetryTables>();
    return db.transaction().execute(async (trx) => {
      const now = this.clock();
      await this.preloadHighs(trx, items);
      const steps: DedupSteps<"async"> = {
        high: async () => 0, // preloaded: every stream of the commit is cached
        gapAt: (deviceId, stream, seq) =>
          trx
            .selectFrom("telemetry_seq_gaps")
            .select(["from_seq", "to_seq"])
            .where("device_id", "=", deviceId)
            .where("stream", "=", stream)
            .where("from_seq", "<=", seq)
            .orderBy("from_seq", "desc")
            .limit(1)
            .executeTakeFirst(),
        addGap: async (deviceId, stream, from, to) => {
          await trx
            .insertInto("telemetry_seq_gaps")
            .values({ device_id: deviceId, stream, from_seq: from, to_seq: to })
            .execute();
        },
        removeGap: async (deviceId, stream, from) => {
          await trx
            .deleteFrom("telemetry_seq_gaps")
            .where("device_id", "=", deviceId)
            .where("stream", "=", stream)
            .where("from_seq", "=", from)
            .execute();
        },
      };
      const counts = new Map<number, number>();
      const highs = new Map<string, StreamMark>();
      const rows: Insertable<TelemetryTables["telemetry"]>[] = [];
      const stored: boolean[] = [];
      for (const { deviceId, batch } of items) {
        const isNew = await this.claim(steps, deviceId, batch.stream, batch.seq, highs);
        stored.push(isNew);
        if (!isNew) continue;
        for (const r of batch.readings) {
          const { value, kind } = storedValue(r.value);
          rows.push({
            device_id: deviceId,
            ts: r.ts,
            name: r.name,
            value_number: typeof value === "number" ? value : null,
            value_text: typeof value === "string" ? value : null,
            kind,
            unit: r.unit ?? null,
            stream: batch.stream,
            seq: batch.seq,
            source: r.source ?? null,
          });
        }
        counts.set(deviceId, (counts.get(deviceId) ?? 0) + batch.readings.length);
      }
      for (let i = 0; i < rows.length; i += POSTGRES_ROWS_PER_INSERT) {
        await trx
          .insertInto("telemetry")
          .values(rows.slice(i, i + POSTGRES_ROWS_PER_INSERT))
          .execute();
      }
      await this.activity.bump(trx, activities(counts), now);
      const marks = [...highs.values()].map((m) => ({ device_id: m.deviceId, stream: m.stream, high_seq: m.high }));
      if (marks.length > 0) {
        await trx
          .insertInto("telemetry_streams")
          .values(marks)
          .onConflict((oc) =>
            oc.columns(["device_id", "stream"]).doUpdateSet((eb) => ({ high_seq: eb.ref("excluded.high_seq") })),
          )
          .execute();
      }
      return { stored, highs };
    });
  }

  /** Reads, in one query, the high marks of the commit's streams that are not cached yet. */
  private async preloadHighs(trx: Kysely<TelemetryTables>, items: Pending[]): Promise<void> {
    const missing = new Map<string, { deviceId: number; stream: string }>();
    for (const { deviceId, batch } of items) {
      const key = streamKey(deviceId, batch.stream);
      if (!this.highs.has(key)) missing.set(key, { deviceId, stream: batch.stream });
    }
    if (missing.size === 0) return;
    const rows = await trx
      .selectFrom("telemetry_streams")
      .select(["device_id", "stream", "high_seq"])
      .where((eb) =>
        eb.or(
          [...missing.values()].map((m) => eb.and([eb("device_id", "=", m.deviceId), eb("stream", "=", m.stream)])),
        ),
      )
      .execute();
    // Cached before the commit is known to succeed: these are the table's values as of now either way.
    for (const r of rows) this.highs.set(streamKey(r.device_id, r.stream), r.high_seq);
    for (const key of missing.keys()) if (!this.highs.has(key)) this.highs.set(key, 0);
  }

  /**
   * Inside the embedded commit: whether `seq` of this stream is new, recording it as stored.
   * `highs` holds this commit's new marks, applied to the cache only once the commit succeeds.
   */
  private claimNow(
    steps: DedupSteps<"sync">,
    deviceId: number,
    stream: string,
    seq: number,
    highs: Map<string, StreamMark>,
  ): boolean {
    const key = streamKey(deviceId, stream);
    const high = highs.get(key)?.high ?? this.highs.get(key) ?? steps.high(deviceId, stream);
    if (seq > high) {
      // Batches skipped on the way up may still come (out of order): remember them as a gap.
      if (seq > high + 1) steps.addGap(deviceId, stream, high + 1, seq - 1);
      highs.set(key, { deviceId, stream, high: seq });
      return true;
    }
    const gap = steps.gapAt(deviceId, stream, seq);
    if (!gap || gap.to_seq < seq) return false;
    steps.removeGap(deviceId, stream, gap.from_seq);
    if (gap.from_seq < seq) steps.addGap(deviceId, stream, gap.from_seq, seq - 1);
    if (seq < gap.to_seq) steps.addGap(deviceId, stream, seq + 1, gap.to_seq);
    return true;
  }

  /** `claimNow` inside a PostgreSQL commit, where every step is a query to wait for. */
  private async claim(
    steps: DedupSteps<"async">,
    deviceId: number,
    stream: string,
    seq: number,
    highs: Map<string, StreamMark>,
  ): Promise<boolean> {
    const key = streamKey(deviceId, stream);
    const high = highs.get(key)?.high ?? this.highs.get(key) ?? (await steps.high(deviceId, stream));
    if (seq > high) {
      if (seq > high + 1) await steps.addGap(deviceId, stream, high + 1, seq - 1);
      highs.set(key, { deviceId, stream, high: seq });
      return true;
    }
    const gap = await steps.gapAt(deviceId, stream, seq);
    if (!gap || gap.to_seq < seq) return false;
    await steps.removeGap(deviceId, stream, gap.from_seq);
    if (gap.from_seq < seq) await steps.addGap(deviceId, stream, gap.from_seq, seq - 1);
    if (seq < gap.to_seq) await steps.addGap(deviceId, stream, seq + 1, gap.to_seq);
    return true;
  }
}

function activities(counts: Map<number, number>): DeviceActivity[] {
  return [...counts].map(([deviceId, count]) => ({ deviceId, count }));
}

function streamKey(deviceId: number, stream: string): string {
  return `${deviceId}\u0000${stream}`;
}

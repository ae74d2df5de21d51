import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { Reading, SchemaValidator } from "@fieldgate/shared";
import Database from "better-sqlite3";
import { checkpoint, deleteBatch, openAgentDatabase, retryWhenFull } from "../storage/agent-database.js";
import { isStorageFull, type StorageWatch, storageFullError } from "../storage/storage-full.js";
import type { AppendResult, Backlog, OutboxStore, StoredBatch } from "./outbox-store.js";
import { SetAsideBatches, type SetAsideReason, summarize } from "./set-aside.js";

/** Options of the SQLite outbox. */
export interface SqliteOutboxOptions {
  /** Cap on stored readings; beyond it the oldest unbatched rows are dropped. */
  maxRows: number;
  /** Told when a write finds the filesystem full (it may free the storage reserve). */
  storage?: StorageWatch;
}

/** On a full disk, at least this many of the oldest unbatched readings are dropped to make room. */
export const FULL_DROP_MIN = 1000;
/** What one stored reading is budgeted in the file (index and page overhead included), to judge free pages. */
const ROW_BUDGET_BYTES = 128;

const SCHEMA_VERSION = 1;

interface ReadingRow {
  name: string;
  ts: number;
  value: string;
  unit: string | null;
  source: string | null;
}

const validator = new SchemaValidator();

/**
 * The outbox in SQLite (`<dataDir>/agent.db`), WAL mode with `synchronous=FULL`: every committed
 * append, batch and ack is on disk before the call returns, so a power cut loses nothing that a
 * producer was told was stored. At the outbox's batch sizes this costs one fsync per transaction,
 * which the gateway's flash handles easily; NORMAL could lose the last transactions on power loss
 * and, worse, forget that a batch was formed while its rows had already been published.
 */
export class SqliteOutboxStore implements OutboxStore {
  readonly stream: string;
  private readonly db: Database.Database;
  private rows: number;
  private readonly pageSize: number;
  private readonly stmt;
  private readonly setAsideBatches: SetAsideBatches;

  constructor(
    readonly path: string,
    private readonly options: SqliteOutboxOptions,
  ) {
    this.db = openAgentDatabase(path);
    const version = this.db.pragma("user_version", { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`${path} has schema version ${version}; this agent knows up to ${SCHEMA_VERSION}`);
    }
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS readings (
        id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, ts INTEGER NOT NULL,
        value TEXT NOT NULL, unit TEXT);
      CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL);
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
    // Device links (issue #6) tag readings with their link id. The column is added in place, without
    // a version bump: an older agent (after a firmware rollback) still reads and writes this database.
    const columns = this.db.prepare("SELECT name FROM pragma_table_info('readings')").all() as { name: string }[];
    if (!columns.some((c) => c.name === "source")) this.db.exec("ALTER TABLE readings ADD COLUMN source TEXT");
    const insertMeta = this.db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)");
    this.db.transaction(() => {
      // The stream id is born with the database: a new database is a new stream, so its seq 1 never collides.
      insertMeta.run("stream", randomBytes(16).toString("hex"));
      insertMeta.run("next_seq", "1");
      insertMeta.run("batched_through", "0");
      insertMeta.run("dropped_total", "0");
    })();
    this.stmt = {
      getMeta: this.db.prepare<[string], { value: string }>("SELECT value FROM meta WHERE key = ?"),
      setMeta: this.db.prepare<[string, string]>(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      ),
      insert: this.db.prepare<[string, number, string, string | null, string | null]>(
        "INSERT INTO readings (name, ts, value, unit, source) VALUES (?, ?, ?, ?, ?)",
      ),
      dropOldest: this.db.prepare<[number, number]>(
        "DELETE FROM readings WHERE id IN (SELECT id FROM readings WHERE id > ? ORDER BY id LIMIT ?)",
      ),
      unbatched: this.db.prepare<[number, number], { id: number } & ReadingRow>(
        "SELECT id, name, ts, value, unit, source FROM readings WHERE id > ? ORDER BY id LIMIT ?",
      ),
      range: this.db.prepare<[number, number], ReadingRow>(
        "SELECT name, ts, value, unit, source FROM readings WHERE id BETWEEN ? AND ? ORDER BY id",
      ),
      batches: this.db.prepare<[], { seq: number; first_id: number; last_id: number }>(
        "SELECT seq, first_id, last_id FROM batches ORDER BY seq",
      ),
      batch: this.db.prepare<[number], { first_id: number; last_id: number }>(
        "SELECT first_id, last_id FROM batches WHERE seq = ?",
      ),
      insertBatch: this.db.prepare<[number, number, number]>(
        "INSERT INTO batches (seq, first_id, last_id) VALUES (?, ?, ?)",
      ),
      deleteBatch: this.db.prepare<[number]>("DELETE FROM batches WHERE seq = ?"),
      deleteRange: this.db.prepare<[number, number]>("DELETE FROM readings WHERE id BETWEEN ? AND ?"),
      count: this.db.prepare<[], { n: number }>("SELECT count(*) AS n FROM readings"),
      oldest: this.db.prepare<[], { ts: number }>("SELECT ts FROM readings ORDER BY id LIMIT 1"),
      batchCount: this.db.prepare<[], { n: number }>("SELECT count(*) AS n FROM batches"),
    };
    this.setAsideBatches = new SetAsideBatches(this.db);
    this.stream = this.meta("stream");
    this.pageSize = this.db.pragma("page_size", { simple: true }) as number;
    // Only this object writes the database, so a cached count stays exact and spares a scan per append.
    this.rows = this.stmt.count.get()?.n ?? 0;
  }

  /** Reads the backlog of an outbox database without opening it for writing (for `status`). */
  static peek(path: string): Backlog | undefined {
    if (!existsSync(path)) return undefined;
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      // The file may hold other tables (the log buffer's) before the outbox ever opened it.
      if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'readings'").get()) return undefined;
      const rows = (db.prepare("SELECT count(*) AS n FROM readings").get() as { n: number }).n;
      const batches = (db.prepare("SELECT count(*) AS n FROM batches").get() as { n: number }).n;
      const oldest = db.prepare("SELECT ts FROM readings ORDER BY id LIMIT 1").get() as { ts: number } | undefined;
      const dropped = db.prepare("SELECT value FROM meta WHERE key = 'dropped_total'").get() as
        | { value: string }
        | undefined;
      return {
        rows,
        batches,
        oldestTs: oldest?.ts ?? null,
        droppedTotal: Number(dropped?.value ?? 0),
        setAside: summarize(db).batches,
      };
    } finally {
      db.close();
    }
  }

  append(readings: readonly Reading[]): AppendResult {
    if (readings.length === 0) return { appended: 0, dropped: 0 };
    // A reading the cloud would refuse must fail here, at its producer, not poison a batch forever.
    for (const [i, r] of readings.entries()) validator.parse(Reading, r, `readings[${i}]`);
    return this.appendRows(readings.length, `${readings.length} readings`, () => {
      for (const r of readings) {
        this.stmt.insert.run(r.name, r.ts, JSON.stringify(r.value), r.unit ?? null, r.source ?? null);
      }
    });
  }

  appendCounter(name: string, count: number, ts: number): AppendResult {
    if (count <= 0) return { appended: 0, dropped: 0 };
    validator.parse(Reading, { name, ts, value: 0 }, "reading");
    return this.appendRows(count, `${count} ${name} readings`, () => {
      const key = `counter:${name}`;
      let value = Number(this.stmt.getMeta.get(key)?.value ?? 0);
      for (let i = 0; i < count; i++) {
        value += 1;
        this.stmt.insert.run(name, ts, JSON.stringify(value), null, null);
      }
      this.stmt.setMeta.run(key, String(value));
    });
  }

  /**
   * Inserts `count` rows in one transaction and enforces the cap. A write that finds the disk
   * full is refused with STORAGE_FULL (nothing of it is stored) and the drop policy makes room for
   * the next: the oldest unbatched rows go, as at the cap, and the WAL is checkpointed so the freed
   * pages are reused without new blocks. While the alarm is up, appends drop before they grow the file.
   */
  private appendRows(count: number, what: string, insert: () => void): AppendResult {
    try {
      const dropped = this.db.transaction(() => {
        // While the disk is full the file must not grow: the oldest unsent rows make room first, as at the cap.
        const freed = this.options.storage?.isFull ? this.dropForRoom(count) : 0;
        insert();
        return freed + this.enforceCap(this.rows - freed + count);
      })();
      this.rows += count - dropped;
      return { appended: count, dropped };
    } catch (err) {
      if (!isStorageFull(err)) throw err;
      // Refused, not retried: the producer learns the disk is full. The next append finds room.
      this.options.storage?.full("outbox");
      checkpoint(this.db);
      this.makeRoom(Math.max(count, FULL_DROP_MIN));
      throw storageFullError(what);
    }
  }

  /** Drops the oldest unbatched rows unless the file's free pages already hold `count` more rows. */
  private dropForRoom(count: number): number {
    const freeBytes = (this.db.pragma("freelist_count", { simple: true }) as number) * this.pageSize;
    if (freeBytes >= count * ROW_BUDGET_BYTES + 2 * this.pageSize) return 0;
    const dropped = this.stmt.dropOldest.run(
      Number(this.meta("batched_through")),
      Math.max(2 * count, FULL_DROP_MIN),
    ).changes;
    this.addDropped(dropped);
    return dropped;
  }

  private retry<T>(write: () => T): T {
    return retryWhenFull(this.db, this.options.storage, "outbox", write);
  }

  /** The drop policy on a full disk: deletes up to `count` of the oldest unbatched rows (never throws). */
  private makeRoom(count: number): void {
    try {
      this.db.transaction(() => {
        const dropped = this.stmt.dropOldest.run(Number(this.meta("batched_through")), count).changes;
        this.addDropped(dropped);
        this.rows -= dropped;
      })();
    } catch {
      // Not even a delete fits: the alarm is up, and delivered batches free pages as they are acknowledged.
    }
    checkpoint(this.db);
  }

  pendingBatches(): StoredBatch[] {
    return this.stmt.batches.all().map((b) => ({ seq: b.seq, readings: this.readRange(b.first_id, b.last_id) }));
  }

  nextBatch(max: number): StoredBatch | undefined {
    try {
      return this.retry(() => this.formBatch(max));
    } catch (err) {
      if (!isStorageFull(err)) throw err;
      throw storageFullError("a new batch");
    }
  }

  private formBatch(max: number): StoredBatch | undefined {
    return this.db.transaction(() => {
      const through = Number(this.meta("batched_through"));
      const rows = this.stmt.unbatched.all(through, max);
      const first = rows[0];
      const last = rows[rows.length - 1];
      if (!first || !last) return undefined;
      const seq = Number(this.meta("next_seq"));
      this.stmt.insertBatch.run(seq, first.id, last.id);
      this.stmt.setMeta.run("next_seq", String(seq + 1));
      this.stmt.setMeta.run("batched_through", String(last.id));
      return { seq, readings: rows.map(toReading) };
    })();
  }

  ack(seq: number): void {
    // Deleting delivered rows is what frees pages on a full disk, so it gets the retry too.
    const deleted = this.retry(() => deleteBatch(this.db, this.stmt, seq));
    this.rows -= deleted;
  }

  setAside(seq: number, reason: SetAsideReason, at = Date.now()): boolean {
    return this.db.transaction(() => {
      const b = this.stmt.batch.get(seq);
      if (!b) return false;
      this.setAsideBatches.keep(this.stream, seq, this.readRange(b.first_id, b.last_id), reason, at);
      this.rows -= this.stmt.deleteRange.run(b.first_id, b.last_id).changes;
      this.stmt.deleteBatch.run(seq);
      return true;
    })();
  }

  backlog(): Backlog {
    return {
      setAside: this.setAsideBatches.summary().batches,
      rows: this.rows,
      batches: this.stmt.batchCount.get()?.n ?? 0,
      oldestTs: this.stmt.oldest.get()?.ts ?? null,
      droppedTotal: Number(this.meta("dropped_total")),
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Drops the oldest rows not yet in a batch until the cap holds; batched rows are already promised. */
  private enforceCap(rows: number): number {
    const excess = rows - this.options.maxRows;
    if (excess <= 0) return 0;
    const dropped = this.stmt.dropOldest.run(Number(this.meta("batched_through")), excess).changes;
    this.addDropped(dropped);
    return dropped;
  }

  private addDropped(dropped: number): void {
    if (dropped > 0) this.stmt.setMeta.run("dropped_total", String(Number(this.meta("dropped_total")) + dropped));
  }

  private readRange(first: number, last: number): Reading[] {
    return this.stmt.range.all(first, last).map(toReading);
  }

  private meta(key: string): string {
    const row = this.stmt.getMeta.get(key);
    if (!row) throw new Error(`outbox meta ${key} is missing`);
    return row.value;
  }
}

function toReading(row: ReadingRow): Reading {
  const reading: Reading = { name: row.name, ts: row.ts, value: JSON.parse(row.value) as Reading["value"] };
  if (row.unit !== null) reading.unit = row.unit;
  if (row.source !== null) reading.source = row.source;
  return reading;
}

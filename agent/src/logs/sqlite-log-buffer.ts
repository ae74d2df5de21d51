import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import type { LogLevelName } from "@fieldgate/shared";
import Database from "better-sqlite3";
import { deleteBatch, openAgentDatabase, retryWhenFull } from "../storage/agent-database.js";
import { type StorageWatch, storageFullError } from "../storage/storage-full.js";
import { LEVEL_VALUES, type LogEntry, truncateMsg } from "./log-entry.js";

/** A batch formed from the buffer: its identity and exact entries never change until it is acknowledged. */
export interface StoredLogBatch {
  seq: number;
  /** Drop reports first, then the lines, as published. */
  entries: LogEntry[];
  /** How many of `entries` are forwarded lines (not drop reports). */
  lines: number;
}

/** Lines lost before they could be stored, to be reported in the next batch. */
export interface LogDrops {
  rate: number;
  buffer: number;
}

/** What an append did: lines stored, and old lines the cap dropped. */
export interface LogAppendResult {
  appended: number;
  dropped: number;
}

/**
 * The durable buffer of the log forwarder. Invariants as for the telemetry outbox: a batch's seq
 * and entries never change once formed; a line is deleted only by `ack` of its batch, or by the
 * cap, which takes only the oldest lines not yet in a batch.
 */
export interface LogBuffer {
  /** Identifies this buffer for the cloud's dedupe: `(stream, seq)` names one batch forever. */
  readonly stream: string;
  /** Stores lines and drop counts in one transaction, then enforces the cap on lines not in a batch. */
  append(entries: readonly LogEntry[], drops?: LogDrops): LogAppendResult;
  /** The formed, unacknowledged batch, exactly as first formed: what must be sent (again) first. */
  pendingBatch(): StoredLogBatch | undefined;
  /**
   * Forms the next batch (the pending drop reports, then up to `maxEntries` lines within `maxBytes`
   * of JSON) and persists it before returning; `undefined` when there is nothing to send.
   */
  nextBatch(maxEntries: number, maxBytes: number, now: number): StoredLogBatch | undefined;
  /** Deletes the batch and its lines (after its PUBACK); an unknown seq is a no-op. */
  ack(seq: number): void;
  /** Lines not yet in a batch. */
  readonly waiting: number;
  /** Lines stored and not yet acknowledged, in a batch or not. */
  readonly stored: number;
  close(): void;
}

interface LineRow {
  id: number;
  ts: unknown;
  level: unknown;
  msg: unknown;
}

/** Fixed JSON overhead of a batch (`{"v":1,"stream":"…","seq":…,"entries":[]}`), rounded up. */
const BATCH_OVERHEAD_BYTES = 96;

/**
 * The log buffer in its own tables (`log_lines`, `log_batches`, `log_meta`) of the agent database
 * (`<dataDir>/agent.db`), WAL with `synchronous=FULL` like the outbox: a committed line survives a
 * crash or a power cut. The outbox owns `user_version` of the file, so it is left alone here.
 * A batch is one row (`seq`, a range of line ids, its drop reports as JSON), committed before it
 * is published, so a restart resends it with the same identity and entries.
 */
/** What `status` shows of the log lines waiting to be forwarded. */
export interface LogBacklog {
  lines: number;
  oldestTs: number | null;
  /** Lines dropped (rate limit or full buffer) whose drop report has not reached the cloud yet. */
  droppedUnreported: number;
}

export class SqliteLogBuffer implements LogBuffer {
  /**
   * Reads the backlog from the file without opening it for writing (the daemon may be running);
   * `undefined` when the file or its log tables do not exist yet.
   */
  static peek(path: string): LogBacklog | undefined {
    if (!existsSync(path)) return undefined;
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_lines'").get();
      if (!table) return undefined;
      const lines = (db.prepare("SELECT count(*) AS n FROM log_lines").get() as { n: number }).n;
      const oldest = db.prepare("SELECT ts FROM log_lines ORDER BY id LIMIT 1").get() as { ts: number } | undefined;
      const meta = (key: string) =>
        Number(
          (db.prepare("SELECT value FROM log_meta WHERE key = ?").get(key) as { value: string } | undefined)?.value ??
            0,
        );
      return { lines, oldestTs: oldest?.ts ?? null, droppedUnreported: meta("pending_rate") + meta("pending_buffer") };
    } finally {
      db.close();
    }
  }

  readonly stream: string;
  private readonly db: Database.Database;
  private unbatched: number;
  private inBatch: number;
  private readonly stmt;

  constructor(
    readonly path: string,
    private readonly options: { maxWaiting: number; storage?: StorageWatch },
  ) {
    this.db = openAgentDatabase(path);
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS log_lines (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, level TEXT NOT NULL, msg TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS log_batches (
        seq INTEGER PRIMARY KEY, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL, reports TEXT NOT NULL);
    `);
    const insertMeta = this.db.prepare("INSERT OR IGNORE INTO log_meta (key, value) VALUES (?, ?)");
    this.db.transaction(() => {
      // Born with the tables: a new buffer is a new stream, so its seq 1 never collides with an old one's.
      insertMeta.run("stream", randomBytes(16).toString("hex"));
      insertMeta.run("next_seq", "1");
      insertMeta.run("batched_through", "0");
      insertMeta.run("pending_rate", "0");
      insertMeta.run("pending_buffer", "0");
    })();
    this.stmt = {
      getMeta: this.db.prepare<[string], { value: string }>("SELECT value FROM log_meta WHERE key = ?"),
      setMeta: this.db.prepare<[string, string]>("UPDATE log_meta SET value = ? WHERE key = ?"),
      insert: this.db.prepare<[number, string, string]>("INSERT INTO log_lines (ts, level, msg) VALUES (?, ?, ?)"),
      dropOldest: this.db.prepare<[number, number]>(
        "DELETE FROM log_lines WHERE id IN (SELECT id FROM log_lines WHERE id > ? ORDER BY id LIMIT ?)",
      ),
      unbatched: this.db.prepare<[number, number], LineRow>(
        "SELECT id, ts, level, msg FROM log_lines WHERE id > ? ORDER BY id LIMIT ?",
      ),
      range: this.db.prepare<[number, number], LineRow>(
        "SELECT id, ts, level, msg FROM log_lines WHERE id BETWEEN ? AND ? ORDER BY id",
      ),
      firstBatch: this.db.prepare<[], { seq: number; first_id: number; last_id: number; reports: string }>(
        "SELECT seq, first_id, last_id, reports FROM log_batches ORDER BY seq LIMIT 1",
      ),
      batch: this.db.prepare<[number], { first_id: number; last_id: number }>(
        "SELECT first_id, last_id FROM log_batches WHERE seq = ?",
      ),
      insertBatch: this.db.prepare<[number, number, number, string]>(
        "INSERT INTO log_batches (seq, first_id, last_id, reports) VALUES (?, ?, ?, ?)",
      ),
      deleteBatch: this.db.prepare<[number]>("DELETE FROM log_batches WHERE seq = ?"),
      deleteRange: this.db.prepare<[number, number]>("DELETE FROM log_lines WHERE id BETWEEN ? AND ?"),
      deleteLine: this.db.prepare<[number]>("DELETE FROM log_lines WHERE id = ?"),
      countAfter: this.db.prepare<[number], { n: number }>("SELECT count(*) AS n FROM log_lines WHERE id > ?"),
      count: this.db.prepare<[], { n: number }>("SELECT count(*) AS n FROM log_lines"),
    };
    this.stream = this.meta("stream");
    // Only this object writes these tables, so cached counts stay exact and spare a scan per append.
    this.unbatched = this.stmt.countAfter.get(this.batchedThrough())?.n ?? 0;
    this.inBatch = (this.stmt.count.get()?.n ?? 0) - this.unbatched;
  }

  get waiting(): number {
    return this.unbatched;
  }

  get stored(): number {
    return this.unbatched + this.inBatch;
  }

  append(entries: readonly LogEntry[], drops: LogDrops = { rate: 0, buffer: 0 }): LogAppendResult {
    if (entries.length === 0 && drops.rate === 0 && drops.buffer === 0) return { appended: 0, dropped: 0 };
    // On a full disk log lines must not take the room readings need: the forwarder keeps them staged (bounded).
    if (this.options.storage?.isFull) throw storageFullError(`${entries.length} log lines`);
    return this.retry(() => this.insertLines(entries, drops));
  }

  private insertLines(entries: readonly LogEntry[], drops: LogDrops): LogAppendResult {
    return this.db.transaction(() => {
      for (const e of entries) this.stmt.insert.run(e.ts, e.level, e.msg);
      this.unbatched += entries.length;
      const dropped = this.enforceCap();
      this.addMeta("pending_rate", drops.rate);
      this.addMeta("pending_buffer", drops.buffer + dropped);
      return { appended: entries.length, dropped };
    })();
  }

  pendingBatch(): StoredLogBatch | undefined {
    for (;;) {
      const row = this.stmt.firstBatch.get();
      if (!row) return undefined;
      const batch = this.readBatch(row);
      if (batch) return batch;
      // Nothing readable left in it (damaged rows): sending it would be refused, keeping it would block the rest.
      this.ack(row.seq);
    }
  }

  nextBatch(maxEntries: number, maxBytes: number, now: number): StoredLogBatch | undefined {
    return this.retry(() => this.formBatch(maxEntries, maxBytes, now));
  }

  private formBatch(maxEntries: number, maxBytes: number, now: number): StoredLogBatch | undefined {
    return this.db.transaction(() => {
      const reports = this.dropReports(now);
      const max = Math.max(0, maxEntries - reports.length);
      let bytes = reports.reduce((n, e) => n + entryBytes(e), BATCH_OVERHEAD_BYTES);
      const lines: LogEntry[] = [];
      let lastId = this.batchedThrough();
      const firstId = lastId + 1;
      // Read a little past `max`: damaged rows are deleted on the way and do not count.
      scan: while (lines.length < max) {
        const rows = this.stmt.unbatched.all(lastId, max - lines.length);
        if (rows.length === 0) break;
        for (const row of rows) {
          const entry = toEntry(row);
          if (!entry) {
            this.stmt.deleteLine.run(row.id);
            this.unbatched -= 1;
            lastId = row.id;
            continue;
          }
          const size = entryBytes(entry);
          if ((lines.length > 0 || reports.length > 0) && bytes + size > maxBytes) break scan;
          bytes += size;
          lines.push(entry);
          lastId = row.id;
          if (lines.length >= max) break scan;
        }
      }
      if (lines.length === 0 && reports.length === 0) {
        if (lastId !== firstId - 1) this.stmt.setMeta.run(String(lastId), "batched_through");
        return undefined;
      }
      const seq = Number(this.meta("next_seq"));
      this.stmt.insertBatch.run(seq, firstId, lastId, JSON.stringify(reports));
      this.stmt.setMeta.run(String(seq + 1), "next_seq");
      this.stmt.setMeta.run(String(lastId), "batched_through");
      this.stmt.setMeta.run("0", "pending_rate");
      this.stmt.setMeta.run("0", "pending_buffer");
      this.unbatched -= lines.length;
      this.inBatch += lines.length;
      return { seq, entries: [...reports, ...lines], lines: lines.length };
    })();
  }

  ack(seq: number): void {
    // Deleting sent lines frees pages on a full disk, so it gets the retry too.
    this.inBatch -= this.retry(() => deleteBatch(this.db, this.stmt, seq));
    if (this.inBatch < 0) this.inBatch = 0;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** On a full disk the forwarder keeps failed lines staged (bounded) and retries; see `retryWhenFull`. */
  private retry<T>(write: () => T): T {
    return retryWhenFull(this.db, this.options.storage, "log buffer", () => {
      // The cached counts move inside the transaction; a rolled-back one puts them back.
      const counts = [this.unbatched, this.inBatch] as const;
      try {
        return write();
      } catch (err) {
        [this.unbatched, this.inBatch] = counts;
        throw err;
      }
    });
  }

  private readBatch(row: {
    seq: number;
    first_id: number;
    last_id: number;
    reports: string;
  }): StoredLogBatch | undefined {
    const reports = parseReports(row.reports);
    // Damaged rows are skipped the same way on every read, so a resend stays identical.
    const lines = this.stmt.range
      .all(row.first_id, row.last_id)
      .map(toEntry)
      .filter((e): e is LogEntry => e !== undefined);
    if (reports.length + lines.length === 0) return undefined;
    return { seq: row.seq, entries: [...reports, ...lines], lines: lines.length };
  }

  private dropReports(now: number): LogEntry[] {
    const rate = Number(this.meta("pending_rate")) || 0;
    const buffer = Number(this.meta("pending_buffer")) || 0;
    const reports: LogEntry[] = [];
    if (rate > 0) reports.push({ ts: now, level: "warn", msg: `dropped ${rate} log lines (rate limit)` });
    if (buffer > 0) reports.push({ ts: now, level: "warn", msg: `dropped ${buffer} log lines (buffer full)` });
    return reports;
  }

  /** Drops the oldest lines not yet in a batch until at most `maxWaiting` wait; batched lines are promised. */
  private enforceCap(): number {
    const excess = this.unbatched - this.options.maxWaiting;
    if (excess <= 0) return 0;
    const dropped = this.stmt.dropOldest.run(this.batchedThrough(), excess).changes;
    this.unbatched -= dropped;
    return dropped;
  }

  private batchedThrough(): number {
    return Number(this.meta("batched_through")) || 0;
  }

  private addMeta(key: string, n: number): void {
    if (n > 0) this.stmt.setMeta.run(String((Number(this.meta(key)) || 0) + n), key);
  }

  private meta(key: string): string {
    const row = this.stmt.getMeta.get(key);
    if (!row) throw new Error(`log buffer meta ${key} is missing`);
    return row.value;
  }
}

function entryBytes(e: LogEntry): number {
  return Buffer.byteLength(JSON.stringify(e)) + 1;
}

/** A stored row as a `LogBatch` entry, or `undefined` when it could never pass the cloud's schema. */
function toEntry(row: LineRow): LogEntry | undefined {
  const { ts, level, msg } = row;
  if (typeof ts !== "number" || !Number.isSafeInteger(ts) || ts < 0) return undefined;
  if (typeof level !== "string" || !Object.hasOwn(LEVEL_VALUES, level)) return undefined;
  if (typeof msg !== "string") return undefined;
  return { ts, level: level as LogLevelName, msg: truncateMsg(msg) };
}

function parseReports(json: string): LogEntry[] {
  try {
    const parsed: unknown = JSON.parse(json);
    if (!Array.isArray(parsed)) return [];
    return parsed
      .map((r) => (typeof r === "object" && r !== null ? toEntry({ id: 0, ...(r as object) } as LineRow) : undefined))
      .filter((e): e is LogEntry => e !== undefined);
  } catch {
    return [];
  }
}

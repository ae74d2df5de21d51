import type Database from "better-sqlite3";
import { openAgentDatabase, retryWhenFull } from "../storage/agent-database.js";
import { isStorageFull, type StorageWatch, storageFullError } from "../storage/storage-full.js";

/** A status posted through the local API, as kept across restarts. */
export interface PostedStatusRow {
  name: string;
  /** As stored; the monitor checks it before use (a damaged row must not become a check). */
  status: string;
  message: string;
  /** The ttl asked for, or `null` for a status that stays until replaced or deleted. */
  ttlMs: number | null;
  /** Epoch ms when the ttl runs out (`null` without ttl). */
  expiresAt: number | null;
}

/** Where the health monitor keeps posted statuses so a restart does not forget them. */
export interface PostedStatusStore {
  save(row: PostedStatusRow): void;
  remove(name: string): void;
  all(): PostedStatusRow[];
}

/**
 * Posted statuses in their own table `local_statuses` of the agent database (`<dataDir>/agent.db`).
 * The outbox owns `user_version` of the file, so it is left alone here.
 */
export class SqlitePostedStatusStore implements PostedStatusStore {
  private readonly db: Database.Database;
  private readonly stmt;

  constructor(
    readonly path: string,
    private readonly storage?: StorageWatch,
  ) {
    this.db = openAgentDatabase(path);
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS local_statuses (
        name TEXT PRIMARY KEY, status TEXT NOT NULL, message TEXT NOT NULL,
        ttl_ms INTEGER, expires_at INTEGER) WITHOUT ROWID;
    `);
    this.stmt = {
      upsert: this.db.prepare<[string, string, string, number | null, number | null]>(
        `INSERT INTO local_statuses (name, status, message, ttl_ms, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET status = excluded.status, message = excluded.message,
           ttl_ms = excluded.ttl_ms, expires_at = excluded.expires_at`,
      ),
      remove: this.db.prepare<[string]>("DELETE FROM local_statuses WHERE name = ?"),
      all: this.db.prepare<
        [],
        { name: string; status: string; message: string; ttl_ms: number | null; expires_at: number | null }
      >("SELECT name, status, message, ttl_ms, expires_at FROM local_statuses ORDER BY name"),
    };
  }

  /** Throws STORAGE_FULL on a full disk: the status was not stored, so the API must not acknowledge it. */
  save(row: PostedStatusRow): void {
    try {
      this.retry(() => this.stmt.upsert.run(row.name, row.status, row.message, row.ttlMs, row.expiresAt));
    } catch (err) {
      throw isStorageFull(err) ? storageFullError(`the status ${row.name}`) : err;
    }
  }

  /** On a full disk the row stays; it expires or is removed again after a restart, which is harmless. */
  remove(name: string): void {
    try {
      this.retry(() => this.stmt.remove.run(name));
    } catch (err) {
      if (!isStorageFull(err)) throw err;
    }
  }

  private retry(write: () => unknown): void {
    retryWhenFull(this.db, this.storage, "posted statuses", write);
  }

  all(): PostedStatusRow[] {
    return this.stmt.all.all().map((r) => ({
      name: r.name,
      status: r.status,
      message: r.message,
      ttlMs: r.ttl_ms,
      expiresAt: r.expires_at,
    }));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

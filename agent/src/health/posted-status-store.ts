import { chmodSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";

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

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.db = new Database(path);
    chmodSync(path, 0o600);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.pragma("busy_timeout = 5000");
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

  save(row: PostedStatusRow): void {
    this.stmt.upsert.run(row.name, row.status, row.message, row.ttlMs, row.expiresAt);
  }

  remove(name: string): void {
    this.stmt.remove.run(name);
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

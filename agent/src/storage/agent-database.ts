import { chmodSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { isStorageFull, type StorageWatch } from "./storage-full.js";

/**
 * Checkpoint the WAL every 100 pages (400 KiB) instead of SQLite's 1000: on a full disk, committed
 * frames not yet checkpointed can need that much room in the database file, which the storage
 * reserve (`RESERVE_BYTES`) must cover so the agent can un-jam itself.
 */
export const AUTOCHECKPOINT_PAGES = 100;

/**
 * Opens `<dataDir>/agent.db` for one of its owners (outbox, log buffer, posted statuses, update
 * jobs): mode 0600 (SQLite gives the -wal and -shm files the database's mode), WAL with
 * `synchronous=FULL` so a committed write survives a power cut.
 */
export function openAgentDatabase(path: string): Database.Database {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  chmodSync(path, 0o600);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("busy_timeout = 5000");
  db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
  return db;
}

/**
 * Copies the WAL into the database so the next write starts the WAL over, reusing its blocks:
 * on a full disk that is what lets a delete (and then an insert into the freed pages) succeed.
 */
export function checkpoint(db: Database.Database): boolean {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs a write; when the filesystem is full it reports it (the guard gives up its reserve),
 * checkpoints and tries once more. A second failure is thrown to the caller.
 */
export function retryWhenFull<T>(
  db: Database.Database,
  storage: StorageWatch | undefined,
  where: string,
  write: () => T,
): T {
  try {
    return write();
  } catch (err) {
    if (!isStorageFull(err)) throw err;
    storage?.full(where);
    checkpoint(db);
    return write();
  }
}

/** The statements of a batched table pair (outbox readings, log lines): a batch names a range of row ids. */
export interface BatchStatements {
  batch: Database.Statement<[number], { first_id: number; last_id: number }>;
  deleteRange: Database.Statement<[number, number]>;
  deleteBatch: Database.Statement<[number]>;
}

/** Deletes a batch and its rows in one transaction; returns how many rows went (0 for an unknown seq). */
export function deleteBatch(db: Database.Database, stmt: BatchStatements, seq: number): number {
  return db.transaction(() => {
    const b = stmt.batch.get(seq);
    if (!b) return 0;
    const changes = stmt.deleteRange.run(b.first_id, b.last_id).changes;
    stmt.deleteBatch.run(seq);
    return changes;
  })();
}

import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";
import type { Logger } from "pino";

/** What one PASSIVE checkpoint did, as `PRAGMA wal_checkpoint` reports it. */
export interface CheckpointResult {
  /** 1 when another connection held a lock and the checkpoint could not start. */
  busy: number;
  /** Frames in the WAL. */
  log: number;
  /** Frames copied into the database file so far. */
  checkpointed: number;
}

export interface WalCheckpointerOptions {
  /** The database file the connection has open. */
  file: string;
  logger: Logger;
  /**
   * Time between checkpoints. Longer copies a page changed by many commits once rather than many
   * times (1 s measured 7–8% faster than 250 ms under unbatched ingest), at the price of a longer WAL.
   */
  intervalMs?: number;
  /** Called with each checkpoint's result (tests, metrics). */
  onCheckpoint?: (result: CheckpointResult) => void;
  /** The worker script; the compiled `wal-checkpoint-worker.js` beside this module by default. */
  workerUrl?: URL;
}

/** SQLite's own default, restored when the worker is gone. */
const SQLITE_AUTOCHECKPOINT_PAGES = 1000;

/**
 * Moves the WAL checkpoints off the event loop. By default the commit that takes the WAL past
 * 1,000 pages checkpoints it itself — copying pages into the database file and syncing it, inside
 * that commit: about a third of the cloud's time under unbatched ingest. Here the main connection
 * never checkpoints (`wal_autocheckpoint = 0`); a worker thread with its own connection runs PASSIVE
 * checkpoints, which never block the writer or readers. Durability is unchanged: commits are in
 * the WAL either way. If the worker fails, the main connection goes back to checkpointing itself.
 */
export class WalCheckpointer {
  private worker: Worker | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly options: WalCheckpointerOptions,
  ) {}

  start(): void {
    if (this.worker) return;
    const { file, intervalMs = 1000, onCheckpoint } = this.options;
    const url = this.options.workerUrl ?? new URL("./wal-checkpoint-worker.js", import.meta.url);
    const worker = new Worker(url, { workerData: { file, intervalMs } });
    this.worker = worker;
    this.db.pragma("wal_autocheckpoint = 0");
    worker.on("message", (result: CheckpointResult) => onCheckpoint?.(result));
    worker.on("error", (err) => this.fallBack(worker, err.message));
    worker.on("exit", (code) => this.fallBack(worker, `it exited with code ${code}`));
    // The cloud's shutdown stops it; it never keeps the process alive by itself.
    worker.unref();
  }

  /** Stops the worker; the connection checkpoints by itself again (and fully when it closes). */
  async stop(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.worker = undefined;
    this.db.pragma(`wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
    await worker.terminate();
  }

  private fallBack(worker: Worker, reason: string): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
    this.options.logger.warn(
      { file: this.options.file, reason },
      "the WAL checkpoint worker stopped; commits checkpoint the database themselves again",
    );
  }
}

import { closeSync, openSync, rmSync, statfsSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { FieldgateError } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { CheckResult, HealthCheck } from "../health/health-check.js";

/** Whether an error means the filesystem has no room left (SQLite's SQLITE_FULL, or ENOSPC/EDQUOT). */
export function isStorageFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "SQLITE_FULL" || code === "ENOSPC" || code === "EDQUOT";
}

/** The `STORAGE_FULL` error a producer gets, naming what could not be stored. */
export function storageFullError(what: string): FieldgateError {
  return new FieldgateError(
    "STORAGE_FULL",
    `the data directory's filesystem is full: ${what} could not be stored; free space on it (the agent recovers by itself), then retry`,
  );
}

/** Where writes on a full disk are reported; the stores depend on this, not on the guard. */
export interface StorageWatch {
  /** Whether the alarm is up: a write failed for lack of space and space has not returned since. */
  readonly isFull: boolean;
  /** A write failed for lack of space; returns true when it freed some (the reserve), so a retry may pass. */
  full(where: string): boolean;
}

/** Options of the guard. */
export interface StorageGuardOptions {
  /** A file kept allocated so that a full disk can still be un-jammed (a checkpoint, a delete). */
  reservePath: string;
  reserveBytes: number;
  logger: Logger;
  now?: () => number;
}

/** Default size of the reserve: enough for SQLite to checkpoint its WAL (see `AUTOCHECKPOINT_PAGES`). */
export const RESERVE_BYTES = 1024 * 1024;

/**
 * Watches the data directory's filesystem for the agent. It keeps a reserve file allocated; when a
 * write fails for lack of space it gives the reserve up (so SQLite can checkpoint and the drop
 * policy can delete rows), raises the `storage` health check to critical, and clears it by itself
 * once the reserve can be allocated again, that is once space has returned.
 */
export class StorageGuard implements StorageWatch {
  private fullSince: { at: number; where: string } | undefined;

  constructor(private readonly options: StorageGuardOptions) {}

  /** Whether the alarm is up. */
  get isFull(): boolean {
    return this.fullSince !== undefined;
  }

  /** Allocates the reserve if it is missing; false when there is no room for it. Never throws. */
  ensureReserve(): boolean {
    const { reservePath, reserveBytes } = this.options;
    if ((statSync(reservePath, { throwIfNoEntry: false })?.size ?? -1) >= reserveBytes) return true;
    try {
      // Written, not truncated: a sparse file would hold no blocks and free nothing when removed.
      const fd = openSync(reservePath, "w", 0o600);
      try {
        const chunk = Buffer.alloc(64 * 1024);
        for (let left = reserveBytes; left > 0; left -= chunk.length) {
          writeSync(fd, chunk, 0, Math.min(chunk.length, left));
        }
      } finally {
        closeSync(fd);
      }
      return true;
    } catch (err) {
      rmSync(reservePath, { force: true });
      if (!isStorageFull(err))
        this.options.logger.warn({ err: (err as Error).message }, "cannot write the storage reserve");
      return false;
    }
  }

  private freeBytes(): number {
    try {
      const fs = statfsSync(dirname(this.options.reservePath));
      return fs.bavail * fs.bsize;
    } catch {
      return 0;
    }
  }

  full(where: string): boolean {
    const { logger, reservePath } = this.options;
    if (!this.fullSince) {
      this.fullSince = { at: (this.options.now ?? Date.now)(), where };
      logger.error(
        { code: "STORAGE_FULL", where },
        `the data directory's filesystem is full (${where}); producers get STORAGE_FULL and the oldest unsent readings are dropped until space returns`,
      );
    }
    const had = statSync(reservePath, { throwIfNoEntry: false }) !== undefined;
    rmSync(reservePath, { force: true });
    return had;
  }

  /** Tries to restore the reserve; clears the alarm when it can and as much room again is left. */
  recheck(): boolean {
    if (!this.fullSince) return true;
    // The room the reserve gave back does not count as space returning.
    if (this.freeBytes() < 2 * this.options.reserveBytes || !this.ensureReserve()) return false;
    const since = this.fullSince;
    this.fullSince = undefined;
    this.options.logger.info({ where: since.where }, "the data directory's filesystem has room again");
    return true;
  }

  /** The `storage` health check: critical while the filesystem is full. */
  check(): HealthCheck {
    return {
      name: "storage",
      run: (): CheckResult => {
        this.recheck();
        const since = this.fullSince;
        if (!since) return { name: "storage", status: "ok", message: "writes to the data directory succeed" };
        return {
          name: "storage",
          status: "critical",
          message: `STORAGE_FULL: the data directory's filesystem is full since ${new Date(since.at).toISOString()} (${since.where}); free space on it`,
        };
      },
    };
  }
}

// The worker thread of WalCheckpointer: its own connection, a PASSIVE checkpoint on an interval.
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import type { CheckpointResult } from "./wal-checkpointer.js";

function runCheckpoints({ file, intervalMs }: { file: string; intervalMs: number }): void {
  const db = new Database(file, { fileMustExist: true });
  setInterval(() => {
    const [result] = db.pragma("wal_checkpoint(PASSIVE)") as CheckpointResult[];
    if (result) parentPort?.postMessage(result);
  }, intervalMs);
}

if (!isMainThread) runCheckpoints(workerData as { file: string; intervalMs: number });

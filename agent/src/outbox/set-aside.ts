import type { Reading } from "@fieldgate/shared";
import type Database from "better-sqlite3";

/** Why a batch left the outbox: the cloud's refusal notice, or too many sends without a PUBACK. */
export interface SetAsideReason {
  code: string;
  field?: string;
  message: string;
}

/** What `status` shows of the set-aside batches. */
export interface SetAsideSummary {
  batches: number;
  readings: number;
  last: (SetAsideReason & { seq: number; at: number }) | null;
}

/**
 * Batches the cloud refused (or never acknowledged), moved out of the outbox so the batches behind
 * them flow (issue #12): kept whole in `outbox_set_aside` of agent.db for an operator, never resent.
 * The outbox store calls `keep` inside the transaction that deletes the batch from the outbox.
 */
export class SetAsideBatches {
  private readonly insert: Database.Statement<[number, string, string, number, string, string | null, string, number]>;

  constructor(private readonly db: Database.Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS outbox_set_aside (
      seq INTEGER PRIMARY KEY, stream TEXT NOT NULL, readings_json TEXT NOT NULL, readings INTEGER NOT NULL,
      code TEXT NOT NULL, field TEXT, message TEXT NOT NULL, set_aside_at INTEGER NOT NULL)`);
    this.insert = db.prepare(
      `INSERT OR REPLACE INTO outbox_set_aside (seq, stream, readings_json, readings, code, field, message, set_aside_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  keep(stream: string, seq: number, readings: readonly Reading[], reason: SetAsideReason, at: number): void {
    this.insert.run(
      seq,
      stream,
      JSON.stringify(readings),
      readings.length,
      reason.code,
      reason.field ?? null,
      reason.message,
      at,
    );
  }

  summary(): SetAsideSummary {
    return summarize(this.db);
  }
}

/** The summary of a database that may not have the table yet (for `status`, read-only). */
export function summarize(db: Database.Database): SetAsideSummary {
  if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox_set_aside'").get()) {
    return { batches: 0, readings: 0, last: null };
  }
  const totals = db.prepare("SELECT count(*) AS n, coalesce(sum(readings), 0) AS r FROM outbox_set_aside").get() as {
    n: number;
    r: number;
  };
  const last = db
    .prepare("SELECT seq, code, field, message, set_aside_at FROM outbox_set_aside ORDER BY set_aside_at DESC LIMIT 1")
    .get() as { seq: number; code: string; field: string | null; message: string; set_aside_at: number } | undefined;
  return {
    batches: totals.n,
    readings: totals.r,
    last: last
      ? {
          seq: last.seq,
          code: last.code,
          ...(last.field === null ? {} : { field: last.field }),
          message: last.message,
          at: last.set_aside_at,
        }
      : null,
  };
}

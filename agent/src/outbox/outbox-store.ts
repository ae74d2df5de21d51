import type { Reading } from "@fieldgate/shared";
import type { SetAsideReason } from "./set-aside.js";

/** A batch that has been assigned its sequence number and is waiting for its PUBACK. */
export interface StoredBatch {
  seq: number;
  readings: Reading[];
}

/** The outcome of an append: how many rows were stored, and how many old rows the cap dropped. */
export interface AppendResult {
  appended: number;
  dropped: number;
}

/** How much is waiting to be delivered. */
export interface Backlog {
  /** Readings not yet acknowledged (batched or not). */
  rows: number;
  /** Batches formed and not yet acknowledged. */
  batches: number;
  /** Timestamp (ms) of the oldest reading waiting, or `null` when empty. */
  oldestTs: number | null;
  /** Readings dropped by the cap over the life of the database. */
  droppedTotal: number;
  /** Batches set aside (refused by the cloud, or never acknowledged): kept, never resent. */
  setAside: number;
}

/**
 * The agent's durable outbox: the source of truth for telemetry until the broker acknowledges it.
 * Every implementation must pass `test/outbox/outbox-store-conformance.ts`.
 *
 * Invariants: a batch's `seq` and rows never change once formed; a row is deleted only by `ack`
 * of its batch (or by the cap, which only takes rows not yet in a batch).
 */
export interface OutboxStore {
  /** Identifies this database for the cloud's dedupe: `(stream, seq)` names one batch forever. */
  readonly stream: string;
  /** Stores readings in one transaction, then enforces the cap (drop-oldest unbatched rows). */
  append(readings: readonly Reading[]): AppendResult;
  /**
   * Appends `count` readings named `name` whose values continue a persisted counter (1, 2, 3, …),
   * atomically with the counter's update, so values never repeat or skip across restarts.
   */
  appendCounter(name: string, count: number, ts: number): AppendResult;
  /** Every formed, unacknowledged batch in seq order: what a restart must publish again. */
  pendingBatches(): StoredBatch[];
  /** Forms the next batch from up to `max` unbatched rows in id order, persisting it first; `undefined` if none. */
  nextBatch(max: number): StoredBatch | undefined;
  /** Deletes the batch and its rows (after its PUBACK). Acknowledging an unknown seq is a no-op. */
  ack(seq: number): void;
  /**
   * Moves a formed batch out of the outbox into the set-aside table, in one transaction: it is
   * never resent, and the batches behind it flow. False if no such batch (already acknowledged).
   */
  setAside(seq: number, reason: SetAsideReason): boolean;
  backlog(): Backlog;
  close(): void;
}

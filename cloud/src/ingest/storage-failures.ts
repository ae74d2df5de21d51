import { createHash } from "node:crypto";

/**
 * SQLite result codes that say the store, not the message, is at fault (disk I/O, disk full, a
 * lock held elsewhere, memory): the same message may be stored on a later try.
 */
const TRANSIENT_CODES = /^SQLITE_(IOERR|FULL|BUSY|LOCKED|NOMEM|CANTOPEN|PROTOCOL)/;

export function isTransientStorageError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && TRANSIENT_CODES.test(code);
}

/** Bounds the memory of messages seen failing; past it the oldest are forgotten. */
const MAX_TRACKED = 10_000;

/**
 * Decides whether a message that failed at storage may be retried (PUBACK withheld, the device
 * resends) or must be refused: a failure that is not transient is refused at once, a transient one
 * after `maxTransient` failures of the same message, so no message can loop for ever.
 */
export class StorageFailures {
  private readonly counts = new Map<string, number>();

  constructor(private readonly maxTransient: number) {}

  mayRetry(deviceId: number, topic: string, payload: Buffer, err: unknown): boolean {
    if (!isTransientStorageError(err)) return false;
    const key = messageKey(deviceId, topic, payload);
    const count = (this.counts.get(key) ?? 0) + 1;
    this.counts.delete(key);
    if (count >= this.maxTransient) return false;
    this.counts.set(key, count);
    if (this.counts.size > MAX_TRACKED) this.counts.delete(this.counts.keys().next().value as string);
    return true;
  }

  succeeded(deviceId: number, topic: string, payload: Buffer): void {
    if (this.counts.size > 0) this.counts.delete(messageKey(deviceId, topic, payload));
  }
}

function messageKey(deviceId: number, topic: string, payload: Buffer): string {
  return `${deviceId}\u0000${topic}\u0000${createHash("sha256").update(payload).digest("hex")}`;
}

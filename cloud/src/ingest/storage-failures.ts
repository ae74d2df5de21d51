import { createHash } from "node:crypto";

/**
 * Codes that say the store, not the message, is at fault, so the same message may be stored on a
 * later try. SQLite: disk I/O, disk full, a lock held elsewhere, memory. PostgreSQL (SQLSTATE):
 * the connection (08), serialization or deadlock (40001, 40P01), resources (53), the server
 * shutting down (57P), a lock timeout (55P03); and the network under the pool.
 */
const TRANSIENT_CODES =
  /^(SQLITE_(IOERR|FULL|BUSY|LOCKED|NOMEM|CANTOPEN|PROTOCOL)|08|40001$|40P01$|53|57P|55P03$|ECONNREFUSED$|ECONNRESET$|ETIMEDOUT$|EPIPE$)/;

export function isTransientStorageError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && TRANSIENT_CODES.test(code)) return true;
  // pg's pool times out waiting for a connection with a plain Error.
  return err instanceof Error && /timeout exceeded when trying to connect|Connection terminated/.test(err.message);
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

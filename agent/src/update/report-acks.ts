import { EventEmitter } from "node:events";
import type { CloudLink } from "./update-machine.js";

/**
 * What the confirmation gate asks of the cloud connection: was a job report sent at or after a
 * time acknowledged (PUBACK)? The send time counts, not the ack's: a report sent before the
 * activation and acknowledged after it proves nothing about the new version.
 */
export class ReportAcks extends EventEmitter<{ reached: [] }> implements CloudLink {
  private lastAckedSentAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly clock: () => number = Date.now) {
    super();
  }

  /** Runs one publish; when it resolves (the PUBACK), its send time counts. Rejections pass through. */
  async track(publish: () => Promise<void>): Promise<void> {
    const sentAt = this.clock();
    await publish();
    this.lastAckedSentAt = Math.max(this.lastAckedSentAt, sentAt);
    this.emit("reached");
  }

  reachedSince(since: number): boolean {
    return this.lastAckedSentAt >= since;
  }
}

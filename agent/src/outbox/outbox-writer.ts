import { EventEmitter } from "node:events";
import type { Reading } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { AppendResult, OutboxStore } from "./outbox-store.js";

/** Where producers put readings; the sampler depends on this, not on the store. */
export interface ReadingSink {
  append(readings: readonly Reading[]): AppendResult;
  appendCounter(name: string, count: number, ts: number): AppendResult;
}

/** Options of the writer. */
export interface OutboxWriterOptions {
  store: OutboxStore;
  logger: Logger;
  /** Called after every successful append (wakes the publisher). */
  onAppend?: () => void;
  /** At most one OUTBOX_FULL line per this period while the cap keeps dropping. */
  fullLogIntervalMs?: number;
  now?: () => number;
}

/** Events of the writer. */
export interface OutboxWriterEvents {
  full: [{ code: "OUTBOX_FULL"; dropped: number; droppedTotal: number }];
}

/** The producers' side of the outbox: appends, reports the cap's drops (OUTBOX_FULL) and wakes the publisher. */
export class OutboxWriter extends EventEmitter<OutboxWriterEvents> implements ReadingSink {
  private lastFullLog = Number.NEGATIVE_INFINITY;
  private droppedSinceLog = 0;

  constructor(private readonly options: OutboxWriterOptions) {
    super();
  }

  append(readings: readonly Reading[]): AppendResult {
    return this.after(this.options.store.append(readings));
  }

  appendCounter(name: string, count: number, ts: number): AppendResult {
    return this.after(this.options.store.appendCounter(name, count, ts));
  }

  private after(result: AppendResult): AppendResult {
    if (result.dropped > 0) this.reportDrops(result.dropped);
    if (result.appended > 0) this.options.onAppend?.();
    return result;
  }

  private reportDrops(dropped: number): void {
    const now = (this.options.now ?? Date.now)();
    const droppedTotal = this.options.store.backlog().droppedTotal;
    this.droppedSinceLog += dropped;
    this.emit("full", { code: "OUTBOX_FULL", dropped, droppedTotal });
    if (now - this.lastFullLog >= (this.options.fullLogIntervalMs ?? 60_000)) {
      this.options.logger.warn(
        { code: "OUTBOX_FULL", dropped: this.droppedSinceLog, droppedTotal },
        `outbox full: dropped the ${this.droppedSinceLog} oldest unsent readings (${droppedTotal} in total)`,
      );
      this.lastFullLog = now;
      this.droppedSinceLog = 0;
    }
  }
}

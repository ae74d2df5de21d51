import { EventEmitter } from "node:events";
import { deviceTopic, type TelemetryBatch } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { MessageSink } from "../transport/mqtt-session.js";
import type { OutboxStore, StoredBatch } from "./outbox-store.js";

/** Dependencies and limits of the publisher. */
export interface OutboxPublisherOptions {
  store: OutboxStore;
  sink: MessageSink;
  uuid: string;
  batchMax: number;
  maxInFlight: number;
  /** Idle poll period; a backlog drains without waiting for it. */
  publishIntervalMs: number;
  logger: Logger;
}

/** Events of the publisher. */
export interface OutboxPublisherEvents {
  published: [{ seq: number; count: number; replay: boolean }];
  acked: [{ seq: number; count: number; at: number }];
}

/**
 * Moves batches from the outbox to the broker at QoS 1.
 *
 * On every connect it first republishes each persisted batch with its original seq and rows (they
 * may have reached the broker before a crash or a drop; the cloud dedupes by (stream, seq)), then
 * forms new batches: the batch row is committed before the PUBLISH leaves, and the batch and its
 * readings are deleted only after the PUBACK. Up to `maxInFlight` batches are outstanding.
 */
export class OutboxPublisher extends EventEmitter<OutboxPublisherEvents> {
  private readonly topic: string;
  private readonly inFlight = new Set<number>();
  private replay: StoredBatch[] = [];
  private generation = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private readonly unstoredAcks = new Set<number>();
  private lastError: string | undefined;
  private readonly onConnected = (): void => {
    this.replay = this.options.store
      .pendingBatches()
      .filter((b) => !this.inFlight.has(b.seq) && !this.unstoredAcks.has(b.seq));
    if (this.replay.length > 0) {
      this.options.logger.info(
        { batches: this.replay.length },
        `republishing ${this.replay.length} unacknowledged batches`,
      );
    }
    this.pump();
  };
  private readonly onDisconnected = (): void => {
    // The session rejected every publish still waiting; those batches are replayed on the next connect.
    this.generation += 1;
    this.inFlight.clear();
    this.replay = [];
  };

  constructor(private readonly options: OutboxPublisherOptions) {
    super();
    this.topic = deviceTopic(options.uuid, { kind: "telemetry" });
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.options.sink.on("connected", this.onConnected);
    this.options.sink.on("disconnected", this.onDisconnected);
    this.timer = setInterval(() => this.pump(), this.options.publishIntervalMs);
    if (this.options.sink.connected) this.onConnected();
  }

  /** Stops forming batches and waits up to `drainMs` for the PUBACKs of those in flight. */
  async stop(drainMs = 2000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.options.sink.off("connected", this.onConnected);
    this.options.sink.off("disconnected", this.onDisconnected);
    const deadline = Date.now() + drainMs;
    while (this.inFlight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  /** Tells the publisher new rows exist, so it need not wait for the next poll. */
  notify(): void {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    const { store, sink, batchMax, maxInFlight, logger } = this.options;
    try {
      this.retryAcks();
      while (this.running && sink.connected && this.inFlight.size < maxInFlight) {
        const replayed = this.replay.shift();
        const batch = replayed ?? store.nextBatch(batchMax);
        if (!batch) return;
        this.send(batch, replayed !== undefined);
      }
    } catch (err) {
      // A store that cannot write (a full disk: STORAGE_FULL) must not stop the agent; the next poll tries again.
      const message = (err as Error).message;
      if (message !== this.lastError)
        logger.error({ err: message }, "forming a batch failed; retrying on the next poll");
      this.lastError = message;
    }
  }

  /** Acknowledged batches whose delete failed (a full disk): deleted as soon as the store can. */
  private retryAcks(): void {
    for (const seq of [...this.unstoredAcks]) {
      this.options.store.ack(seq);
      this.unstoredAcks.delete(seq);
    }
  }

  private send(batch: StoredBatch, replay: boolean): void {
    const { store, sink, logger } = this.options;
    const generation = this.generation;
    const message: TelemetryBatch = { v: 1, stream: store.stream, seq: batch.seq, readings: batch.readings };
    this.inFlight.add(batch.seq);
    this.emit("published", { seq: batch.seq, count: batch.readings.length, replay });
    sink.publish(this.topic, JSON.stringify(message), { qos: 1 }).then(
      () => {
        // A PUBACK is the broker taking responsibility, whatever happened to the session since.
        try {
          store.ack(batch.seq);
        } catch (err) {
          // Delivered all the same: the rows stay until a retry deletes them (or a reconnect resends them, deduped).
          logger.error({ seq: batch.seq, err: (err as Error).message }, "acknowledging a batch failed; retrying");
          this.unstoredAcks.add(batch.seq);
        }
        if (generation === this.generation) this.inFlight.delete(batch.seq);
        this.emit("acked", { seq: batch.seq, count: batch.readings.length, at: Date.now() });
        this.pump();
      },
      (err: unknown) => {
        if (generation !== this.generation) return;
        this.inFlight.delete(batch.seq);
        logger.debug({ seq: batch.seq, err: (err as Error).message }, "batch not acknowledged; it will be resent");
        // Still connected (rare): retry it on the next poll rather than waiting for a reconnect.
        if (sink.connected) this.replay.push(batch);
      },
    );
  }
}

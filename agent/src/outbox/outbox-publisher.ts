import { EventEmitter } from "node:events";
import { deviceTopic, SchemaValidator, type TelemetryBatch, TelemetryRefused } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { MessageSink } from "../transport/mqtt-session.js";
import type { OutboxStore, StoredBatch } from "./outbox-store.js";
import type { SetAsideReason } from "./set-aside.js";

const validator = new SchemaValidator();

/** Dependencies and limits of the publisher. */
export interface OutboxPublisherOptions {
  store: OutboxStore;
  sink: MessageSink;
  uuid: string;
  batchMax: number;
  maxInFlight: number;
  /** Idle poll period; a backlog drains without waiting for it. */
  publishIntervalMs: number;
  /**
   * A batch sent this many times without a PUBACK (across reconnects, within one run) is set aside:
   * the safety net for a batch the cloud can neither store nor name in a refusal notice.
   */
  maxSendAttempts?: number;
  logger: Logger;
}

/** How many sends without a PUBACK a batch gets by default before it is set aside. */
export const DEFAULT_MAX_SEND_ATTEMPTS = 10;

/** Events of the publisher. */
export interface OutboxPublisherEvents {
  published: [{ seq: number; count: number; replay: boolean }];
  acked: [{ seq: number; count: number; at: number }];
  setAside: [{ code: "BATCH_SET_ASIDE"; seq: number; reason: SetAsideReason }];
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
  private readonly refusedTopic: string;
  /** Sends per seq still waiting for a PUBACK. */
  private readonly attempts = new Map<number, number>();
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
    this.refusedTopic = deviceTopic(options.uuid, { kind: "telemetry/refused" });
  }

  /**
   * Takes the session's incoming messages; acts on the cloud's refusal notice, which arrives before
   * the refused batch's PUBACK: the batch is set aside, so the PUBACK then deletes nothing.
   */
  handleMessage(topic: string, payload: Buffer): void {
    if (topic !== this.refusedTopic) return;
    let notice: TelemetryRefused;
    try {
      notice = validator.parse(TelemetryRefused, JSON.parse(payload.toString("utf8")));
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, "ignoring a malformed telemetry/refused notice");
      return;
    }
    if (notice.stream !== this.options.store.stream) return;
    const { code, field, message } = notice;
    this.setAside(notice.seq, { code, ...(field === undefined ? {} : { field }), message });
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

  private setAside(seq: number, reason: SetAsideReason): boolean {
    let moved: boolean;
    try {
      moved = this.options.store.setAside(seq, reason);
    } catch (err) {
      this.options.logger.error({ seq, err: (err as Error).message }, "setting a batch aside failed");
      return false;
    }
    this.attempts.delete(seq);
    if (!moved) return false;
    this.options.logger.warn(
      { code: "BATCH_SET_ASIDE", seq, refusal: reason.code, field: reason.field },
      `telemetry batch ${seq} set aside (${reason.code}${reason.field ? ` at ${reason.field}` : ""}): ${reason.message}`,
    );
    this.emit("setAside", { code: "BATCH_SET_ASIDE", seq, reason });
    return true;
  }

  private send(batch: StoredBatch, replay: boolean): void {
    const { store, sink, logger } = this.options;
    const sent = (this.attempts.get(batch.seq) ?? 0) + 1;
    const max = this.options.maxSendAttempts ?? DEFAULT_MAX_SEND_ATTEMPTS;
    if (sent > max) {
      const message = `sent ${max} times without a PUBACK`;
      if (this.setAside(batch.seq, { code: "BATCH_SET_ASIDE", message })) return;
    }
    this.attempts.set(batch.seq, sent);
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
        this.attempts.delete(batch.seq);
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

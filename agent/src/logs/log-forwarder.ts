import { deviceTopic, type LogBatch, type LogLevelName } from "@fieldgate/shared";
import type { MessageSink } from "../transport/mqtt-session.js";
import { LEVEL_VALUES, type LogEntry, truncateMsg } from "./log-entry.js";
import type { LogBuffer, LogDrops } from "./sqlite-log-buffer.js";

/** Tuning of the forwarder (from `logs.*` in the agent config). */
export interface LogForwarderOptions {
  uuid: string;
  minLevel: LogLevelName;
  batchMax: number;
  flushIntervalMs: number;
  maxLinesPerSecond: number;
  /** Lines waiting to be batched beyond which the oldest are dropped (the buffer's own cap should match). */
  bufferMax: number;
  /** The durable buffer (`SqliteLogBuffer` in the agent database). */
  store: LogBuffer;
  /** How long accepted lines are staged before one commit; default `DEFAULT_PERSIST_DELAY_MS`. */
  persistDelayMs?: number;
  /** Told when the buffer fails, once per distinct message (the forwarder itself never logs). */
  onStoreError?: (message: string) => void;
  clock?: () => number;
}

/** Counters for status and tests. */
export interface LogForwarderStats {
  /** Lines accepted and not yet acknowledged by the broker (on disk or about to be). */
  buffered: number;
  forwarded: number;
  droppedRateLimit: number;
  droppedBufferFull: number;
}

/** Upper bound on one batch's JSON: the cloud refuses payloads over 1 MiB. */
const MAX_BATCH_BYTES = 512 * 1024;
/** LogBatch allows at most 1000 entries. */
const MAX_BATCH_ENTRIES = 1000;
/**
 * How long accepted lines wait in memory before they are committed together: one fsync per
 * commit, so a chatty tick costs one transaction, not one per line. A crash loses at most this.
 */
export const DEFAULT_PERSIST_DELAY_MS = 100;

/**
 * Forwards log entries to the cloud's `logs` topic in batches, at QoS 1, through a durable buffer.
 *
 * - entries below `minLevel` are ignored (not a drop: the operator did not ask for them);
 * - a token bucket (`maxLinesPerSecond`, burst of one second's worth) drops and counts the excess,
 *   so a log storm cannot saturate the uplink;
 * - accepted entries are committed to the buffer (SQLite) together within `persistDelayMs`, or at
 *   once when `batchMax` wait; there at most `bufferMax` lines wait, beyond it the oldest go, counted;
 * - a batch is persisted with its identity (`stream`, `seq`) before it is published and deleted only
 *   after its PUBACK; until then it is sent again, identical, after a failure, a reconnect or a
 *   restart, and the cloud stores it once;
 * - each batch formed while drops are pending begins with a warn entry "dropped N log lines
 *   (reason)"; the counts are persisted and move into the batch, so a drop is never lost silently.
 *
 * It never throws to its callers and never logs (a log line about logging would feed itself):
 * a buffer failure goes to `onStoreError`, and the lines wait in memory until the buffer works again.
 */
export class LogForwarder {
  private staged: LogEntry[] = [];
  private readonly stagedDrops: LogDrops = { rate: 0, buffer: 0 };
  private sink: MessageSink | undefined;
  private timer: NodeJS.Timeout | undefined;
  private persistTimer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private tokens: number;
  private lastRefill: number;
  private minValue: number;
  private rate: number;
  private lastStoreError: string | undefined;
  private readonly totals: LogForwarderStats = { buffered: 0, forwarded: 0, droppedRateLimit: 0, droppedBufferFull: 0 };
  private readonly clock: () => number;
  private readonly topic: string;
  private readonly store: LogBuffer;
  private readonly onConnected = () => void this.flush();

  constructor(private readonly options: LogForwarderOptions) {
    this.clock = options.clock ?? Date.now;
    this.store = options.store;
    this.topic = deviceTopic(options.uuid, { kind: "logs" });
    this.minValue = LEVEL_VALUES[options.minLevel];
    this.rate = options.maxLinesPerSecond;
    this.tokens = this.rate;
    this.lastRefill = this.clock();
  }

  get minLevel(): LogLevelName {
    return (Object.keys(LEVEL_VALUES) as LogLevelName[]).find((l) => LEVEL_VALUES[l] === this.minValue) ?? "info";
  }

  setMinLevel(level: LogLevelName): void {
    this.minValue = LEVEL_VALUES[level];
  }

  setRateLimit(linesPerSecond: number): void {
    this.rate = linesPerSecond;
    this.tokens = Math.min(this.tokens, linesPerSecond);
  }

  stats(): LogForwarderStats {
    return { ...this.totals, buffered: this.store.stored + this.staged.length };
  }

  /** Where batches go; until a sink is attached (enrolling) entries wait in the buffer. */
  attach(sink: MessageSink): void {
    this.sink?.off("connected", this.onConnected);
    this.sink = sink;
    sink.on("connected", this.onConnected);
    if (sink.connected) void this.flush();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer, commits what is staged, then tries one last flush for up to `timeoutMs`. */
  async stop(timeoutMs = 1000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.persist();
    await Promise.race([this.flush(), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    this.persist();
    this.sink?.off("connected", this.onConnected);
  }

  /** Takes one entry; never throws and never logs (a log line about logging would feed itself). */
  accept(entry: LogEntry): void {
    if (LEVEL_VALUES[entry.level] < this.minValue) return;
    if (!this.takeToken()) {
      this.stagedDrops.rate++;
      this.totals.droppedRateLimit++;
      this.schedulePersist();
      return;
    }
    this.staged.push({ ts: entry.ts, level: entry.level, msg: truncateMsg(entry.msg) });
    if (this.staged.length >= this.options.batchMax) {
      this.persist();
      if (this.store.waiting >= this.options.batchMax) void this.flush();
    } else {
      this.schedulePersist();
    }
  }

  /**
   * Publishes the pending batch (again) or forms the next one, one at a time, while connected;
   * a batch is deleted from the buffer only after its PUBACK.
   */
  async flush(): Promise<void> {
    const sink = this.sink;
    if (this.inFlight || !sink?.connected) return;
    this.inFlight = true;
    let sentOne = false;
    try {
      this.persist();
      const batch = this.guard(
        () => this.store.pendingBatch() ?? this.store.nextBatch(this.batchLimit(), MAX_BATCH_BYTES, this.clock()),
      );
      if (!batch) return;
      const message: LogBatch = { v: 1, stream: this.store.stream, seq: batch.seq, entries: batch.entries };
      try {
        await sink.publish(this.topic, JSON.stringify(message), { qos: 1 });
      } catch {
        // The batch stays in the buffer as it is, and goes again with the next flush or connect.
        return;
      }
      this.guard(() => this.store.ack(batch.seq));
      this.totals.forwarded += batch.lines;
      sentOne = true;
    } finally {
      this.inFlight = false;
    }
    // A backlog (after an outage or a restart) drains batch after batch, not one per interval.
    if (sentOne && this.store.waiting >= this.options.batchMax) await this.flush();
  }

  /** Commits the staged lines and drop counts in one transaction; on failure they stay staged (bounded). */
  private persist(): void {
    if (this.persistTimer) clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    if (this.staged.length === 0 && this.stagedDrops.rate === 0 && this.stagedDrops.buffer === 0) return;
    const result = this.guard(() => this.store.append(this.staged, this.stagedDrops));
    if (!result) {
      this.trimStaged();
      return;
    }
    this.staged = [];
    this.stagedDrops.rate = 0;
    this.stagedDrops.buffer = 0;
    this.totals.droppedBufferFull += result.dropped;
  }

  private schedulePersist(): void {
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => this.persist(), this.options.persistDelayMs ?? DEFAULT_PERSIST_DELAY_MS);
    this.persistTimer.unref();
  }

  /** While the buffer fails, memory holds at most `bufferMax` lines; the oldest go, counted. */
  private trimStaged(): void {
    const excess = this.staged.length - this.options.bufferMax;
    if (excess > 0) {
      this.staged.splice(0, excess);
      this.stagedDrops.buffer += excess;
      this.totals.droppedBufferFull += excess;
    }
    this.schedulePersist();
  }

  /** Runs a buffer operation; a failure (a damaged or full disk) is reported once per message, never thrown. */
  private guard<T>(operation: () => T): T | undefined {
    try {
      const result = operation();
      this.lastStoreError = undefined;
      return result;
    } catch (err) {
      const message = (err as Error).message;
      if (message !== this.lastStoreError) this.options.onStoreError?.(message);
      this.lastStoreError = message;
      return undefined;
    }
  }

  private batchLimit(): number {
    return Math.min(this.options.batchMax, MAX_BATCH_ENTRIES);
  }

  private takeToken(): boolean {
    const now = this.clock();
    const elapsed = Math.max(0, now - this.lastRefill);
    this.lastRefill = now;
    this.tokens = Math.min(this.rate, this.tokens + (elapsed * this.rate) / 1000);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

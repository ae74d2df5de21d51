import { deviceTopic, type LogBatch, type LogLevelName } from "@fieldgate/shared";
import type { MessageSink } from "../transport/mqtt-session.js";
import { LEVEL_VALUES, type LogEntry, truncateMsg } from "./log-entry.js";

/** Tuning of the forwarder (from `logs.*` in the agent config). */
export interface LogForwarderOptions {
  uuid: string;
  minLevel: LogLevelName;
  batchMax: number;
  flushIntervalMs: number;
  maxLinesPerSecond: number;
  bufferMax: number;
  clock?: () => number;
}

/** Counters for status and tests. */
export interface LogForwarderStats {
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
 * Forwards log entries to the cloud's `logs` topic in batches, at QoS 1.
 *
 * - entries below `minLevel` are ignored (not a drop: the operator did not ask for them);
 * - a token bucket (`maxLinesPerSecond`, burst of one second's worth) drops and counts the excess,
 *   so a log storm cannot saturate the uplink;
 * - while offline, entries wait in a bounded buffer (`bufferMax`); beyond it the oldest go, counted;
 * - each flush that has drops to report prepends a warn entry "dropped N log lines (reason)"; the
 *   counters are cleared only once that batch is acknowledged, so a drop is never lost silently.
 *
 * Logs are best effort by design: unlike telemetry they live in memory, so a restart loses what
 * was buffered.
 */
export class LogForwarder {
  private buffer: LogEntry[] = [];
  private sink: MessageSink | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private tokens: number;
  private lastRefill: number;
  private minValue: number;
  private rate: number;
  private pendingDrops = { rate: 0, buffer: 0 };
  private readonly totals: LogForwarderStats = { buffered: 0, forwarded: 0, droppedRateLimit: 0, droppedBufferFull: 0 };
  private readonly clock: () => number;
  private readonly topic: string;
  private readonly onConnected = () => void this.flush();

  constructor(private readonly options: LogForwarderOptions) {
    this.clock = options.clock ?? Date.now;
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
    return { ...this.totals, buffered: this.buffer.length };
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

  /** Stops the timer, then tries one last flush for up to `timeoutMs`. */
  async stop(timeoutMs = 1000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.race([this.flush(), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    this.sink?.off("connected", this.onConnected);
  }

  /** Takes one entry; never throws and never logs (a log line about logging would feed itself). */
  accept(entry: LogEntry): void {
    if (LEVEL_VALUES[entry.level] < this.minValue) return;
    if (!this.takeToken()) {
      this.pendingDrops.rate++;
      this.totals.droppedRateLimit++;
      return;
    }
    this.push({ ts: entry.ts, level: entry.level, msg: truncateMsg(entry.msg) });
    if (this.buffer.length >= this.options.batchMax) void this.flush();
  }

  /** Publishes what is buffered, one batch at a time, while connected; one flush runs at a time. */
  async flush(): Promise<void> {
    const sink = this.sink;
    if (this.inFlight || !sink?.connected) return;
    const reports = this.dropReports();
    if (this.buffer.length === 0 && reports.length === 0) return;
    this.inFlight = true;
    try {
      const drops = { ...this.pendingDrops };
      const entries = [...reports, ...this.takeBatch(reports)];
      const batch: LogBatch = { v: 1, entries };
      const sent = entries.length - reports.length;
      try {
        await sink.publish(this.topic, JSON.stringify(batch), { qos: 1 });
      } catch {
        // Back to the front of the queue; the drop counts stay pending for the next report.
        this.buffer.unshift(...entries.slice(reports.length));
        this.trimOverflow();
        return;
      }
      this.pendingDrops.rate -= drops.rate;
      this.pendingDrops.buffer -= drops.buffer;
      this.totals.forwarded += sent;
    } finally {
      this.inFlight = false;
    }
    // A backlog (after an outage) drains batch after batch, not one per interval.
    if (this.buffer.length >= this.options.batchMax) await this.flush();
  }

  private dropReports(): LogEntry[] {
    const now = this.clock();
    const reports: LogEntry[] = [];
    if (this.pendingDrops.rate > 0) {
      reports.push({ ts: now, level: "warn", msg: `dropped ${this.pendingDrops.rate} log lines (rate limit)` });
    }
    if (this.pendingDrops.buffer > 0) {
      reports.push({ ts: now, level: "warn", msg: `dropped ${this.pendingDrops.buffer} log lines (buffer full)` });
    }
    return reports;
  }

  private takeBatch(reports: LogEntry[]): LogEntry[] {
    const max = Math.min(this.options.batchMax, MAX_BATCH_ENTRIES) - reports.length;
    let bytes = reports.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)) + 1, 32);
    let count = 0;
    while (count < max && count < this.buffer.length) {
      const size = Buffer.byteLength(JSON.stringify(this.buffer[count])) + 1;
      if (count > 0 && bytes + size > MAX_BATCH_BYTES) break;
      bytes += size;
      count++;
    }
    return this.buffer.splice(0, count);
  }

  private push(entry: LogEntry): void {
    this.buffer.push(entry);
    this.trimOverflow();
  }

  private trimOverflow(): void {
    const excess = this.buffer.length - this.options.bufferMax;
    if (excess <= 0) return;
    this.buffer.splice(0, excess);
    this.pendingDrops.buffer += excess;
    this.totals.droppedBufferFull += excess;
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

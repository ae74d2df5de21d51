import { statfsSync } from "node:fs";
import { freemem, loadavg, totalmem, uptime } from "node:os";
import type { Reading } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { ReadingSink } from "../outbox/outbox-writer.js";

/** What the sampler measures and how often. */
export interface SystemSamplerOptions {
  sink: ReadingSink;
  /** The filesystem whose free space is reported (the data directory). */
  dataDir: string;
  sampleIntervalMs: number;
  /** Diagnostic: readings per second of `synthetic.counter` (1, 2, 3, … across restarts); 0 is off. */
  syntheticRate: number;
  logger: Logger;
  now?: () => number;
}

const SYNTHETIC_TICK_MS = 200;

/** The first producer: system load, memory, disk and uptime every `sampleInterval`, plus the synthetic counter. */
export class SystemSampler {
  private sampleTimer: NodeJS.Timeout | undefined;
  private syntheticTimer: NodeJS.Timeout | undefined;
  private syntheticStart = 0;
  private syntheticEmitted = 0;

  constructor(private readonly options: SystemSamplerOptions) {}

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  start(): void {
    if (this.sampleTimer) return;
    this.sampleOnce();
    this.sampleTimer = setInterval(() => this.sampleOnce(), this.options.sampleIntervalMs);
    if (this.options.syntheticRate > 0) {
      this.syntheticStart = this.now();
      this.syntheticEmitted = 0;
      this.syntheticTimer = setInterval(() => this.syntheticTick(), SYNTHETIC_TICK_MS);
    }
  }

  stop(): void {
    if (this.sampleTimer) clearInterval(this.sampleTimer);
    if (this.syntheticTimer) clearInterval(this.syntheticTimer);
    this.sampleTimer = undefined;
    this.syntheticTimer = undefined;
  }

  /** Takes one sample and appends it; a failing sample is logged, never thrown into the timer. */
  sampleOnce(): Reading[] {
    const ts = this.now();
    const readings: Reading[] = [
      { name: "system.load1", ts, value: round(loadavg()[0] ?? 0, 3) },
      { name: "system.mem.used_pct", ts, value: round((1 - freemem() / totalmem()) * 100, 2), unit: "%" },
      { name: "system.uptime_s", ts, value: Math.round(uptime()), unit: "s" },
    ];
    try {
      const fs = statfsSync(this.options.dataDir);
      if (fs.blocks > 0) {
        readings.push({ name: "system.disk.free_pct", ts, value: round((fs.bavail / fs.blocks) * 100, 2), unit: "%" });
      }
    } catch (err) {
      this.options.logger.debug({ err: (err as Error).message }, "statfs of the data directory failed");
    }
    try {
      this.options.sink.append(readings);
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message }, "storing system readings failed");
    }
    return readings;
  }

  private syntheticTick(): void {
    const due = Math.floor(((this.now() - this.syntheticStart) * this.options.syntheticRate) / 1000);
    const count = due - this.syntheticEmitted;
    if (count <= 0) return;
    try {
      this.options.sink.appendCounter("synthetic.counter", count, this.now());
      this.syntheticEmitted = due;
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message }, "storing synthetic readings failed");
    }
  }
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

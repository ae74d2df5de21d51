import { EventEmitter } from "node:events";
import https from "node:https";
import { FieldgateError } from "@fieldgate/shared";
import type { Logger } from "pino";

/** One measurement of the local clock against the cloud's. */
export interface SkewSample {
  /** Cloud time minus local time, in ms: positive means the local clock is behind. */
  skewMs: number;
  /** Round trip of the request; the estimate is good to about ±(rtt/2 + 500 ms). */
  rttMs: number;
  /** Local time of the measurement (ms since the epoch). */
  at: number;
  source: "https-date" | "mqtt-round-trip";
}

/** Where and how to measure. */
export interface ClockSkewOptions {
  /** The cloud's https base URL; `GET /api/v1/health` is asked for its `Date` header. */
  cloudUrl: string;
  /** The CA to trust: `cloud.caFile` or the stored `identity/ca.crt`; read per attempt, since enrollment may store it. */
  ca?: () => string | Buffer | undefined;
  /** Period of the measurements; a failed one is retried after min(interval, 1 min). */
  intervalMs: number;
  timeoutMs?: number;
  logger: Logger;
  now?: () => number;
}

/** Events of `ClockSkew`. */
export interface ClockSkewEvents {
  measured: [SkewSample];
  failed: [Error];
}

/**
 * Measures the clock skew from the HTTPS `Date` header of the cloud's health endpoint.
 * `Date` has 1 s resolution and is truncated, so the server's time was in [Date, Date + 1 s):
 * the estimate is Date + 500 ms minus the request's local midpoint.
 *
 * MQTT round trips (`MqttTimeSync`) add millisecond samples through `record()`; the latest sample
 * of either kind is the estimate.
 */
export class ClockSkew extends EventEmitter<ClockSkewEvents> {
  private sample: SkewSample | undefined;
  private error: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private request: { abort: () => void } | undefined;

  constructor(private readonly options: ClockSkewOptions) {
    super();
  }

  /** The latest successful measurement, if any. */
  latest(): SkewSample | undefined {
    return this.sample;
  }

  /** Takes a sample measured another way (an MQTT round trip). */
  record(sample: SkewSample): void {
    this.sample = sample;
    this.error = undefined;
    this.emit("measured", sample);
  }

  /** Why the latest attempt failed, or `undefined` if it succeeded. */
  lastError(): string | undefined {
    return this.error;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.tick();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.request?.abort();
  }

  /** Measures once and records the result. Throws `CLOUD_UNREACHABLE` when the cloud does not answer with a `Date`. */
  async measure(): Promise<SkewSample> {
    const now = this.options.now ?? Date.now;
    const controller = new AbortController();
    this.request = { abort: () => controller.abort() };
    try {
      const start = now();
      const date = await fetchDate(
        new URL("/api/v1/health", this.options.cloudUrl),
        this.options.ca?.(),
        this.options.timeoutMs ?? 10_000,
        controller.signal,
      );
      const end = now();
      const sample: SkewSample = {
        skewMs: Math.round(date + 500 - (start + end) / 2),
        rttMs: end - start,
        at: end,
        source: "https-date",
      };
      this.sample = sample;
      this.error = undefined;
      this.emit("measured", sample);
      return sample;
    } catch (err) {
      this.error = (err as Error).message;
      this.emit("failed", err as Error);
      throw err;
    } finally {
      this.request = undefined;
    }
  }

  private tick(): void {
    this.measure().then(
      (s) => {
        this.options.logger.debug({ skewMs: s.skewMs, rttMs: s.rttMs }, "clock skew measured");
        this.schedule(this.options.intervalMs);
      },
      (err: Error) => {
        this.options.logger.debug({ err: err.message }, "clock skew measurement failed");
        this.schedule(Math.min(this.options.intervalMs, 60_000));
      },
    );
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.running) this.tick();
    }, ms);
    this.timer.unref();
  }
}

/** `GET url` over HTTPS; resolves with the answer's `Date` header in ms. */
function fetchDate(url: URL, ca: string | Buffer | undefined, timeoutMs: number, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (message: string) => reject(new FieldgateError("CLOUD_UNREACHABLE", message));
    const req = https.get(url, { ...(ca !== undefined && { ca }), timeout: timeoutMs, signal }, (res) => {
      res.resume();
      const header = res.headers.date;
      const date = header ? Date.parse(header) : Number.NaN;
      if (Number.isNaN(date)) fail(`${url.origin} answered ${res.statusCode} without a usable Date header`);
      else resolve(date);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (err) => fail(`cannot reach ${url.origin}: ${err.message}`));
  });
}

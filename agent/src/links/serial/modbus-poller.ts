import type { ModbusPoll } from "@fieldgate/shared";
import type { LinkReading } from "../link.js";
import { decodePollAnswer, functionCode, quantityOf } from "./modbus-values.js";

type Callback = (err: (Error & { modbusCode?: number; errno?: string }) | null, data?: { data: unknown[] }) => void;

/** The part of modbus-serial's `ModbusRTU` the poller uses. */
export interface ModbusClient {
  writeFC1(unit: number, address: number, length: number, next: Callback): void;
  writeFC2(unit: number, address: number, length: number, next: Callback): void;
  writeFC3(unit: number, address: number, length: number, next: Callback): void;
  writeFC4(unit: number, address: number, length: number, next: Callback): void;
}

/** The Modbus settings with durations resolved. */
export interface ModbusSchedule {
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  poll: readonly ModbusPoll[];
}

/** What the poller reports to its link. None of these may throw. */
export interface ModbusPollerEvents {
  /** One round's readings (every entry that answered), stamped with the round's start. */
  readings(ts: number, readings: LinkReading[]): void;
  /** A frame with a valid CRC arrived (an answer or an exception): the device is there. */
  answered(): void;
  exception(entry: ModbusPoll, code: number, message: string): void;
  timeout(entry: ModbusPoll, attempt: number): void;
  /** A CRC error, a short frame, or values that do not decode. */
  framing(entry: ModbusPoll, message: string): void;
  /** Every entry of a round went unanswered. */
  silentRound(): void;
}

/** Outcome of one request. */
type Outcome =
  | { kind: "ok"; data: unknown[] }
  | { kind: "exception"; code: number; message: string }
  | { kind: "timeout" }
  | { kind: "framing"; message: string }
  | { kind: "closed"; message: string };

/**
 * Reads the poll list round after round until stopped. Each request has the configured timeout and
 * retries; an exception answer is counted and not retried (the device said no); a timeout or a CRC
 * error is retried. Nothing ends the loop but `stop()`: after an outage the next round simply works.
 */
export class ModbusPoller {
  private running = false;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly client: ModbusClient,
    private readonly schedule: ModbusSchedule,
    private readonly events: ModbusPollerEvents,
    private readonly clock: () => number = Date.now,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      const started = this.clock();
      try {
        await this.round(started);
      } catch {
        // A bug in decoding or a callback must not end the polling; the next round starts as usual.
      }
      if (!this.running) break;
      const wait = Math.max(0, this.schedule.intervalMs - (this.clock() - started));
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, wait);
      });
      this.wake = undefined;
    }
  }

  private async round(ts: number): Promise<void> {
    const readings: LinkReading[] = [];
    let answered = 0;
    for (const entry of this.schedule.poll) {
      if (!this.running) return;
      const outcome = await this.read(entry);
      if (outcome.kind === "closed") return;
      if (outcome.kind === "ok" || outcome.kind === "exception") answered += 1;
      if (outcome.kind !== "ok") continue;
      const bits = entry.function === "coil" || entry.function === "discrete";
      const decoded = decodePollAnswer(
        entry,
        bits ? { bits: outcome.data.map((b) => b === true) } : { registers: outcome.data.map((w) => Number(w)) },
      );
      if (decoded.error !== undefined) this.events.framing(entry, decoded.error);
      readings.push(...decoded.readings);
    }
    if (!this.running) return;
    if (readings.length > 0) this.events.readings(ts, readings);
    if (answered === 0 && this.schedule.poll.length > 0) this.events.silentRound();
  }

  /** One entry with its retries. */
  private async read(entry: ModbusPoll): Promise<Outcome> {
    let last: Outcome = { kind: "timeout" };
    for (let attempt = 0; attempt <= this.schedule.retries && this.running; attempt++) {
      last = await this.request(entry);
      switch (last.kind) {
        case "ok":
          this.events.answered();
          return last;
        case "exception":
          this.events.answered();
          this.events.exception(entry, last.code, last.message);
          return last;
        case "closed":
          return last;
        case "timeout":
          this.events.timeout(entry, attempt);
          break;
        case "framing":
          this.events.framing(entry, last.message);
          break;
      }
    }
    return last;
  }

  private request(entry: ModbusPoll): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      let done = false;
      const finish = (outcome: Outcome): void => {
        if (done) return;
        done = true;
        clearTimeout(guard);
        resolve(outcome);
      };
      // modbus-serial times requests out itself; this guard only keeps a lost callback from stalling the loop.
      const guard = setTimeout(() => finish({ kind: "timeout" }), this.schedule.timeoutMs + 1000);
      const next: Callback = (err, data) => {
        if (!err) return finish({ kind: "ok", data: Array.isArray(data?.data) ? data.data : [] });
        if (typeof err.modbusCode === "number") {
          return finish({ kind: "exception", code: err.modbusCode, message: err.message });
        }
        if (err.errno === "ETIMEDOUT" || /timed out/i.test(err.message)) return finish({ kind: "timeout" });
        if (err.errno === "ECONNREFUSED" || /port not open/i.test(err.message) || err.name === "PortNotOpenError") {
          return finish({ kind: "closed", message: err.message });
        }
        finish({ kind: "framing", message: err.message });
      };
      try {
        const fc = functionCode(entry.function);
        const quantity = quantityOf(entry);
        if (fc === 1) this.client.writeFC1(entry.unitId, entry.address, quantity, next);
        else if (fc === 2) this.client.writeFC2(entry.unitId, entry.address, quantity, next);
        else if (fc === 3) this.client.writeFC3(entry.unitId, entry.address, quantity, next);
        else this.client.writeFC4(entry.unitId, entry.address, quantity, next);
      } catch (err) {
        finish({ kind: "closed", message: (err as Error).message });
      }
    });
  }
}

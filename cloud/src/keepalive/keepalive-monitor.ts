import type { Logger } from "pino";
import type { EventRecorder } from "../events/device-events.js";
import type { CloudDatabase, Executor } from "../storage/cloud-database.js";

export interface KeepaliveOptions {
  /** How often to look for silent devices. */
  checkIntervalMs: number;
  /** How long one keep-alive minute lasts: 60000, shorter only in tests. */
  minuteMs: number;
}

/** A raised KEEPALIVE_MISSED, as recorded in the device's event history; what callbacks will be handed. */
export interface KeepaliveMissed {
  deviceId: number;
  uuid: string;
  orgId: number;
  ts: number;
  /** When the device last sent anything. */
  lastSeen: number;
  keepaliveMinutes: number;
  message: string;
}

export type KeepaliveListener = (event: KeepaliveMissed) => void;

/** A device whose type has a keep-alive and that has been silent longer, not alerted yet for this silence. */
export interface SilentDevice {
  id: number;
  uuid: string;
  orgId: number;
  lastSeen: number;
  keepaliveMinutes: number;
}

/** The device rows the monitor reads and marks (DeviceRegistry implements it), in the monitor's transaction. */
export interface KeepaliveDevices {
  /** Up to `limit` devices silent for at least their type's keep-alive of minutes of `minuteMs`, at `now`. */
  silentDevices(
    minuteMs: number,
    now: number,
    limit: number,
    executor?: Executor,
  ): SilentDevice[] | Promise<SilentDevice[]>;
  /** Marks the device's current silence alerted, so it raises one event. */
  markKeepaliveAlerted(deviceId: number, at: number, executor?: Executor): void | Promise<void>;
}

/** At most this many alerts per check, so one check never holds the database long; the rest come next check. */
const BATCH = 5000;

/**
 * Raises KEEPALIVE_MISSED (severity error) for a device whose type has a keep-alive of M minutes
 * and that sent nothing for M minutes, as Sigfox does. "Sent" is `last_seen`: any message, connect
 * or disconnect. A device never seen is not watched: it is not in service yet. One event per
 * silence: `keepalive_alerted_at` marks it, and a device that speaks again (last_seen moves past
 * the mark) and falls silent again raises a new one.
 */
export class KeepaliveMonitor {
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: KeepaliveListener[] = [];
  private checking: Promise<void> | undefined;

  constructor(
    private readonly database: CloudDatabase,
    private readonly devices: KeepaliveDevices,
    private readonly events: EventRecorder,
    private readonly clock: () => number,
    private readonly logger: Logger,
    private readonly options: KeepaliveOptions,
  ) {}

  /** Finding and marking in one transaction: a message arriving in between cannot be lost or double-counted. */
  private raise(now: number): Promise<KeepaliveMissed[]> {
    return this.database.kysely.transaction().execute(async (trx) => {
      const raised: KeepaliveMissed[] = [];
      for (const row of await this.devices.silentDevices(this.options.minuteMs, now, BATCH, trx)) {
        const silentMinutes = Math.floor((now - row.lastSeen) / this.options.minuteMs);
        const event: KeepaliveMissed = {
          deviceId: row.id,
          uuid: row.uuid,
          orgId: row.orgId,
          ts: now,
          lastSeen: row.lastSeen,
          keepaliveMinutes: row.keepaliveMinutes,
          message: `no message for ${silentMinutes} minutes (keep-alive ${row.keepaliveMinutes} min)`,
        };
        await this.events.record(row.id, "KEEPALIVE_MISSED", "error", event.message, { ts: now }, trx);
        await this.devices.markKeepaliveAlerted(row.id, now, trx);
        raised.push(event);
      }
      return raised;
    });
  }

  /** Called for each raised event, after it is stored: the seam for callbacks. */
  onMissed(listener: KeepaliveListener): void {
    this.listeners.push(listener);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.checkSafely(), this.options.checkIntervalMs);
    // The monitor alone must not keep the process alive.
    this.timer.unref();
  }

  /** Stops the timer; resolves once a check in progress is done, so the database can close. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.settled();
  }

  /** Resolves once the pass in flight, if any, has finished (on PostgreSQL a pass waits on the network). */
  async settled(): Promise<void> {
    await this.checking;
  }

  /** One pass: stores and returns the events raised now. */
  async check(): Promise<KeepaliveMissed[]> {
    const events = await this.raise(this.clock());
    for (const event of events) {
      this.logger.warn({ uuid: event.uuid, keepaliveMinutes: event.keepaliveMinutes }, "keep-alive missed");
      for (const listener of this.listeners) {
        try {
          listener(event);
        } catch (err) {
          this.logger.error({ uuid: event.uuid, err: (err as Error).message }, "keep-alive listener failed");
        }
      }
    }
    return events;
  }

  private checkSafely(): void {
    // A pass still running (a slow database) is not overtaken by the next.
    if (this.checking) return;
    this.checking = this.check()
      .catch((err: Error) => {
        // A busy or failing database skips one pass; the next pass finds the same devices.
        this.logger.error({ err: err.message }, "keep-alive check failed");
      })
      .then(() => {
        this.checking = undefined;
      });
  }
}

import type { DeviceEvents } from "@fieldgate/shared";
import type { Generated, Kysely } from "kysely";
import type { CloudDatabase, Executor } from "../storage/cloud-database.js";
import { readRows, storedIso } from "../storage/stored-row.js";
import type { EventCode, EventSeverity, SeverityOf } from "./event-codes.js";

/** Where an event applies, and when it happened when that is not now. */
export interface EventDetail {
  /** The part of a message at fault. */
  field?: string;
  /** The MQTT topic concerned. */
  topic?: string;
  /** Milliseconds since the epoch; the log's clock when left out. */
  ts?: number;
}

/** One event as readers get it. */
export interface StoredEvent {
  ts: string;
  code: string;
  severity: string;
  message: string;
  field: string | null;
  topic: string | null;
}

/** A page of a device's events, newest first; `skipped` counts stored rows no reader can show. */
export interface EventPage {
  items: StoredEvent[];
  skipped?: number;
}

/** What the cloud's own capabilities need to add to a device's history. */
export interface EventRecorder {
  record<C extends EventCode>(
    deviceId: number,
    code: C,
    severity: SeverityOf<C>,
    message: string,
    detail?: EventDetail,
    executor?: Executor,
  ): Promise<void>;
}

/** A device event as events on the `events` topic carry it: the device's own code. */
export type ReportedEvent = DeviceEvents["events"][number];

type EventTables = {
  device_events: {
    id: Generated<number>;
    device_id: number;
    ts: number;
    code: string;
    severity: EventSeverity | string;
    message: string;
    field: string | null;
    topic: string | null;
  };
};

/**
 * The device event history (`device_events`): the only module that reads or writes it. The cloud
 * records its own codes (EVENT_CODES); what a device reports keeps the device's codes. Every
 * writing method takes the caller's transaction as `executor` when the event must commit with it.
 */
export class DeviceEventLog implements EventRecorder {
  private readonly db: Kysely<EventTables>;

  constructor(
    database: CloudDatabase,
    private readonly clock: () => number = Date.now,
  ) {
    this.db = database.kysely.withTables<EventTables>();
  }

  /** Records an event of the cloud's own about a device. */
  async record<C extends EventCode>(
    deviceId: number,
    code: C,
    severity: SeverityOf<C>,
    message: string,
    detail: EventDetail = {},
    executor?: Executor,
  ): Promise<void> {
    await this.on(executor)
      .insertInto("device_events")
      .values({
        device_id: deviceId,
        ts: detail.ts ?? this.clock(),
        code,
        severity,
        message,
        field: detail.field ?? null,
        topic: detail.topic ?? null,
      })
      .execute();
  }

  /** Stores what a device reported on its `events` topic, all or none (one INSERT), with the device's own codes and times. */
  async recordReported(
    deviceId: number,
    topic: string,
    events: readonly ReportedEvent[],
    executor?: Executor,
  ): Promise<void> {
    if (events.length === 0) return;
    await this.on(executor)
      .insertInto("device_events")
      .values(
        events.map((e) => ({
          device_id: deviceId,
          ts: e.ts,
          code: e.code,
          severity: e.severity,
          message: e.message,
          field: null,
          topic,
        })),
      )
      .execute();
  }

  /** The device's newest `limit` events, newest first. */
  async list(deviceId: number, limit: number): Promise<EventPage> {
    const rows = await this.db
      .selectFrom("device_events")
      .select(["ts", "code", "severity", "message", "field", "topic"])
      .where("device_id", "=", deviceId)
      .orderBy("ts", "desc")
      .orderBy("id", "desc")
      .limit(limit)
      .execute();
    const { items, skipped } = readRows(rows, (r) => {
      const ts = storedIso(r.ts);
      return ts === undefined ? undefined : { ...r, ts };
    });
    return { items, ...(skipped > 0 ? { skipped } : {}) };
  }

  /** Hands a device's whole history to another device (a replacement keeping the history). */
  async moveHistory(fromDeviceId: number, toDeviceId: number, executor?: Executor): Promise<void> {
    await this.on(executor)
      .updateTable("device_events")
      .set({ device_id: toDeviceId })
      .where("device_id", "=", fromDeviceId)
      .execute();
  }

  /** Forgets a device's whole history. */
  async deleteHistory(deviceId: number, executor?: Executor): Promise<void> {
    await this.on(executor).deleteFrom("device_events").where("device_id", "=", deviceId).execute();
  }

  private on(executor: Executor | undefined): Kysely<EventTables> {
    return executor ?? this.db;
  }
}

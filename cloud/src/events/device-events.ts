import type { DeviceEvents } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import type { Executor } from "../storage/cloud-database.js";
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
  ): void;
}

/** A device event as events on the `events` topic carry it: the device's own code. */
export type ReportedEvent = DeviceEvents["events"][number];

type EventRow = Omit<StoredEvent, "ts"> & { ts: number };

/**
 * The device event history (`device_events`): the only module that reads or writes it. The cloud
 * records its own codes (EVENT_CODES); what a device reports keeps the device's codes. Every
 * method runs in the caller's transaction when there is one.
 */
export class DeviceEventLog implements EventRecorder {
  private readonly insert: Database.Statement<
    [number, number, string, EventSeverity, string, string | null, string | null]
  >;
  private readonly newest: Database.Statement<[number, number], EventRow>;
  private readonly reassign: Database.Statement<[number, number]>;
  private readonly removeAll: Database.Statement<[number]>;
  private readonly insertReported: (deviceId: number, topic: string, events: readonly ReportedEvent[]) => void;

  constructor(
    db: Database.Database,
    private readonly clock: () => number = Date.now,
  ) {
    this.insert = db.prepare(
      "INSERT INTO device_events (device_id, ts, code, severity, message, field, topic) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.newest = db.prepare(
      "SELECT ts, code, severity, message, field, topic FROM device_events WHERE device_id = ? ORDER BY ts DESC, id DESC LIMIT ?",
    );
    this.reassign = db.prepare("UPDATE device_events SET device_id = ? WHERE device_id = ?");
    this.removeAll = db.prepare("DELETE FROM device_events WHERE device_id = ?");
    this.insertReported = db.transaction((deviceId: number, topic: string, events: readonly ReportedEvent[]) => {
      for (const e of events) this.insert.run(deviceId, e.ts, e.code, e.severity, e.message, null, topic);
    });
  }

  /** Records an event of the cloud's own about a device. */
  record<C extends EventCode>(
    deviceId: number,
    code: C,
    severity: SeverityOf<C>,
    message: string,
    detail: EventDetail = {},
  ): void {
    this.insert.run(
      deviceId,
      detail.ts ?? this.clock(),
      code,
      severity,
      message,
      detail.field ?? null,
      detail.topic ?? null,
    );
  }

  /** Stores what a device reported on its `events` topic, all or none, with the device's own codes and times. */
  recordReported(deviceId: number, topic: string, events: readonly ReportedEvent[]): void {
    this.insertReported(deviceId, topic, events);
  }

  /** The device's newest `limit` events, newest first. */
  list(deviceId: number, limit: number): EventPage {
    const { items, skipped } = readRows(this.newest.all(deviceId, limit), (r) => {
      const ts = storedIso(r.ts);
      return ts === undefined ? undefined : { ...r, ts };
    });
    return { items, ...(skipped > 0 ? { skipped } : {}) };
  }

  /** Hands a device's whole history to another device (a replacement keeping the history). */
  moveHistory(fromDeviceId: number, toDeviceId: number, _executor?: Executor): void {
    this.reassign.run(toDeviceId, fromDeviceId);
  }

  /** Forgets a device's whole history. */
  deleteHistory(deviceId: number, _executor?: Executor): void {
    this.removeAll.run(deviceId);
  }
}

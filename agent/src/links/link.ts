/**
 * The contract between the link manager and one link (issue #6). A link talks to field devices
 * behind the gateway (a serial port, a BLE peripheral) and turns what they say into readings.
 * Links never throw out of their own callbacks: every trouble becomes a state, a counter and a
 * `lastError`, so one link's failure cannot stall the agent or the other links.
 */
import type { LinkConfig } from "@fieldgate/shared";
import type { Logger } from "pino";

/** What `fieldgate-agent links` shows for a link. */
export type LinkState = "connected" | "connecting" | "disconnected" | "error" | "unavailable";

/** One decoded value from a field device. The manager prefixes nothing: `source` carries the link id. */
export interface LinkReading {
  name: string;
  value: number | string | boolean;
  unit?: string;
}

/** Counters kept for the life of the link object (a changed config makes a new link). */
export interface LinkCounters {
  readings: number;
  /** Garbage, truncated frames, over-long lines, CRC errors, undecodable values. */
  framingErrors: number;
  reconnects: number;
  /** Modbus exception responses (counted, never fatal). */
  exceptions: number;
  /** Requests that got no answer in time. */
  timeouts: number;
}

export interface LinkError {
  ts: number;
  /** A stable code from `shared/src/errors.ts` (LINK_*). */
  code: string;
  message: string;
}

/** A snapshot of a link. */
export interface LinkStatus {
  id: string;
  type: string;
  state: LinkState;
  /** When `state` was entered (epoch ms). */
  since: number;
  /** Why the link is `unavailable`, `error` or `disconnected`, in words. */
  reason?: string;
  lastReading?: { ts: number; readings: LinkReading[] };
  counters: LinkCounters;
  lastError?: LinkError;
}

/** Where a link delivers. Both callbacks are synchronous and must not throw. */
export interface LinkSink {
  readings(linkId: string, ts: number, readings: readonly LinkReading[]): void;
  stateChanged(status: LinkStatus): void;
}

/** One running link. `start` returns at once (connecting happens in the background). */
export interface Link {
  readonly id: string;
  readonly type: string;
  start(): void;
  /** Closes the port or peripheral and cancels every timer; idempotent. */
  stop(): Promise<void>;
  status(): LinkStatus;
}

/** What the manager hands every link it builds. */
export interface LinkContext {
  sink: LinkSink;
  logger: Logger;
  /** Path patterns a serial link may open (agent config `linkPaths`; default DEFAULT_LINK_PATHS). */
  linkPaths?: readonly string[];
}

/**
 * Builds a link of one type from its validated config (durations still as text). It must not open
 * anything or load a driver: `start()` does, so building a link is cheap and never throws for a
 * missing port or adapter.
 */
export type LinkFactory<C extends LinkConfig = LinkConfig> = (config: C, context: LinkContext) => Link;

/** One factory per link type; the agent passes the map to the manager (`ble` comes from links/ble/). */
export type LinkFactories = { [T in LinkConfig["type"]]?: LinkFactory<Extract<LinkConfig, { type: T }>> };

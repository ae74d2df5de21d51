/**
 * A BLE link (issue #6): finds one peripheral by address, local name or advertised service,
 * connects, reads characteristics on intervals or subscribes to their notifications, and decodes
 * the values into readings. Every step is bounded by a timer, because noble can wait forever
 * (a connect to a powered-off peripheral never completes, noble #522). Any failure tears the
 * session down and retries with capped backoff, scanning again, so a peripheral that vanished
 * is picked up when it advertises again. Links share one adapter and never await each other.
 */
import {
  type BleCharacteristicConfig,
  type BleLinkConfig,
  type BleLinkTimings,
  type BlePeripheralMatch,
  checkBleLink,
  type ErrorCode,
  formatDuration,
} from "@fieldgate/shared";
import type { Logger } from "pino";
import { Backoff } from "../../retry/backoff.js";
import type {
  Link,
  LinkCounters,
  LinkError,
  LinkFactory,
  LinkReading,
  LinkSink,
  LinkState,
  LinkStatus,
} from "../link.js";
import { BleAdapter, type BleAvailability, loadSystemNoble } from "./ble-adapter.js";
import { compileDecoder, type ValueDecoder } from "./ble-decoder.js";
import { normalizeUuid } from "./ble-uuid.js";
import type { Noble, NobleCharacteristic, NobleError, NoblePeripheral, NobleService } from "./noble-types.js";

export interface BleLinkDeps {
  /** The adapter shared by every BLE link of the agent; it loads noble on first use. */
  adapter: BleAdapter;
  log: Logger;
  now?: () => number;
  /** Backoff jitter, [0, 1); tests pin it. */
  random?: () => number;
}

/** Whatever `EventEmitter.on` takes. */
type EventListener = Parameters<NodeJS.EventEmitter["on"]>[1];

/** Reads that time out this many times in a row mean the peripheral is gone, even without a disconnect event. */
const READ_TIMEOUTS_BEFORE_RECONNECT = 3;
const STOP_DISCONNECT_WAIT_MS = 2000;

export function createBleLink(config: BleLinkConfig, sink: LinkSink, deps: BleLinkDeps): Link {
  return new BleLink(config, sink, deps);
}

/** One configured characteristic, ready to use: UUIDs normalised, decoder compiled. */
interface Channel {
  config: BleCharacteristicConfig;
  service: string;
  characteristic: string;
  decode: ValueDecoder;
  intervalMs: number;
}

/** Where the link is; `session` numbers tell a current callback from a stale one. */
type Phase = "idle" | "waiting" | "scanning" | "connecting" | "discovering" | "connected" | "backoff" | "stopped";

export class BleLink implements Link {
  readonly id: string;
  readonly type = "ble";
  private phase: Phase = "idle";
  private state: LinkState = "disconnected";
  private since: number;
  private reason: string | undefined = "not started";
  private lastReading: LinkStatus["lastReading"];
  private lastError: LinkError | undefined;
  private readonly counters: LinkCounters = {
    readings: 0,
    framingErrors: 0,
    reconnects: 0,
    exceptions: 0,
    timeouts: 0,
  };

  private session = 0;
  private peripheral: NoblePeripheral | undefined;
  private hasConnected = false;
  private closeWatch: (() => void) | undefined;
  private releaseConnectSlot: (() => void) | undefined;
  private unsubscribeAdapter: (() => void) | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  /** Timers and listeners of the current session, undone together. */
  private readonly sessionTimers = new Set<NodeJS.Timeout>();
  private readonly sessionIntervals = new Set<NodeJS.Timeout>();
  private readonly sessionListeners: { emitter: NodeJS.EventEmitter; event: string; fn: EventListener }[] = [];

  private readonly channels: Channel[];
  private readonly matches: (p: NoblePeripheral) => boolean;
  private readonly connectTimeoutMs: number;
  private readonly configProblem: string | undefined;
  private readonly backoff: Backoff;
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(
    private readonly config: BleLinkConfig,
    private readonly sink: LinkSink,
    private readonly deps: BleLinkDeps,
  ) {
    this.id = config.id;
    this.now = deps.now ?? Date.now;
    this.since = this.now();
    this.log = deps.log.child({ link: config.id });
    const timings = timingsOf(config);
    if ("problem" in timings) this.configProblem = timings.problem;
    this.connectTimeoutMs = timings.connectTimeoutMs;
    this.backoff = new Backoff({
      minMs: timings.reconnectMinMs,
      maxMs: timings.reconnectMaxMs,
      ...(deps.random && { random: deps.random }),
    });
    this.matches = matcherFor(config.match);
    this.channels = config.characteristics.map((c, i) => ({
      config: c,
      service: normalizeUuid(c.service),
      characteristic: normalizeUuid(c.characteristic),
      decode: compileDecoder(c.decode),
      intervalMs: timings.intervalsMs[i] ?? 10_000,
    }));
  }

  start(): void {
    if (this.phase !== "idle") return;
    if (this.configProblem) {
      // The manager validates configs first; this is the backstop, as a state rather than a throw.
      this.phase = "stopped";
      this.recordError("CONFIG_INVALID", this.configProblem);
      this.setState("error", this.configProblem);
      return;
    }
    this.phase = "waiting";
    this.setState("connecting", "waiting for the Bluetooth adapter");
    this.unsubscribeAdapter = this.deps.adapter.onAvailability((a) => this.onAvailability(a));
  }

  async stop(): Promise<void> {
    if (this.phase === "stopped") return;
    const peripheral = this.peripheral;
    const wasConnected = peripheral?.state === "connected";
    this.phase = "stopped";
    this.unsubscribeAdapter?.();
    clearTimeout(this.backoffTimer);
    const disconnected = wasConnected && peripheral ? waitForDisconnect(peripheral) : Promise.resolve();
    this.endSession();
    this.setState("disconnected", "stopped");
    await disconnected;
  }

  status(): LinkStatus {
    return {
      id: this.id,
      type: this.type,
      state: this.state,
      since: this.since,
      ...(this.reason !== undefined && { reason: this.reason }),
      ...(this.lastReading && { lastReading: this.lastReading }),
      counters: { ...this.counters },
      ...(this.lastError && { lastError: this.lastError }),
    };
  }

  private onAvailability(availability: BleAvailability): void {
    if (this.phase === "stopped") return;
    if (availability.state === "ready") {
      if (this.phase === "waiting") this.scan();
      return;
    }
    // Not ready: whatever the link was doing is void (a power cycle drops every connection).
    clearTimeout(this.backoffTimer);
    this.endSession();
    this.phase = "waiting";
    if (availability.state === "unavailable") {
      if (this.lastError?.message !== availability.reason)
        this.recordError("LINK_BLE_UNAVAILABLE", availability.reason);
      this.setState("unavailable", availability.reason);
    } else
      this.setState(
        "connecting",
        availability.state === "starting" ? availability.reason : "waiting for the Bluetooth adapter",
      );
  }

  private scan(): void {
    this.phase = "scanning";
    this.setState("connecting", `scanning for a peripheral with ${describeMatch(this.config.match)}`);
    this.closeWatch = this.deps.adapter.watch(this.matches, (peripheral) => {
      if (this.phase !== "scanning") return;
      this.closeWatch?.();
      this.closeWatch = undefined;
      this.connect(peripheral);
    });
  }

  private connect(peripheral: NoblePeripheral): void {
    const session = ++this.session;
    this.phase = "connecting";
    this.peripheral = peripheral;
    this.setState("connecting", `connecting to ${nameOf(peripheral)}`);
    this.listen(peripheral, "disconnect", (reason: unknown) => {
      if (session !== this.session) return;
      this.retry(
        "LINK_BLE_DISCONNECTED",
        `${nameOf(peripheral)} disconnected${reason === undefined ? "" : ` (reason ${String(reason)})`}`,
      );
    });
    this.releaseConnectSlot = this.deps.adapter.acquireConnectSlot(() => {
      if (session !== this.session) return;
      // The timeout starts with the slot: it measures this peripheral, not the queue.
      this.after(this.connectTimeoutMs, () => {
        if (session !== this.session || this.phase !== "connecting") return;
        this.counters.timeouts += 1;
        this.retry(
          "LINK_BLE_CONNECT_TIMEOUT",
          `${nameOf(peripheral)} did not complete the connection within ${formatDuration(this.connectTimeoutMs)} (powered off or out of range?)`,
        );
      });
      this.call(() =>
        peripheral.connect((error) => {
          if (session !== this.session || this.phase !== "connecting") return; // a cancelled or stale attempt
          this.freeConnectSlot();
          if (error)
            this.retry("LINK_BLE_DISCONNECTED", `connecting to ${nameOf(peripheral)} failed: ${errorText(error)}`);
          else this.discover(session, peripheral);
        }),
      );
    });
  }

  private freeConnectSlot(): void {
    const release = this.releaseConnectSlot;
    this.releaseConnectSlot = undefined;
    release?.();
  }

  /** Finds the configured services and characteristics, bounded by the connect timeout too. */
  private discover(session: number, peripheral: NoblePeripheral): void {
    this.phase = "discovering";
    this.setState("connecting", `discovering services on ${nameOf(peripheral)}`);
    this.after(this.connectTimeoutMs, () => {
      if (session !== this.session || this.phase !== "discovering") return;
      this.counters.timeouts += 1;
      this.retry(
        "LINK_BLE_CONNECT_TIMEOUT",
        `${nameOf(peripheral)} did not finish service discovery within ${formatDuration(this.connectTimeoutMs)}`,
      );
    });
    const serviceUuids = [...new Set(this.channels.map((c) => c.service))];
    this.call(() =>
      peripheral.discoverServices(serviceUuids, (error, services) => {
        if (session !== this.session || this.phase !== "discovering") return;
        if (error) return this.retry("LINK_BLE_GATT_FAILED", `service discovery failed: ${errorText(error)}`);
        const byUuid = new Map((services ?? []).map((s) => [normalizeUuid(s.uuid), s]));
        const missing = serviceUuids.filter((u) => !byUuid.has(u));
        if (missing.length > 0)
          return this.retry("LINK_BLE_GATT_FAILED", `service ${missing.join(", ")} not found on ${nameOf(peripheral)}`);
        this.discoverCharacteristics(session, peripheral, byUuid);
      }),
    );
  }

  private discoverCharacteristics(
    session: number,
    peripheral: NoblePeripheral,
    services: Map<string, NobleService>,
  ): void {
    const found = new Map<string, NobleCharacteristic>();
    let pending = services.size;
    for (const [serviceUuid, service] of services) {
      const wanted = [...new Set(this.channels.filter((c) => c.service === serviceUuid).map((c) => c.characteristic))];
      this.call(() =>
        service.discoverCharacteristics(wanted, (error, characteristics) => {
          if (session !== this.session || this.phase !== "discovering") return;
          if (error) return this.retry("LINK_BLE_GATT_FAILED", `characteristic discovery failed: ${errorText(error)}`);
          for (const c of characteristics ?? []) found.set(`${serviceUuid}/${normalizeUuid(c.uuid)}`, c);
          pending -= 1;
          if (pending > 0) return;
          const missing = this.channels.filter((c) => !found.has(`${c.service}/${c.characteristic}`));
          if (missing.length > 0)
            return this.retry(
              "LINK_BLE_GATT_FAILED",
              `characteristic ${missing.map((c) => `${c.service}/${c.characteristic}`).join(", ")} not found on ${nameOf(peripheral)}`,
            );
          this.connected(session, peripheral, found);
        }),
      );
    }
  }

  private connected(session: number, peripheral: NoblePeripheral, found: Map<string, NobleCharacteristic>): void {
    this.clearSessionTimers(); // the discovery timeout
    this.phase = "connected";
    this.backoff.reset();
    if (this.hasConnected) this.counters.reconnects += 1;
    this.hasConnected = true;
    this.log.info({ peripheral: nameOf(peripheral) }, "BLE link connected");
    this.setState("connected", undefined);
    for (const channel of this.channels) {
      const characteristic = found.get(`${channel.service}/${channel.characteristic}`);
      if (!characteristic) continue;
      if (channel.config.mode === "notify") this.subscribe(session, channel, characteristic);
      else this.poll(session, channel, characteristic);
    }
  }

  private subscribe(session: number, channel: Channel, characteristic: NobleCharacteristic): void {
    this.listen(characteristic, "data", (data: Buffer) => {
      if (session === this.session) this.deliver(channel, data);
    });
    let acknowledged = false;
    this.after(this.connectTimeoutMs, () => {
      if (session !== this.session || acknowledged) return;
      this.counters.timeouts += 1;
      this.retry(
        "LINK_BLE_GATT_FAILED",
        `subscribing to ${channel.characteristic} got no answer within ${formatDuration(this.connectTimeoutMs)}`,
      );
    });
    this.call(() =>
      characteristic.subscribe((error) => {
        if (session !== this.session) return;
        acknowledged = true;
        if (error)
          this.retry("LINK_BLE_GATT_FAILED", `subscribing to ${channel.characteristic} failed: ${errorText(error)}`);
      }),
    );
  }

  /** Reads now and every interval; one read in flight per characteristic, each bounded. */
  private poll(session: number, channel: Channel, characteristic: NobleCharacteristic): void {
    let inFlight = false;
    let timeoutsInARow = 0;
    const readOnce = () => {
      if (session !== this.session || inFlight) return;
      inFlight = true;
      let answered = false;
      const timer = this.after(Math.min(this.connectTimeoutMs, channel.intervalMs * 2), () => {
        if (session !== this.session || answered) return;
        inFlight = false;
        this.counters.timeouts += 1;
        timeoutsInARow += 1;
        if (timeoutsInARow >= READ_TIMEOUTS_BEFORE_RECONNECT)
          this.retry(
            "LINK_BLE_DISCONNECTED",
            `${channel.characteristic} did not answer ${timeoutsInARow} reads in a row`,
          );
      });
      this.call(() =>
        characteristic.read((error, data) => {
          if (session !== this.session || answered) return;
          answered = true;
          inFlight = false;
          timeoutsInARow = 0;
          this.forget(timer);
          if (error)
            this.recordError("LINK_BLE_GATT_FAILED", `reading ${channel.characteristic} failed: ${errorText(error)}`);
          else this.deliver(channel, data);
        }),
      );
    };
    readOnce();
    this.sessionIntervals.add(setInterval(readOnce, channel.intervalMs));
  }

  private deliver(channel: Channel, data: unknown): void {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(0);
    const result = channel.decode(bytes);
    if (!result.ok) {
      this.counters.framingErrors += 1;
      this.recordError("LINK_BLE_DECODE_FAILED", `${channel.characteristic}: ${result.error}`);
      return;
    }
    const ts = this.now();
    const readings: LinkReading[] = result.readings;
    this.counters.readings += readings.length;
    this.lastReading = { ts, readings };
    try {
      this.sink.readings(this.id, ts, readings);
    } catch (err) {
      this.log.error({ err }, "link sink failed on readings");
    }
  }

  /** Ends the session (releasing the peripheral) and tries again after the next backoff delay. */
  private retry(code: ErrorCode, message: string): void {
    if (this.phase === "stopped" || this.phase === "backoff") return;
    const wasConnected = this.phase === "connected";
    this.recordError(code, message);
    this.endSession();
    const delay = this.backoff.next();
    this.phase = "backoff";
    // A lost connection is news; the retries that follow are not.
    if (wasConnected) this.log.warn({ code, delayMs: delay }, `BLE link: ${message}`);
    else this.log.debug({ code, delayMs: delay }, `BLE link: ${message}`);
    this.setState("disconnected", `${message}; retrying in ${formatDuration(delay)}`);
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      if (this.phase !== "backoff") return;
      this.phase = "waiting";
      if (this.deps.adapter.current().state === "ready") this.scan();
    }, delay);
  }

  /** Invalidates the session's callbacks, clears its timers and listeners, and lets go of the peripheral. */
  private endSession(): void {
    this.session += 1;
    this.closeWatch?.();
    this.closeWatch = undefined;
    this.clearSessionTimers();
    for (const { emitter, event, fn } of this.sessionListeners.splice(0)) emitter.removeListener(event, fn);
    const peripheral = this.peripheral;
    this.peripheral = undefined;
    if (!peripheral) return;
    // Cancelling is what frees noble's one pending-connection slot for the other links.
    try {
      if (peripheral.state === "connecting") peripheral.cancelConnect();
      else if (peripheral.state === "connected") peripheral.disconnect();
    } catch (err) {
      this.log.debug({ err }, "releasing the BLE peripheral failed");
    }
    this.freeConnectSlot();
  }

  private after(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.sessionTimers.delete(timer);
      fn();
    }, ms);
    this.sessionTimers.add(timer);
    return timer;
  }

  private forget(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.sessionTimers.delete(timer);
  }

  private clearSessionTimers(): void {
    for (const timer of this.sessionTimers) clearTimeout(timer);
    for (const interval of this.sessionIntervals) clearInterval(interval);
    this.sessionTimers.clear();
    this.sessionIntervals.clear();
  }

  private listen<A extends unknown[]>(emitter: NodeJS.EventEmitter, event: string, fn: (...args: A) => void): void {
    const guarded = (...args: A) => this.call(() => fn(...args));
    emitter.on(event, guarded);
    this.sessionListeners.push({ emitter, event, fn: guarded });
  }

  /** noble calls can throw (a peripheral in the wrong state); that must become a retry, not a crash. */
  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (this.phase === "stopped" || this.phase === "backoff" || this.phase === "waiting") {
        this.log.debug({ err }, "BLE call failed while the link was not in a session");
        return;
      }
      this.retry("LINK_BLE_GATT_FAILED", `BLE operation failed: ${errorText(err as Error)}`);
    }
  }

  private recordError(code: ErrorCode, message: string): void {
    this.lastError = { ts: this.now(), code, message };
  }

  private setState(state: LinkState, reason: string | undefined): void {
    if (state === this.state && reason === this.reason) return;
    if (state !== this.state) this.since = this.now();
    this.state = state;
    this.reason = reason;
    try {
      this.sink.stateChanged(this.status());
    } catch (err) {
      this.log.error({ err }, "link sink failed on stateChanged");
    }
  }
}

function matcherFor(match: BlePeripheralMatch): (p: NoblePeripheral) => boolean {
  const address = match.address?.toLowerCase().replace(/-/g, ":");
  const service = match.serviceUuid === undefined ? undefined : normalizeUuid(match.serviceUuid);
  return (p) => {
    if (address !== undefined && (p.address ?? "").toLowerCase() !== address) return false;
    if (match.localName !== undefined && p.advertisement?.localName !== match.localName) return false;
    if (service !== undefined) {
      const advertised = [
        ...(p.advertisement?.serviceUuids ?? []),
        ...(p.advertisement?.serviceData ?? []).map((d) => d.uuid),
      ].map(normalizeUuid);
      if (!advertised.includes(service)) return false;
    }
    return true;
  };
}

function describeMatch(match: BlePeripheralMatch): string {
  return Object.entries(match)
    .map(([key, value]) => `${key} ${String(value)}`)
    .join(" and ");
}

function nameOf(p: NoblePeripheral): string {
  const name = p.advertisement?.localName;
  const address = p.address && p.address !== "unknown" ? p.address : p.id;
  return name ? `${name} (${address})` : address;
}

function errorText(error: NobleError): string {
  return error instanceof Error ? error.message : String(error);
}

const DEFAULT_TIMINGS: BleLinkTimings = {
  connectTimeoutMs: 10_000,
  reconnectMinMs: 1000,
  reconnectMaxMs: 60_000,
  intervalsMs: [],
};

function timingsOf(config: BleLinkConfig): BleLinkTimings | (BleLinkTimings & { problem: string }) {
  try {
    return checkBleLink(config, `links[${config.id}]`, (field, message) => {
      throw new Error(`${field} ${message}`);
    });
  } catch (err) {
    return { ...DEFAULT_TIMINGS, problem: (err as Error).message };
  }
}

/** Resolves when the peripheral reports its disconnect, or after a bound: stop never hangs on noble. */
function waitForDisconnect(peripheral: NoblePeripheral): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      peripheral.removeListener("disconnect", done);
      resolve();
    };
    const timer = setTimeout(done, STOP_DISCONNECT_WAIT_MS);
    peripheral.once("disconnect", done);
  });
}

/**
 * The `ble` entry of the link manager's factory map. Every BLE link it builds shares one adapter,
 * made with the first link (so building the map loads nothing): the system noble is one instance
 * per process anyway, holding the one HCI socket.
 */
export function bleLinkFactory(options: { loadNoble?: () => Promise<Noble> } = {}): LinkFactory<BleLinkConfig> {
  let adapter: BleAdapter | undefined;
  return (config, context) => {
    adapter ??= new BleAdapter({ loadNoble: options.loadNoble ?? loadSystemNoble, log: context.logger });
    return createBleLink(config, context.sink, { adapter, log: context.logger });
  };
}

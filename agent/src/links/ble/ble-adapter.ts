/**
 * The one noble instance every BLE link shares (issue #6). noble drives a single adapter with a
 * single scan, so the links do not each scan: they open watches here, and the adapter scans
 * while any watch is open and hands each advertisement to the watches it matches.
 *
 * noble is loaded on the first watch or availability listener, never at import: on a host
 * without Bluetooth, loading it throws (EAFNOSUPPORT, EPERM), and such a host must run
 * everything but its BLE links.
 */
import type { Logger } from "pino";
import { BLUETOOTH_BINDING, nativeBindingReason } from "../native-binding.js";
import type { Noble, NoblePeripheral } from "./noble-types.js";

export type BleAvailability =
  /** Nobody asked for Bluetooth yet; noble is not loaded. */
  | { state: "unloaded" }
  /** Loading noble, or waiting for the adapter to report `poweredOn`. */
  | { state: "starting"; reason: string }
  | { state: "ready" }
  | { state: "unavailable"; reason: string };

export interface BleAdapterDeps {
  /** Returns the noble instance; production: `loadSystemNoble`, tests: noble on emulated bindings. */
  loadNoble: () => Promise<Noble>;
  log: Logger;
  /** Pause before scanning again when the adapter stopped or refused a scan by itself (default 1s). */
  rescanDelayMs?: number;
}

/** Whatever `EventEmitter.on` takes. */
type EventListener = Parameters<NodeJS.EventEmitter["on"]>[1];

type AvailabilityListener = (availability: BleAvailability) => void;

interface Watch {
  matches(peripheral: NoblePeripheral): boolean;
  found(peripheral: NoblePeripheral): void;
}

/** The system's noble (hci-socket on Linux). Throws on hosts without a usable adapter. */
export async function loadSystemNoble(): Promise<Noble> {
  const module = (await import("@abandonware/noble")) as unknown as { default: Noble };
  return module.default;
}

export class BleAdapter {
  private availability: BleAvailability = { state: "unloaded" };
  private noble: Noble | undefined;
  private readonly availabilityListeners = new Set<AvailabilityListener>();
  private readonly watches = new Set<Watch>();
  /** Whether we asked noble to scan and have not asked it to stop. */
  private scanning = false;
  /** scanStop events still to come for stops we asked for; any beyond them are the adapter's own. */
  private requestedScanStops = 0;
  private rescanTimer: NodeJS.Timeout | undefined;
  private loggedReason: string | undefined;
  private stopped = false;
  private readonly rescanDelayMs: number;
  private readonly connectQueue: { granted: () => void }[] = [];
  private connectSlotHolder: { granted: () => void } | undefined;
  private readonly nobleListeners: [string, EventListener][] = [];

  constructor(private readonly deps: BleAdapterDeps) {
    this.rescanDelayMs = deps.rescanDelayMs ?? 1000;
  }

  current(): BleAvailability {
    return this.availability;
  }

  /** Hears the current availability at once and every change after; loads noble if nobody has yet. */
  onAvailability(listener: AvailabilityListener): () => void {
    this.availabilityListeners.add(listener);
    this.load();
    listener(this.availability);
    return () => this.availabilityListeners.delete(listener);
  }

  /**
   * Calls `found` for every advertisement of a peripheral that `matches`, while the watch is open
   * (advertisements repeat: scanning allows duplicates, so a peripheral that comes back is seen).
   * Returns the function that closes the watch.
   */
  watch(matches: (peripheral: NoblePeripheral) => boolean, found: (peripheral: NoblePeripheral) => void): () => void {
    const watch: Watch = { matches, found };
    this.watches.add(watch);
    this.load();
    this.startScanning();
    return () => {
      this.watches.delete(watch);
      this.stopScanningWhenIdle();
    };
  }

  /**
   * Waits for the adapter's one connection slot (hci-socket creates one connection at a time and
   * queues the rest), then calls `granted`. The holder must `release` once its connect completed,
   * failed or was cancelled; releasing before the grant leaves the queue. Queueing here rather
   * than in noble lets each link time its own connect, not the wait behind another's.
   */
  acquireConnectSlot(granted: () => void): () => void {
    const entry = { granted };
    this.connectQueue.push(entry);
    this.grantConnectSlot();
    return () => {
      const queued = this.connectQueue.indexOf(entry);
      if (queued >= 0) this.connectQueue.splice(queued, 1);
      if (this.connectSlotHolder !== entry) return;
      this.connectSlotHolder = undefined;
      this.grantConnectSlot();
    };
  }

  /** For `doctor`: loads noble and waits up to `timeoutMs` for the adapter to settle. */
  probe(timeoutMs: number): Promise<BleAvailability> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        unsubscribe();
        resolve(
          this.availability.state === "starting"
            ? { state: "starting", reason: `${this.availability.reason}; no answer within ${timeoutMs} ms` }
            : this.availability,
        );
      }, timeoutMs);
      const unsubscribe = this.onAvailability((a) => {
        if (a.state !== "ready" && a.state !== "unavailable") return;
        clearTimeout(timer);
        queueMicrotask(() => unsubscribe());
        resolve(a);
      });
    });
  }

  /** Stops scanning and lets go of noble's events; idempotent. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.rescanTimer);
    this.watches.clear();
    this.availabilityListeners.clear();
    this.connectQueue.length = 0;
    this.connectSlotHolder = undefined;
    if (this.noble && this.scanning) this.safely(() => this.noble?.stopScanning());
    this.scanning = false;
    for (const [event, listener] of this.nobleListeners) this.noble?.removeListener(event, listener);
    this.nobleListeners.length = 0;
  }

  private load(): void {
    if (this.availability.state !== "unloaded" || this.stopped) return;
    this.setAvailability({ state: "starting", reason: "loading the Bluetooth driver" });
    Promise.resolve()
      .then(() => this.deps.loadNoble())
      .then(
        (noble) => this.attach(noble),
        (err: unknown) => this.setAvailability({ state: "unavailable", reason: describeLoadError(err) }),
      );
  }

  private attach(noble: Noble): void {
    if (this.stopped) return;
    this.noble = noble;
    this.setAvailability({ state: "starting", reason: "waiting for the Bluetooth adapter (state unknown)" });
    // The warning listener goes first: it also silences noble's console.warn fallback.
    this.listen("warning", (message: string) => {
      // noble initialises the bindings on the first stateChange listener and reports a throw
      // (no device, no permission) only as this warning; the state then stays "unknown".
      if (/^Initialization of .* failed/.test(String(message)))
        this.setAvailability({ state: "unavailable", reason: describeLoadError(new Error(String(message))) });
      else this.deps.log.debug({ warning: message }, "noble warning");
    });
    this.listen("stateChange", (state: string) => this.onAdapterState(state));
    this.listen("discover", (peripheral: NoblePeripheral) => this.onDiscover(peripheral));
    this.listen("scanStop", () => this.onScanStop());
  }

  private listen<A extends unknown[]>(event: string, listener: (...args: A) => void): void {
    const guarded = (...args: A) => this.safely(() => listener(...args));
    this.noble?.on(event, guarded);
    this.nobleListeners.push([event, guarded]);
  }

  private onAdapterState(state: string): void {
    if (state === "poweredOn") {
      this.scanning = false; // a power cycle ends any scan
      this.requestedScanStops = 0;
      this.setAvailability({ state: "ready" });
      this.startScanning();
      return;
    }
    this.scanning = false;
    const reason = describeAdapterState(state);
    this.setAvailability(
      state === "unknown" || state === "resetting" ? { state: "starting", reason } : { state: "unavailable", reason },
    );
  }

  private onDiscover(peripheral: NoblePeripheral): void {
    for (const watch of [...this.watches]) {
      if (!this.watches.has(watch)) continue; // closed by an earlier watch's callback
      this.safely(() => {
        if (watch.matches(peripheral)) watch.found(peripheral);
      });
    }
  }

  /** The adapter stopped scanning without being asked (a controller reset, a connect on some chips). */
  private onScanStop(): void {
    if (this.requestedScanStops > 0) {
      this.requestedScanStops -= 1;
      return;
    }
    if (!this.scanning) return;
    this.scanning = false;
    this.scheduleRescan();
  }

  private startScanning(): void {
    const noble = this.noble;
    if (!noble || this.scanning || this.stopped || this.watches.size === 0) return;
    if (this.availability.state !== "ready") return;
    this.scanning = true;
    this.safely(() =>
      // Every service, duplicates allowed: watches filter, and a returning peripheral must be seen again.
      noble.startScanning([], true, (error) => {
        if (!error) return;
        this.scanning = false;
        this.deps.log.warn({ err: String(error) }, "BLE scan could not start; retrying");
        this.scheduleRescan();
      }),
    );
  }

  private grantConnectSlot(): void {
    if (this.connectSlotHolder || this.stopped) return;
    const next = this.connectQueue.shift();
    if (!next) return;
    this.connectSlotHolder = next;
    // Never inside acquireConnectSlot: the caller must hold its release function first.
    queueMicrotask(() => {
      if (this.connectSlotHolder === next) this.safely(() => next.granted());
    });
  }

  private scheduleRescan(): void {
    if (this.rescanTimer || this.stopped) return;
    this.rescanTimer = setTimeout(() => {
      this.rescanTimer = undefined;
      this.startScanning();
    }, this.rescanDelayMs);
    this.rescanTimer.unref?.();
  }

  private stopScanningWhenIdle(): void {
    if (this.watches.size > 0 || !this.scanning || !this.noble) return;
    this.scanning = false;
    this.requestedScanStops += 1;
    const noble = this.noble;
    this.safely(() => noble.stopScanning());
  }

  private setAvailability(next: BleAvailability): void {
    const previous = this.availability;
    if (previous.state === next.state && reasonOf(previous) === reasonOf(next)) return;
    this.availability = next;
    if (next.state === "unavailable" && this.loggedReason !== next.reason) {
      // Once per reason: a host without Bluetooth says so once, not once per link or per retry.
      this.loggedReason = next.reason;
      this.deps.log.warn(
        { reason: next.reason },
        `Bluetooth is unavailable: ${next.reason}; BLE links stay unavailable, the rest of the agent runs`,
      );
    } else if (next.state === "ready") {
      if (this.loggedReason !== undefined) this.deps.log.info("Bluetooth adapter is available again");
      this.loggedReason = undefined;
    }
    for (const listener of [...this.availabilityListeners]) this.safely(() => listener(next));
  }

  /** noble and listener calls never throw into noble's emitter or out of a timer. */
  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.deps.log.error({ err }, "BLE adapter callback failed");
    }
  }
}

function reasonOf(a: BleAvailability): string | undefined {
  return "reason" in a ? a.reason : undefined;
}

/** Turns a failure to load or initialise noble into words an engineer can act on. */
export function describeLoadError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  const found = code ?? /\b(EAFNOSUPPORT|ENODEV|EPERM|EACCES|EBUSY)\b/.exec(message)?.[1];
  switch (found) {
    case "EAFNOSUPPORT":
      return "no Bluetooth adapter on this host (EAFNOSUPPORT: the kernel offers no Bluetooth sockets)";
    case "ENODEV":
      return "no Bluetooth adapter on this host (ENODEV)";
    case "EPERM":
    case "EACCES":
      return `no permission to use the Bluetooth adapter (${found}); run the agent as root or grant node CAP_NET_RAW and CAP_NET_ADMIN`;
    case "EBUSY":
      return "the Bluetooth adapter is in use by another program (EBUSY)";
    default:
      return nativeBindingReason(BLUETOOTH_BINDING, err) ?? `the Bluetooth driver could not start: ${message}`;
  }
}

function describeAdapterState(state: string): string {
  switch (state) {
    case "poweredOff":
      return "the Bluetooth adapter is powered off (state poweredOff); power it on, e.g. `bluetoothctl power on`";
    case "unauthorized":
      return "no permission to use the Bluetooth adapter (state unauthorized); run the agent as root or grant node CAP_NET_RAW and CAP_NET_ADMIN";
    case "unsupported":
      return "the Bluetooth adapter does not support Bluetooth Low Energy (state unsupported)";
    default:
      return `waiting for the Bluetooth adapter (state ${state})`;
  }
}

/**
 * A Bluetooth adapter in software, at noble's own seam: it implements the bindings interface
 * that `@abandonware/noble/with-bindings` drives (the same events and calls as
 * `lib/hci-socket/bindings.js`), so everything above it is the real noble and the real link.
 * It plays peripherals that advertise, accept connections, answer reads, notify, disconnect,
 * vanish and come back, or hang on connect like a powered-off one (noble #522).
 *
 * Like hci-socket, it has one pending connection at a time and queues the rest: a connect that
 * never completes blocks the others until it is cancelled.
 */
import { EventEmitter } from "node:events";
import withBindings from "@abandonware/noble/with-bindings.js";
import type { Noble } from "../../../src/links/ble/noble-types.js";

export interface EmulatedCharacteristicSpec {
  uuid: string;
  properties?: string[];
  value?: Buffer;
}

export interface EmulatedPeripheralSpec {
  address: string;
  localName?: string;
  serviceUuids?: string[];
  services: { uuid: string; characteristics: EmulatedCharacteristicSpec[] }[];
}

/** HCI disconnect reasons noble passes through. */
export const REMOTE_USER_TERMINATED = 0x13;
export const CONNECTION_TIMEOUT = 0x08;
const LOCAL_HOST_TERMINATED = 0x16;

export class EmulatedPeripheral {
  readonly id: string;
  /** Whether it sends advertisements. */
  advertising = true;
  /** false: a connect to it never completes (powered off after its last advertisement). */
  acceptsConnections = true;
  /** false: reads get no answer. */
  answersReads = true;
  connected = false;
  connects = 0;
  readonly subscribed = new Set<string>();
  private readonly values = new Map<string, Buffer>();

  constructor(
    private readonly adapter: EmulatedAdapter,
    readonly spec: EmulatedPeripheralSpec,
  ) {
    this.id = spec.address.toLowerCase().split(":").join("");
    for (const s of spec.services)
      for (const c of s.characteristics) this.values.set(key(s.uuid, c.uuid), c.value ?? Buffer.alloc(0));
  }

  setValue(service: string, characteristic: string, value: Buffer): void {
    this.values.set(key(service, characteristic), value);
  }

  value(service: string, characteristic: string): Buffer | undefined {
    return this.values.get(key(service, characteristic));
  }

  /** Sends a notification, if the central subscribed. */
  notify(service: string, characteristic: string, value: Buffer): void {
    if (!this.connected || !this.subscribed.has(key(service, characteristic))) return;
    this.adapter.emitLater("read", this.id, service, characteristic, value, true);
  }

  /** The peripheral ends the connection (it keeps advertising). */
  disconnect(reason = REMOTE_USER_TERMINATED): void {
    this.adapter.dropConnection(this, reason);
  }

  /** Out of range or battery gone: no advertisements, and the link supervision timeout fires. */
  vanish(): void {
    this.advertising = false;
    this.adapter.dropConnection(this, CONNECTION_TIMEOUT);
  }

  reappear(): void {
    this.advertising = true;
    this.acceptsConnections = true;
  }
}

export interface EmulatedAdapterOptions {
  /** What the adapter reports on init: poweredOn, poweredOff, unsupported, unauthorized. */
  state?: string;
  /** Advertising interval of every peripheral while scanning (default 100 ms). */
  advertiseEveryMs?: number;
  /** How long each GATT or link-layer answer takes (default 5 ms). */
  latencyMs?: number;
  /** init() throws this, as hci-socket's bindRaw does without permission (EPERM) or device (ENODEV). */
  initError?: Error;
}

export class EmulatedAdapter extends EventEmitter {
  readonly peripherals = new Map<string, EmulatedPeripheral>();
  scanning = false;
  scanStarts = 0;
  private state: string;
  private advertiseTimer: NodeJS.Timeout | undefined;
  private pendingConnect: string | undefined;
  private readonly connectQueue: string[] = [];
  private readonly advertiseEveryMs: number;
  private readonly latencyMs: number;
  private readonly initError: Error | undefined;

  constructor(options: EmulatedAdapterOptions = {}) {
    super();
    this.state = options.state ?? "poweredOn";
    this.advertiseEveryMs = options.advertiseEveryMs ?? 100;
    this.latencyMs = options.latencyMs ?? 5;
    this.initError = options.initError;
  }

  /** A real noble instance driving this adapter. */
  noble(): Noble {
    return withBindings(this) as Noble;
  }

  addPeripheral(spec: EmulatedPeripheralSpec): EmulatedPeripheral {
    const peripheral = new EmulatedPeripheral(this, spec);
    this.peripherals.set(peripheral.id, peripheral);
    return peripheral;
  }

  /** The adapter changes power state (the user toggles Bluetooth). */
  setState(state: string): void {
    this.state = state;
    if (state !== "poweredOn") {
      this.stopAdvertising();
      this.scanning = false;
      for (const p of this.peripherals.values()) if (p.connected) this.dropConnection(p, LOCAL_HOST_TERMINATED);
    }
    this.emit("stateChange", state);
  }

  emitLater(event: string, ...args: unknown[]): void {
    setTimeout(() => this.emit(event, ...args), this.latencyMs);
  }

  dropConnection(peripheral: EmulatedPeripheral, reason: number): void {
    if (!peripheral.connected) return;
    peripheral.connected = false;
    peripheral.subscribed.clear();
    this.emitLater("disconnect", peripheral.id, reason);
  }

  // ---- the bindings interface noble calls ----

  init(): void {
    if (this.initError) throw this.initError;
    this.emit("stateChange", this.state);
  }

  startScanning(_serviceUuids: string[], _allowDuplicates: boolean): void {
    this.scanning = true;
    this.scanStarts += 1;
    this.emitLater("scanStart", false);
    this.stopAdvertising();
    this.advertiseTimer = setInterval(() => this.advertise(), this.advertiseEveryMs);
  }

  stopScanning(): void {
    this.scanning = false;
    this.stopAdvertising();
    this.emitLater("scanStop");
  }

  connect(peripheralUuid: string): void {
    if (this.pendingConnect) {
      this.connectQueue.push(peripheralUuid);
      return;
    }
    this.pendingConnect = peripheralUuid;
    const peripheral = this.peripherals.get(peripheralUuid);
    if (!peripheral?.acceptsConnections) return; // never completes: only a cancel frees the slot
    setTimeout(() => {
      if (this.pendingConnect !== peripheralUuid) return;
      peripheral.connected = true;
      peripheral.connects += 1;
      this.emit("connect", peripheralUuid, null);
      this.nextConnect();
    }, this.latencyMs);
  }

  cancelConnect(peripheralUuid: string): void {
    const queued = this.connectQueue.indexOf(peripheralUuid);
    if (queued >= 0) this.connectQueue.splice(queued, 1);
    if (this.pendingConnect !== peripheralUuid) return;
    // What a controller answers to LE Create Connection Cancel.
    this.emitLater("connect", peripheralUuid, new Error("Unknown Connection Identifier (0x2)"));
    this.nextConnect();
  }

  disconnect(peripheralUuid: string): void {
    const peripheral = this.peripherals.get(peripheralUuid);
    if (peripheral) this.dropConnection(peripheral, LOCAL_HOST_TERMINATED);
  }

  discoverServices(peripheralUuid: string, uuids: string[]): void {
    const peripheral = this.connectedPeripheral(peripheralUuid);
    if (!peripheral) return;
    const all = peripheral.spec.services.map((s) => s.uuid);
    this.emitLater("servicesDiscover", peripheralUuid, uuids.length ? all.filter((u) => uuids.includes(u)) : all);
  }

  discoverCharacteristics(peripheralUuid: string, serviceUuid: string, uuids: string[]): void {
    const peripheral = this.connectedPeripheral(peripheralUuid);
    const service = peripheral?.spec.services.find((s) => s.uuid === serviceUuid);
    if (!service) return;
    const characteristics = service.characteristics
      .filter((c) => uuids.length === 0 || uuids.includes(c.uuid))
      .map((c) => ({ uuid: c.uuid, properties: c.properties ?? ["read", "notify"] }));
    this.emitLater("characteristicsDiscover", peripheralUuid, serviceUuid, characteristics);
  }

  read(peripheralUuid: string, serviceUuid: string, characteristicUuid: string): void {
    const peripheral = this.connectedPeripheral(peripheralUuid);
    if (!peripheral?.answersReads) return;
    const value = peripheral.value(serviceUuid, characteristicUuid) ?? Buffer.alloc(0);
    this.emitLater("read", peripheralUuid, serviceUuid, characteristicUuid, value, false);
  }

  notify(peripheralUuid: string, serviceUuid: string, characteristicUuid: string, notify: boolean): void {
    const peripheral = this.connectedPeripheral(peripheralUuid);
    if (!peripheral) return;
    if (notify) peripheral.subscribed.add(key(serviceUuid, characteristicUuid));
    else peripheral.subscribed.delete(key(serviceUuid, characteristicUuid));
    this.emitLater("notify", peripheralUuid, serviceUuid, characteristicUuid, notify);
  }

  // Parts of the interface the link never uses.
  setScanParameters(): void {}
  reset(): void {}
  updateRssi(): void {}
  discoverIncludedServices(): void {}
  write(): void {}
  broadcast(): void {}
  discoverDescriptors(): void {}
  readValue(): void {}
  writeValue(): void {}
  readHandle(): void {}
  writeHandle(): void {}

  /** Stops the advertising timer; call in afterEach. */
  close(): void {
    this.stopAdvertising();
  }

  private advertise(): void {
    for (const p of this.peripherals.values()) {
      if (!p.advertising || p.connected) continue; // a connected peripheral stops advertising, as most do
      const advertisement = {
        localName: p.spec.localName,
        serviceUuids: p.spec.serviceUuids ?? [],
        serviceData: [],
        txPowerLevel: undefined,
        manufacturerData: undefined,
      };
      this.emit("discover", p.id, p.spec.address.toLowerCase(), "public", true, advertisement, -60, true);
    }
  }

  private stopAdvertising(): void {
    clearInterval(this.advertiseTimer);
    this.advertiseTimer = undefined;
  }

  private nextConnect(): void {
    this.pendingConnect = undefined;
    const next = this.connectQueue.shift();
    if (next) this.connect(next);
  }

  private connectedPeripheral(peripheralUuid: string): EmulatedPeripheral | undefined {
    const peripheral = this.peripherals.get(peripheralUuid);
    return peripheral?.connected ? peripheral : undefined;
  }
}

function key(service: string, characteristic: string): string {
  return `${service}/${characteristic}`;
}

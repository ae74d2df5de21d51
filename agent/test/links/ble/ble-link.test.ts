import type { BleLinkConfig } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BleAdapter, loadSystemNoble } from "../../../src/links/ble/ble-adapter.js";
import { createBleLink } from "../../../src/links/ble/ble-link.js";
import type { Link, LinkReading, LinkSink, LinkStatus } from "../../../src/links/link.js";
import { memoryLogger } from "../../helpers/logger.js";
import { EmulatedAdapter, type EmulatedPeripheralSpec } from "./emulated-adapter.js";

const ENV = "181a"; // Environmental Sensing
const TEMPERATURE = "2a6e";
const HUMIDITY = "2a6f";
const BATTERY_SERVICE = "180f";
const BATTERY_LEVEL = "2a19";

function sensor(address: string, localName: string): EmulatedPeripheralSpec {
  return {
    address,
    localName,
    serviceUuids: [ENV],
    services: [
      {
        uuid: ENV,
        characteristics: [
          { uuid: TEMPERATURE, value: int16le(2150) },
          { uuid: HUMIDITY, value: Buffer.from([0x10, 0x17]) },
        ],
      },
      { uuid: BATTERY_SERVICE, characteristics: [{ uuid: BATTERY_LEVEL, value: Buffer.from([87]) }] },
    ],
  };
}

function int16le(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16LE(n);
  return b;
}

function readLink(id: string, match: BleLinkConfig["match"], extra: Partial<BleLinkConfig> = {}): BleLinkConfig {
  return {
    id,
    type: "ble",
    match,
    connectTimeout: "2s",
    reconnectMin: "500ms",
    reconnectMax: "4s",
    characteristics: [
      {
        service: ENV,
        characteristic: TEMPERATURE,
        mode: "read",
        interval: "1s",
        decode: { type: "int16", endian: "le", scale: 0.01, name: "temperature", unit: "°C" },
      },
    ],
    ...extra,
  };
}

/** A sink that keeps what it hears. */
function recordingSink() {
  const readings: { linkId: string; ts: number; readings: readonly LinkReading[] }[] = [];
  const states: LinkStatus[] = [];
  const sink: LinkSink = {
    readings: (linkId, ts, r) => readings.push({ linkId, ts, readings: r }),
    stateChanged: (status) => states.push(status),
  };
  return { sink, readings, states, of: (id: string) => readings.filter((r) => r.linkId === id) };
}

describe("BLE link over noble's bindings seam", () => {
  let emulated: EmulatedAdapter;
  let adapter: BleAdapter;
  let links: Link[];
  let log: ReturnType<typeof memoryLogger>;

  function start(options: ConstructorParameters<typeof EmulatedAdapter>[0] = {}) {
    emulated = new EmulatedAdapter(options);
    log = memoryLogger();
    adapter = new BleAdapter({ loadNoble: async () => emulated.noble(), log: log.logger });
  }

  function link(config: BleLinkConfig, sink: LinkSink): Link {
    // random pinned to the top of the range: the delays are the backoff's ceilings.
    const l = createBleLink(config, sink, { adapter, log: log.logger, random: () => 0.999999 });
    links.push(l);
    l.start();
    return l;
  }

  beforeEach(() => {
    vi.useFakeTimers();
    links = [];
  });

  afterEach(async () => {
    const stopping = Promise.all(links.map((l) => l.stop()));
    await vi.advanceTimersByTimeAsync(3000);
    await stopping;
    adapter.stop();
    emulated.close();
    vi.useRealTimers();
  });

  it("finds the peripheral by local name and reads a characteristic on its interval", async () => {
    start();
    emulated.addPeripheral(sensor("aa:bb:cc:00:00:02", "Other"));
    emulated.addPeripheral(sensor("aa:bb:cc:00:00:01", "EnvSensor"));
    const rec = recordingSink();
    const l = link(readLink("env", { localName: "EnvSensor" }), rec.sink);

    await vi.advanceTimersByTimeAsync(500);
    expect(l.status()).toMatchObject({ state: "connected", counters: { readings: 1 } });
    expect(rec.readings[0]).toMatchObject({
      linkId: "env",
      readings: [{ name: "temperature", value: 21.5, unit: "°C" }],
    });

    await vi.advanceTimersByTimeAsync(5000);
    expect(rec.readings.length).toBe(6);
    expect(l.status().lastReading?.readings).toEqual([{ name: "temperature", value: 21.5, unit: "°C" }]);
    // Only the matching peripheral was connected.
    expect(emulated.peripherals.get("aabbcc000002")?.connects).toBe(0);
  });

  it("matches by address or advertised service, in either UUID form", async () => {
    start();
    emulated.addPeripheral(sensor("aa:bb:cc:00:00:01", "EnvSensor"));
    const rec = recordingSink();
    const byAddress = link(readLink("by-address", { address: "AA-BB-CC-00-00-01" }), rec.sink);
    await vi.advanceTimersByTimeAsync(500);
    expect(byAddress.status().state).toBe("connected");
    const stopped = byAddress.stop();
    await vi.advanceTimersByTimeAsync(100);
    await stopped;

    const byService = link(
      readLink("by-service", { serviceUuid: "0000181A-0000-1000-8000-00805F9B34FB" }),
      recordingSink().sink,
    );
    await vi.advanceTimersByTimeAsync(500);
    expect(byService.status().state).toBe("connected");
  });

  it("subscribes to notifications and decodes a declared byte layout", async () => {
    start();
    const p = emulated.addPeripheral(sensor("aa:bb:cc:00:00:01", "EnvSensor"));
    const rec = recordingSink();
    const l = link(
      readLink(
        "notify",
        { localName: "EnvSensor" },
        {
          characteristics: [
            {
              service: ENV,
              characteristic: TEMPERATURE,
              mode: "notify",
              decode: {
                type: "layout",
                fields: [
                  { byteOffset: 0, type: "int16", scale: 0.01, name: "temperature", unit: "°C" },
                  { byteOffset: 2, type: "uint16", endian: "be", scale: 0.1, name: "humidity", unit: "%" },
                  { byteOffset: 4, type: "float32", name: "pressure", unit: "hPa" },
                ],
              },
            },
          ],
        },
      ),
      rec.sink,
    );
    await vi.advanceTimersByTimeAsync(500);
    expect(l.status().state).toBe("connected");
    expect(p.subscribed.size).toBe(1);

    const frame = Buffer.alloc(8);
    frame.writeInt16LE(-512, 0);
    frame.writeUInt16BE(456, 2);
    frame.writeFloatLE(1013.25, 4);
    p.notify(ENV, TEMPERATURE, frame);
    p.notify(ENV, TEMPERATURE, Buffer.from([1, 2, 3])); // truncated: a framing error, no reading
    await vi.advanceTimersByTimeAsync(50);

    expect(rec.readings.map((r) => r.readings)).toEqual([
      [
        { name: "temperature", value: -5.12, unit: "°C" },
        { name: "humidity", value: 45.6, unit: "%" },
        { name: "pressure", value: 1013.25, unit: "hPa" },
      ],
    ]);
    expect(l.status()).toMatchObject({
      state: "connected",
      counters: { readings: 3, framingErrors: 1 },
      lastError: { code: "LINK_BLE_DECODE_FAILED" },
    });
  });

  it("reconnects with backoff after the peripheral disconnects", async () => {
    start();
    const p = emulated.addPeripheral(sensor("aa:bb:cc:00:00:01", "EnvSensor"));
    const rec = recordingSink();
    const l = link(readLink("env", { address: "aa:bb:cc:00:00:01" }), rec.sink);
    await vi.advanceTimersByTimeAsync(500);
    expect(l.status().state).toBe("connected");

    p.disconnect();
    await vi.advanceTimersByTimeAsync(10);
    expect(l.status()).toMatchObject({
      state: "disconnected",
      lastError: { code: "LINK_BLE_DISCONNECTED", message: expect.stringMatching(/disconnected \(reason 19\)/) },
    });
    const before = rec.readings.length;

    await vi.advanceTimersByTimeAsync(1000);
    expect(l.status()).toMatchObject({ state: "connected", counters: { reconnects: 1 } });
    expect(p.connects).toBe(2);
    await vi.advanceTimersByTimeAsync(3000);
    expect(rec.readings.length).toBeGreaterThanOrEqual(before + 3);
  });

  it("waits for a vanished peripheral and resumes readings when it comes back", async () => {
    start();
    const p = emulated.addPeripheral(sensor("aa:bb:cc:00:00:01", "EnvSensor"));
    const rec = recordingSink();
    const l = link(readLink("env", { serviceUuid: ENV }), rec.sink);
    await vi.advanceTimersByTimeAsync(2000);
    expect(l.status().state).toBe("connected");

    p.vanish();
    await vi.advanceTimersByTimeAsync(100);
    const whileGone = rec.readings.length;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(rec.readings.length).toBe(whileGone);
    expect(l.status()).toMatchObject({
      state: "connecting",
      reason: expect.stringMatching(/^scanning for a peripheral with serviceUuid 181a/),
    });
    expect(emulated.scanning).toBe(true);

    p.reappear();
    await vi.advanceTimersByTimeAsync(1500);
    expect(l.status()).toMatchObject({ state: "connected", counters: { reconnects: 1 } });
    expect(rec.readings.length).toBeGreaterThan(whileGone);
    // Connected and no other watch open: the shared scan stopped.
    expect(emulated.scanning).toBe(false);
  });

  it("bounds a connect that never completes (noble #522), cancels it and retries with capped backoff", async () => {
    start();
    const p = emulated.addPeripheral(sensor("aa:bb:cc:00:00:01", "EnvSensor"));
    p.acceptsConnections = false; // advertised a moment ago, powered off now
    const rec = recordingSink();
    const l = link(readLink("env", { localName: "EnvSensor" }), rec.sink);

    await vi.advanceTimersByTimeAsync(2200);
    expect(l.status()).toMatchObject({
      state: "disconnected",
      counters: { timeouts: 1 },
      lastError: { code: "LINK_BLE_CONNECT_TIMEOUT", message: expect.stringMatching(/within 2s/) },
    });

    // Attempts keep coming, the gap between them never beyond reconnectMax (4s) + connectTimeout + an advertisement.
    await vi.advanceTimersByTimeAsync(40_000);
    const timeouts = l.status().counters.timeouts;
    expect(timeouts).toBeGreaterThanOrEqual(6);
    await vi.advanceTimersByTimeAsync(6200);
    expect(l.status().counters.timeouts).toBeGreaterThan(timeouts);

    p.acceptsConnections = true; // powered on again
    await vi.advanceTimersByTimeAsync(6500);
    expect(l.status().state).toBe("connected");
    expect(rec.readings.length).toBeGreaterThan(0);
  });

  it("keeps one link reading while another's peripheral hangs on connect", async () => {
    start();
    const hanging = emulated.addPeripheral(sensor("aa:bb:cc:00:00:01", "Hangs"));
    hanging.acceptsConnections = false;
    emulated.addPeripheral(sensor("aa:bb:cc:00:00:02", "Healthy"));
    const rec = recordingSink();
    const a = link(readLink("a", { localName: "Hangs" }), rec.sink);
    const b = link(readLink("b", { localName: "Healthy" }), rec.sink);

    // The adapter has one connection slot: b waits at most one connect timeout for a's cancel.
    await vi.advanceTimersByTimeAsync(2500);
    expect(b.status().state).toBe("connected");
    await vi.advanceTimersByTimeAsync(20_000);
    expect(rec.of("b").length).toBeGreaterThanOrEqual(20);
    expect(rec.of("a")).toEqual([]);
    expect(a.status()).toMatchObject({ lastError: { code: "LINK_BLE_CONNECT_TIMEOUT" } });
    expect(a.status().counters.timeouts).toBeGreaterThanOrEqual(3);
    expect(b.status().counters.timeouts).toBe(0);
  });

  it("reconnects when reads stop being answered even though no disconnect arrives", async () => {
    start();
    const p = emulated.addPeripheral(sensor("aa:bb:cc:00:00:01", "EnvSensor"));
    const rec = recordingSink();
    const l = link(readLink("env", { localName: "EnvSensor" }), rec.sink);
    await vi.advanceTimersByTimeAsync(500);
    p.answersReads = false;
    // Each read waits 2s (twice the interval, within the connect timeout) before it counts as lost.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(l.status().counters.timeouts).toBeGreaterThanOrEqual(3);
    expect(l.status().lastError).toMatchObject({
      code: "LINK_BLE_DISCONNECTED",
      message: expect.stringMatching(/did not answer 3 reads/),
    });
    p.answersReads = true;
    const before = rec.readings.length;
    await vi.advanceTimersByTimeAsync(8000);
    expect(l.status().state).toBe("connected");
    expect(rec.readings.length).toBeGreaterThan(before);
  });

  it("reports a missing characteristic and keeps retrying", async () => {
    start();
    emulated.addPeripheral(sensor("aa:bb:cc:00:00:01", "EnvSensor"));
    const l = link(
      readLink(
        "env",
        { localName: "EnvSensor" },
        {
          characteristics: [
            {
              service: BATTERY_SERVICE,
              characteristic: "2a1a",
              mode: "read",
              interval: "1s",
              decode: { type: "uint8", name: "x" },
            },
          ],
        },
      ),
      recordingSink().sink,
    );
    await vi.advanceTimersByTimeAsync(500);
    expect(l.status()).toMatchObject({
      state: "disconnected",
      lastError: {
        code: "LINK_BLE_GATT_FAILED",
        message: expect.stringMatching(/characteristic 180f\/2a1a not found/),
      },
    });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(emulated.peripherals.get("aabbcc000001")?.connects).toBeGreaterThan(2);
  });

  it("is unavailable with the reason on an adapter without BLE, and says so in the log once", async () => {
    start({ state: "unsupported" });
    const rec = recordingSink();
    const a = link(readLink("a", { localName: "A" }), rec.sink);
    const b = link(readLink("b", { localName: "B" }), rec.sink);
    await vi.advanceTimersByTimeAsync(100);
    for (const l of [a, b])
      expect(l.status()).toMatchObject({
        state: "unavailable",
        reason: "the Bluetooth adapter does not support Bluetooth Low Energy (state unsupported)",
        lastError: { code: "LINK_BLE_UNAVAILABLE" },
      });
    expect(log.lines.filter((l) => /Bluetooth is unavailable/.test(String(l.msg)))).toHaveLength(1);
  });

  it("comes back when a powered-off adapter is powered on", async () => {
    start({ state: "poweredOff" });
    emulated.addPeripheral(sensor("aa:bb:cc:00:00:01", "EnvSensor"));
    const l = link(readLink("env", { localName: "EnvSensor" }), recordingSink().sink);
    await vi.advanceTimersByTimeAsync(100);
    expect(l.status()).toMatchObject({ state: "unavailable", reason: expect.stringMatching(/powered off/) });
    emulated.setState("poweredOn");
    await vi.advanceTimersByTimeAsync(500);
    expect(l.status().state).toBe("connected");
    emulated.setState("poweredOff");
    await vi.advanceTimersByTimeAsync(100);
    expect(l.status().state).toBe("unavailable");
  });

  it("leaves no timer behind after stop", async () => {
    start();
    emulated.addPeripheral(sensor("aa:bb:cc:00:00:01", "EnvSensor"));
    const l = link(readLink("env", { localName: "EnvSensor" }), recordingSink().sink);
    await vi.advanceTimersByTimeAsync(1500);
    const stopped = l.stop();
    await vi.advanceTimersByTimeAsync(100);
    await stopped;
    adapter.stop();
    emulated.close();
    await vi.advanceTimersByTimeAsync(100);
    expect(l.status()).toMatchObject({ state: "disconnected", reason: "stopped" });
    expect(vi.getTimerCount()).toBe(0);
  });
});

// The real `import("@abandonware/noble")`: it throws on a host without a Bluetooth adapter (as here).
const systemNoble = await import("@abandonware/noble").then(
  () => undefined,
  (err: NodeJS.ErrnoException) => err,
);

describe("BLE on a host without Bluetooth", () => {
  it.skipIf(systemNoble === undefined)("reports unavailable with the reason; nothing throws", async () => {
    const { logger, lines } = memoryLogger();
    const adapter = new BleAdapter({ loadNoble: loadSystemNoble, log: logger });
    const rec = recordingSink();
    const l = createBleLink(readLink("env", { localName: "EnvSensor" }), rec.sink, { adapter, log: logger });
    l.start();
    await vi.waitFor(() => expect(l.status().state).toBe("unavailable"));
    const reason = l.status().reason ?? "";
    if (systemNoble?.code === "EAFNOSUPPORT")
      expect(reason).toMatch(/^no Bluetooth adapter on this host \(EAFNOSUPPORT/);
    else expect(reason).toMatch(/Bluetooth/);
    expect(lines.some((line) => line.level === 40 && String(line.msg).includes(reason))).toBe(true);
    await l.stop();
    adapter.stop();
  });
});

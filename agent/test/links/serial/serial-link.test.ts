import fs from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { checkLinks, type SerialLinkConfig } from "@fieldgate/shared";
import { SerialPort } from "serialport";
import { afterEach, describe, expect, it } from "vitest";
import { eventually } from "../../../../test/support/cloud-process.js";
import { floatWords, ModbusSlave } from "../../../../test/support/modbus-slave.js";
import { createPtyPair, type PtyPair } from "../../../../test/support/pty-pair.js";
import type { LinkReading, LinkSink, LinkStatus } from "../../../src/links/link.js";
import { SerialLink } from "../../../src/links/serial/serial-link.js";
import { memoryLogger } from "../../helpers/logger.js";
import { tempDir } from "../../helpers/tmp.js";

// The pty pairs live as symlinks in temp dirs, resolving to /dev/pts/N: allowed explicitly, as a
// gateway's linkPaths would.
const PTY_LINK_PATHS = [join(os.tmpdir(), "fieldgate-serial-*", "*"), "/dev/pts/*"];

/** Collects what a link delivers. */
function recordingSink() {
  const readings: (LinkReading & { ts: number; link: string })[] = [];
  const states: LinkStatus[] = [];
  const sink: LinkSink = {
    readings: (link, ts, list) => {
      for (const r of list) readings.push({ ...r, ts, link });
    },
    stateChanged: (s) => states.push(s),
  };
  return { sink, readings, states };
}

async function openSim(path: string): Promise<SerialPort> {
  const port = new SerialPort({ path, baudRate: 9600, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  port.on("error", () => {});
  return port;
}

function write(port: SerialPort, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => port.write(data, (err) => (err ? reject(err) : port.drain(() => resolve()))));
}

function closeSim(port: SerialPort | undefined): Promise<void> {
  return new Promise((resolve) => (port?.isOpen ? port.close(() => resolve()) : resolve()));
}

function serialConfig(raw: Record<string, unknown>): SerialLinkConfig {
  return checkLinks([{ type: "serial", ...raw }])[0] as SerialLinkConfig;
}

describe("serial link on a real pty pair", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup(): Promise<PtyPair> {
    const tmp = tempDir("fieldgate-serial-");
    const pair = await createPtyPair(tmp.dir);
    cleanups.push(tmp.cleanup, () => pair.close());
    return pair;
  }

  it("opens nothing outside linkPaths, nor an allowed name that resolves to a regular file", async () => {
    const tmp = tempDir("fieldgate-serial-");
    cleanups.push(tmp.cleanup);
    const secret = join(tmp.dir, "shadow");
    fs.writeFileSync(secret, "root:$6$secret\n");
    const allowedName = join(tmp.dir, "ttyUSB0");
    fs.symlinkSync(secret, allowedName);
    const start = (path: string, linkPaths?: string[]) => {
      const { sink } = recordingSink();
      const link = new SerialLink(
        serialConfig({ id: "l", path, reconnectMin: "10ms", protocol: { type: "lines", format: "kv" } }),
        { sink, logger: memoryLogger().logger, ...(linkPaths && { linkPaths }) },
      );
      cleanups.push(() => link.stop());
      link.start();
      return link;
    };
    const refused = async (link: SerialLink) =>
      eventually(() => (link.status().state === "unavailable" ? link.status() : undefined), 5000, "refused");

    // A file config naming /etc/shadow, with the default linkPaths.
    const shadow = await refused(start("/etc/shadow"));
    expect(shadow.reason).toBe(
      "/etc/shadow is not in the allowed link paths; add a pattern to linkPaths in the gateway's agent config (now /dev/tty*, /dev/serial/by-id/*)",
    );
    expect(shadow.lastError?.code).toBe("LINK_PATH_NOT_ALLOWED");
    // `..` never matches a pattern by climbing out of it.
    const climbing = await refused(start("/dev/tty../../etc/shadow"));
    expect(climbing.reason).toContain("is not in the allowed link paths");
    // An allowed name linked to a regular file: its target is outside the patterns...
    const linked = await refused(start(allowedName, [join(tmp.dir, "tty*")]));
    expect(linked.reason).toBe(
      `${allowedName} resolves to ${secret}, which is not in the allowed link paths; add a pattern to linkPaths in the gateway's agent config (now ${join(tmp.dir, "tty*")})`,
    );
    // ...and allowed too, it is still no character device.
    const file = await refused(start(allowedName, [join(tmp.dir, "*")]));
    expect(file.reason).toBe(
      `${allowedName} (${secret}) is not a character device; a serial link opens only device nodes`,
    );
    expect(file.lastError?.code).toBe("LINK_PATH_NOT_ALLOWED");
  });

  it("decodes good lines into readings and counts bad ones, over-long ones included", async () => {
    const pair = await setup();
    const { sink, readings } = recordingSink();
    const link = new SerialLink(
      serialConfig({
        id: "thermo",
        path: pair.device,
        protocol: { type: "lines", format: "json", maxLineLength: 64, units: { temp: "°C" } },
      }),
      { sink, logger: memoryLogger().logger, linkPaths: PTY_LINK_PATHS },
    );
    cleanups.push(() => link.stop());
    link.start();
    await eventually(() => (link.status().state === "connected" ? true : undefined), 10_000, "connected");
    const sim = await openSim(pair.sim);
    cleanups.push(() => closeSim(sim));
    await write(sim, '{"temp": 21.5, "ok": true, "label": "A"}\r\n');
    await write(sim, "this is not json\n");
    await write(sim, `{"long": "${"x".repeat(100)}"}\n`);
    await write(sim, '{"temp": 22');
    await write(sim, ".5}\n[1,2]\n");
    await eventually(() => (readings.length >= 4 ? true : undefined), 10_000, "readings");
    expect(readings.map((r) => [r.name, r.value, r.unit])).toEqual([
      ["temp", 21.5, "°C"],
      ["ok", true, undefined],
      ["label", "A", undefined],
      ["temp", 22.5, "°C"],
    ]);
    const status = await eventually(() => {
      const s = link.status();
      return s.counters.framingErrors >= 3 ? s : undefined;
    });
    expect(status.counters.framingErrors).toBe(3);
    expect(status.counters.readings).toBe(4);
    expect(status.lastError?.code).toBe("LINK_FRAMING");
    expect(status.lastReading?.readings).toEqual([{ name: "temp", value: 22.5, unit: "°C" }]);

    // Lines arriving in one chunk: the last reading is still the last line's.
    await write(sim, '{"a": 1}\n{"b": 2}\n');
    await eventually(() => (readings.length >= 6 ? true : undefined), 10_000, "two more readings");
    expect(link.status().lastReading?.readings).toEqual([{ name: "b", value: 2 }]);
  });

  it("polls Modbus RTU registers of several types, counting an exception and a timeout", async () => {
    const pair = await setup();
    const slave = new ModbusSlave(pair.sim);
    const [fHigh, fLow] = floatWords(230.5);
    slave.units.set(1, {
      holding: { 0: 1234, 1: 0xfffe, 2: 0x0001, 3: 0x86a0, 10: fLow, 11: fHigh },
      input: { 5: 215 },
      coils: { 0: true, 1: false, 2: true },
    });
    slave.units.set(2, { holding: { 0: 1 } });
    slave.silent.add(2);
    await slave.open();
    cleanups.push(() => slave.close());
    const { sink, readings } = recordingSink();
    const link = new SerialLink(
      serialConfig({
        id: "meter",
        path: pair.device,
        protocol: {
          type: "modbus-rtu",
          interval: "300ms",
          timeout: "200ms",
          retries: 1,
          poll: [
            { unitId: 1, function: "holding", address: 0, type: "uint16", name: "count" },
            { unitId: 1, function: "holding", address: 1, type: "int16", name: "delta" },
            { unitId: 1, function: "holding", address: 2, type: "uint32", name: "energy", unit: "Wh" },
            { unitId: 1, function: "holding", address: 10, type: "float32", wordOrder: "little", name: "voltage" },
            { unitId: 1, function: "input", address: 5, scale: 0.1, offset: -1, name: "temp" },
            { unitId: 1, function: "coil", address: 0, count: 3, name: "relay" },
            { unitId: 1, function: "holding", address: 99, name: "missing" },
            { unitId: 2, function: "holding", address: 0, name: "silent" },
          ],
        },
      }),
      { sink, logger: memoryLogger().logger, linkPaths: PTY_LINK_PATHS },
    );
    cleanups.push(() => link.stop());
    link.start();
    await eventually(() => (readings.some((r) => r.name === "relay.2") ? true : undefined), 15_000, "a full round");
    const round = new Map(readings.map((r) => [r.name, r]));
    expect(round.get("count")?.value).toBe(1234);
    expect(round.get("delta")?.value).toBe(-2);
    expect(round.get("energy")).toMatchObject({ value: 100_000, unit: "Wh" });
    expect(round.get("voltage")?.value).toBe(230.5);
    expect(round.get("temp")?.value).toBe(20.5);
    expect([round.get("relay.0")?.value, round.get("relay.1")?.value, round.get("relay.2")?.value]).toEqual([
      true,
      false,
      true,
    ]);
    expect(round.has("missing")).toBe(false);
    expect(round.has("silent")).toBe(false);
    const status = link.status();
    expect(status.state).toBe("connected");
    expect(status.counters.exceptions).toBeGreaterThanOrEqual(1);
    expect(status.counters.timeouts).toBeGreaterThanOrEqual(2);

    // A corrupted CRC and line noise are counted as framing errors, and polling goes on.
    slave.corruptNext = true;
    const before = readings.length;
    await eventually(() => (link.status().counters.framingErrors >= 1 ? true : undefined), 10_000, "CRC error counted");
    slave.noiseBeforeNext = Buffer.from([0x00, 0xff, 0x13, 0x37]);
    await eventually(() => (readings.length > before + 10 ? true : undefined), 10_000, "polling continues");
  });

  it("detects an unplug, reconnects when the port comes back at the same path, and readings resume", async () => {
    const pair = await setup();
    const { sink, readings, states } = recordingSink();
    const link = new SerialLink(
      serialConfig({
        id: "plug",
        path: pair.device,
        reconnectMin: "100ms",
        reconnectMax: "400ms",
        protocol: { type: "lines", format: "kv" },
      }),
      { sink, logger: memoryLogger().logger, linkPaths: PTY_LINK_PATHS },
      { watchIntervalMs: 100 },
    );
    cleanups.push(() => link.stop());
    link.start();
    await eventually(() => (link.status().state === "connected" ? true : undefined), 10_000, "connected");
    let sim: SerialPort | undefined = await openSim(pair.sim);
    cleanups.push(() => closeSim(sim));
    await write(sim, "n=1 t=20.5\n");
    await eventually(() => (readings.length >= 2 ? true : undefined), 10_000, "first readings");

    await pair.unplug();
    sim = undefined;
    await eventually(() => (link.status().state !== "connected" ? true : undefined), 10_000, "unplug noticed");
    expect(link.status().lastError?.code).toBe("LINK_PORT_UNAVAILABLE");
    // While the path is gone the link keeps trying, and says so.
    await new Promise((r) => setTimeout(r, 800));
    expect(["connecting", "disconnected"]).toContain(link.status().state);

    await pair.replug();
    await eventually(() => (link.status().state === "connected" ? true : undefined), 10_000, "reconnected");
    sim = await openSim(pair.sim);
    await write(sim, "n=2\n");
    await eventually(
      () => (readings.some((r) => r.name === "n" && r.value === 2) ? true : undefined),
      10_000,
      "resume",
    );
    expect(link.status().counters.reconnects).toBeGreaterThanOrEqual(1);
    expect(states.some((s) => s.state === "disconnected")).toBe(true);
  });

  it("keeps polling Modbus through an unplug and a replug: readings resume", async () => {
    const pair = await setup();
    let slave = new ModbusSlave(pair.sim);
    slave.units.set(7, { input: { 0: 100 } });
    await slave.open();
    cleanups.push(() => slave.close());
    const { sink, readings } = recordingSink();
    const link = new SerialLink(
      serialConfig({
        id: "pump",
        path: pair.device,
        reconnectMin: "100ms",
        reconnectMax: "400ms",
        protocol: {
          type: "modbus-rtu",
          interval: "100ms",
          timeout: "100ms",
          poll: [{ unitId: 7, function: "input", address: 0, name: "flow" }],
        },
      }),
      { sink, logger: memoryLogger().logger, linkPaths: PTY_LINK_PATHS },
      { watchIntervalMs: 100 },
    );
    cleanups.push(() => link.stop());
    link.start();
    await eventually(() => (readings.some((r) => r.value === 100) ? true : undefined), 10_000, "first poll");
    await slave.close();
    await pair.unplug();
    await eventually(() => (link.status().state !== "connected" ? true : undefined), 10_000, "unplug noticed");
    await new Promise((r) => setTimeout(r, 500));
    await pair.replug();
    slave = new ModbusSlave(pair.sim);
    slave.units.set(7, { input: { 0: 200 } });
    await slave.open();
    await eventually(() => (readings.some((r) => r.value === 200) ? true : undefined), 15_000, "polling resumed");
    expect(link.status()).toMatchObject({ state: "connected" });
    expect(link.status().counters.reconnects).toBeGreaterThanOrEqual(1);
  });

  it("reopens a port that went silent for longer than staleAfter", async () => {
    const pair = await setup();
    const { sink } = recordingSink();
    const link = new SerialLink(
      serialConfig({
        id: "quiet",
        path: pair.device,
        staleAfter: "300ms",
        reconnectMin: "50ms",
        reconnectMax: "100ms",
        protocol: { type: "lines", format: "kv" },
      }),
      { sink, logger: memoryLogger().logger, linkPaths: PTY_LINK_PATHS },
      { watchIntervalMs: 50 },
    );
    cleanups.push(() => link.stop());
    link.start();
    await eventually(() => (link.status().counters.reconnects >= 1 ? true : undefined), 10_000, "a stale reopen");
    expect(link.status().lastError?.code).toBe("LINK_STALE");
  });
});

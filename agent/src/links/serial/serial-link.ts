import { existsSync } from "node:fs";
import { type ErrorCode, parseDuration, type SerialLinkConfig } from "@fieldgate/shared";
import type { Logger } from "pino";
import { Backoff, sleep } from "../../retry/backoff.js";
import type { Link, LinkContext, LinkCounters, LinkFactory, LinkReading, LinkState, LinkStatus } from "../link.js";
import { nativeBindingReason, SERIAL_BINDING } from "../native-binding.js";
import { DEFAULT_MAX_LINE_LENGTH, LineDecoder, LineSplitter } from "./line-protocol.js";
import { DEFAULT_LINK_PATHS, linkPathRefusal } from "./link-paths.js";
import { type ModbusClient, ModbusPoller } from "./modbus-poller.js";
import { RtuFramer } from "./rtu-framer.js";
import { RtuPort } from "./rtu-port.js";

/** An open serial port, as far as the link uses it (serialport's `SerialPort` is one). */
export interface SerialPortHandle {
  readonly isOpen: boolean;
  write(data: Buffer): unknown;
  close(callback?: (err: Error | null) => void): void;
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  on(event: "close" | "error", listener: (err?: Error | null) => void): unknown;
  off(event: "data", listener: (chunk: Buffer) => void): unknown;
  off(event: "close" | "error", listener: (err?: Error | null) => void): unknown;
}

/** Port settings as serialport takes them. */
export interface SerialSettings {
  path: string;
  baudRate: number;
  dataBits: 5 | 6 | 7 | 8;
  parity: "none" | "even" | "odd" | "mark" | "space";
  stopBits: 1 | 1.5 | 2;
}

/** What the link takes from the serialport package. */
export type SerialPortModule = Pick<typeof import("serialport"), "SerialPort">;

/** Seams for tests; production passes none. */
export interface SerialLinkSeams {
  openPort?: (settings: SerialSettings) => Promise<SerialPortHandle>;
  /** Loads serialport and with it its native binding (default: `import("serialport")`). */
  loadSerialPort?: () => Promise<SerialPortModule>;
  createModbusClient?: (port: RtuPort) => Promise<ModbusClient & ModbusClientControl>;
  pathExists?: (path: string) => boolean;
  /** How often the path and the staleness are checked (default 1s). */
  watchIntervalMs?: number;
  clock?: () => number;
  random?: () => number;
}

/** What the link does with a modbus-serial client besides requests. */
export interface ModbusClientControl {
  setTimeout(ms: number): void;
  open(callback?: (err: Error | null) => void): void;
  close(callback?: (err?: Error | null) => void): void;
}

/** The serial settings with their defaults and durations in milliseconds. */
export interface ResolvedSerialLink {
  settings: SerialSettings;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  staleAfterMs: number;
}

const ms = (text: string | undefined, fallback: number): number =>
  text === undefined ? fallback : (parseDuration(text) ?? fallback);

/** Applies the documented defaults (docs/links.md); the config was checked by `checkLinks`. */
export function resolveSerialLink(config: SerialLinkConfig): ResolvedSerialLink {
  const lines = config.protocol.type === "lines";
  return {
    settings: {
      path: config.path,
      baudRate: config.baudRate ?? 9600,
      dataBits: (config.dataBits ?? 8) as SerialSettings["dataBits"],
      parity: (config.parity ?? "none") as SerialSettings["parity"],
      stopBits: (config.stopBits ?? 1) as SerialSettings["stopBits"],
    },
    reconnectMinMs: ms(config.reconnectMin, 1000),
    reconnectMaxMs: ms(config.reconnectMax, 30_000),
    staleAfterMs: ms(config.staleAfter, lines ? 300_000 : 60_000),
  };
}

/** Why a session with the port ended. */
interface SessionEnd {
  code: ErrorCode;
  message: string;
}

/** setTimeout's largest delay (about 24.8 days); a larger one fires at once. */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/** At most one log line per link and kind of trouble per this period; the counters keep the rest. */
const LOG_EVERY_MS = 60_000;

/**
 * A serial port link (issue #6). It opens the port in the background and keeps it open: when the
 * port closes, errors, vanishes from the file system or stays silent past `staleAfter` (the
 * backstop for unplugs serialport never reports, #2351), it closes it and reopens the path with
 * capped backoff, forever. While open it runs the `lines` decoder or the Modbus RTU poller.
 */
export class SerialLink implements Link {
  readonly id: string;
  readonly type = "serial";
  private readonly resolved: ResolvedSerialLink;
  private readonly counters: LinkCounters = {
    readings: 0,
    framingErrors: 0,
    reconnects: 0,
    exceptions: 0,
    timeouts: 0,
  };
  private state: LinkState = "disconnected";
  private since: number;
  private reason: string | undefined = "not started";
  private lastReading: LinkStatus["lastReading"];
  private lastError: LinkStatus["lastError"];
  private running = false;
  private abort = new AbortController();
  private loop: Promise<void> | undefined;
  private endSession: ((end: SessionEnd) => void) | undefined;
  private readonly lastLogged = new Map<string, number>();
  private readonly clock: () => number;
  private readonly logger: Logger;

  constructor(
    private readonly config: SerialLinkConfig,
    private readonly context: LinkContext,
    private readonly seams: SerialLinkSeams = {},
  ) {
    this.id = config.id;
    this.resolved = resolveSerialLink(config);
    this.clock = seams.clock ?? Date.now;
    this.since = this.clock();
    this.logger = context.logger.child({ link: config.id });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    this.loop = this.runForever();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.abort.abort();
    this.endSession?.({ code: "LINK_PORT_UNAVAILABLE", message: "stopped" });
    await this.loop;
    this.setState("disconnected", "stopped");
  }

  status(): LinkStatus {
    return {
      id: this.id,
      type: this.type,
      state: this.state,
      since: this.since,
      ...(this.reason !== undefined && { reason: this.reason }),
      ...(this.lastReading && { lastReading: structuredClone(this.lastReading) }),
      counters: { ...this.counters },
      ...(this.lastError && { lastError: { ...this.lastError } }),
    };
  }

  /** Unreachable by design, but a bug in a protocol must not end the link for good: it restarts. */
  private async runForever(): Promise<void> {
    while (this.running) {
      try {
        await this.run();
      } catch (err) {
        this.fail("INTERNAL", `the link failed and restarts: ${(err as Error).message}`);
        this.setState("error", (err as Error).message);
        await sleep(this.resolved.reconnectMaxMs, this.abort.signal);
      }
    }
  }

  private async run(): Promise<void> {
    const backoff = new Backoff({
      minMs: this.resolved.reconnectMinMs,
      maxMs: this.resolved.reconnectMaxMs,
      ...(this.seams.random && { random: this.seams.random }),
    });
    let openedBefore = false;
    const path = this.resolved.settings.path;
    while (this.running) {
      // Checked before every open: a symlink's target can change between opens (a replug).
      const refusal = linkPathRefusal(path, this.context.linkPaths ?? DEFAULT_LINK_PATHS);
      if (refusal !== undefined) {
        this.fail("LINK_PATH_NOT_ALLOWED", refusal);
        this.setState("unavailable", refusal);
        await sleep(backoff.next(), this.abort.signal);
        continue;
      }
      this.setState("connecting", `opening ${path}`);
      let port: SerialPortHandle;
      try {
        port = this.seams.openPort
          ? await this.seams.openPort(this.resolved.settings)
          : await openSerialPort(this.resolved.settings, this.seams.loadSerialPort ?? loadSerialPort);
      } catch (err) {
        const driver = nativeBindingReason(SERIAL_BINDING, err);
        if (driver !== undefined) {
          // A missing binding does not come back by itself (Node caches the failed load): say so
          // once and wait for the stop; the fix ends with a restart.
          this.fail("LINK_DRIVER_UNAVAILABLE", driver);
          this.setState("unavailable", driver);
          await sleep(LONGEST_TIMER_MS, this.abort.signal);
          continue;
        }
        const message = `cannot open ${path}: ${(err as Error).message}`;
        this.fail("LINK_PORT_UNAVAILABLE", message);
        this.setState("disconnected", message);
        await sleep(backoff.next(), this.abort.signal);
        continue;
      }
      if (!this.running) {
        await closePort(port);
        break;
      }
      if (openedBefore) this.counters.reconnects += 1;
      openedBefore = true;
      backoff.reset();
      this.setState("connected", undefined);
      this.logger.info({ path }, `link ${this.id}: ${path} open`);
      const end = await this.session(port);
      await closePort(port);
      if (!this.running) break;
      this.fail(end.code, end.message);
      this.setState("disconnected", end.message);
      await sleep(backoff.next(), this.abort.signal);
    }
  }

  /** Runs the protocol on an open port until it is lost or the link stops. */
  private async session(port: SerialPortHandle): Promise<SessionEnd> {
    const { staleAfterMs, settings } = this.resolved;
    let lastData = this.clock();
    const heard = (): void => {
      lastData = this.clock();
    };
    let ended: SessionEnd | undefined;
    let resolveEnd: (end: SessionEnd) => void = () => {};
    const finished = new Promise<SessionEnd>((resolve) => {
      resolveEnd = resolve;
    });
    const end = (e: SessionEnd): void => {
      if (ended) return;
      ended = e;
      resolveEnd(e);
    };
    this.endSession = end;
    const onClose = (err?: Error | null): void =>
      end({
        code: "LINK_PORT_UNAVAILABLE",
        message: `${settings.path} closed${err?.message ? `: ${err.message}` : ""} (unplugged?)`,
      });
    const onError = (err?: Error | null): void =>
      end({ code: "LINK_PORT_UNAVAILABLE", message: `${settings.path}: ${err?.message ?? "port error"}` });
    port.on("close", onClose);
    port.on("error", onError);
    const pathExists = this.seams.pathExists ?? existsSync;
    const watch = setInterval(() => {
      if (!pathExists(settings.path)) {
        end({ code: "LINK_PORT_UNAVAILABLE", message: `${settings.path} vanished (unplugged?)` });
      } else if (this.clock() - lastData > staleAfterMs) {
        end({
          code: "LINK_STALE",
          message: `nothing received for ${Math.round(staleAfterMs / 1000)}s; reopening ${settings.path}`,
        });
      }
    }, this.seams.watchIntervalMs ?? 1000);
    watch.unref();

    let stopProtocol: () => Promise<void>;
    try {
      stopProtocol =
        this.config.protocol.type === "lines"
          ? this.runLines(port, heard)
          : await this.runModbus(port, heard, this.config.protocol);
    } catch (err) {
      end({ code: "LINK_PORT_UNAVAILABLE", message: `cannot start on ${settings.path}: ${(err as Error).message}` });
      stopProtocol = async () => {};
    }
    const result = await finished;
    clearInterval(watch);
    this.endSession = undefined;
    port.off("close", onClose);
    port.off("error", onError);
    await stopProtocol();
    return result;
  }

  private runLines(port: SerialPortHandle, heard: () => void): () => Promise<void> {
    const protocol = this.config.protocol as Extract<SerialLinkConfig["protocol"], { type: "lines" }>;
    const splitter = new LineSplitter(protocol.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH);
    const decoder = new LineDecoder(protocol);
    const onData = (chunk: Buffer): void => {
      heard();
      const overlongBefore = splitter.overlong;
      const lines = splitter.push(chunk);
      if (splitter.overlong > overlongBefore) {
        this.counters.framingErrors += splitter.overlong - overlongBefore;
        this.fail("LINK_FRAMING", `a line longer than ${splitter.maxLineLength} bytes was dropped`);
      }
      const ts = this.clock();
      // One delivery per line, so that the last reading shown is the last line's, however the
      // kernel happened to split or join the bytes.
      for (const line of lines) {
        const decoded = decoder.decode(line);
        if (decoded.error !== undefined) {
          this.counters.framingErrors += 1;
          this.fail("LINK_FRAMING", `bad line: ${decoded.error}`);
        }
        if (decoded.readings.length > 0) this.deliver(ts, decoded.readings);
      }
    };
    port.on("data", onData);
    return async () => {
      port.off("data", onData);
    };
  }

  private async runModbus(
    port: SerialPortHandle,
    heard: () => void,
    protocol: Extract<SerialLinkConfig["protocol"], { type: "modbus-rtu" }>,
  ): Promise<() => Promise<void>> {
    const framer = new RtuFramer();
    const rtuPort = new RtuPort(port, framer);
    const client = await (this.seams.createModbusClient ?? createModbusClient)(rtuPort);
    const timeoutMs = ms(protocol.timeout, 1000);
    client.setTimeout(timeoutMs);
    await new Promise<void>((resolve, reject) => client.open((err) => (err ? reject(err) : resolve())));
    let garbageRuns = framer.garbageRuns;
    const countGarbage = (): void => {
      if (framer.garbageRuns === garbageRuns) return;
      this.counters.framingErrors += framer.garbageRuns - garbageRuns;
      garbageRuns = framer.garbageRuns;
      this.fail("LINK_FRAMING", "unexpected bytes on the line were dropped");
    };
    const poller = new ModbusPoller(
      client,
      { intervalMs: ms(protocol.interval, 10_000), timeoutMs, retries: protocol.retries ?? 2, poll: protocol.poll },
      {
        readings: (ts, readings) => {
          countGarbage();
          this.deliver(ts, readings);
        },
        answered: () => {
          heard();
          if (this.state === "error") this.setState("connected", undefined);
        },
        exception: (entry, code, message) => {
          this.counters.exceptions += 1;
          this.fail("LINK_MODBUS_EXCEPTION", `unit ${entry.unitId} ${entry.name}: exception ${code} (${message})`);
        },
        timeout: (entry) => {
          countGarbage();
          this.counters.timeouts += 1;
          this.fail("LINK_TIMEOUT", `unit ${entry.unitId} ${entry.name}: no answer within ${timeoutMs}ms`);
        },
        framing: (entry, message) => {
          countGarbage();
          this.counters.framingErrors += 1;
          this.fail("LINK_FRAMING", `unit ${entry.unitId} ${entry.name}: ${message}`);
        },
        silentRound: () => {
          if (this.state === "connected") this.setState("error", "no Modbus unit answers");
        },
      },
      this.clock,
    );
    poller.start();
    return async () => {
      await poller.stop();
      await new Promise<void>((resolve) => client.close(() => resolve()));
    };
  }

  private deliver(ts: number, readings: LinkReading[]): void {
    this.counters.readings += readings.length;
    this.lastReading = { ts, readings };
    try {
      this.context.sink.readings(this.id, ts, readings);
    } catch (err) {
      this.fail("INTERNAL", `readings not stored: ${(err as Error).message}`);
    }
  }

  private setState(state: LinkState, reason: string | undefined): void {
    if (state === this.state && reason === this.reason) return;
    if (state !== this.state) this.since = this.clock();
    this.state = state;
    this.reason = reason;
    try {
      this.context.sink.stateChanged(this.status());
    } catch {
      // A sink must not throw; if it does, the link carries on.
    }
  }

  /** Records the last error and logs it, at most once a minute per code. */
  private fail(code: ErrorCode, message: string): void {
    const now = this.clock();
    this.lastError = { ts: now, code, message };
    const last = this.lastLogged.get(code) ?? Number.NEGATIVE_INFINITY;
    if (now - last >= LOG_EVERY_MS) {
      this.lastLogged.set(code, now);
      this.logger.warn({ code, counters: this.counters }, `link ${this.id}: ${message}`);
    }
  }
}

/** serialport is loaded on the first open, not at import, so an agent without links never loads it. */
function loadSerialPort(): Promise<SerialPortModule> {
  return import("serialport");
}

async function openSerialPort(
  settings: SerialSettings,
  load: () => Promise<SerialPortModule>,
): Promise<SerialPortHandle> {
  const { SerialPort } = await load();
  const port = new SerialPort({ ...settings, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  // Errors after open arrive as events, which the session listens to; this keeps a stray one from throwing.
  port.on("error", () => {});
  return port as unknown as SerialPortHandle;
}

async function createModbusClient(port: RtuPort): Promise<ModbusClient & ModbusClientControl> {
  const mod = await import("modbus-serial");
  // CommonJS: `default` is module.exports, and modbus-serial sets module.exports.default to itself.
  const ModbusRTU = mod.default.default;
  const client = new ModbusRTU(port);
  // modbus-serial re-emits port errors; the link handles them on the port itself.
  client.on("error", () => {});
  return client as unknown as ModbusClient & ModbusClientControl;
}

function closePort(port: SerialPortHandle): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!port.isOpen) return resolve();
    try {
      port.close(() => resolve());
    } catch {
      resolve();
    }
  });
}

/** The manager's factory for `type: "serial"`. */
export const createSerialLink: LinkFactory<SerialLinkConfig> = (config, context) => new SerialLink(config, context);

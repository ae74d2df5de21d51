import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FieldgateError } from "@fieldgate/shared";
import type { Logger } from "pino";
import { writeFileAtomic } from "../identity/atomic-file.js";
import { DownloadInterrupter } from "./download-interrupter.js";
import { LatencyRecorder, type LatencySummary } from "./latency-recorder.js";
import { OperatorClient } from "./operator-client.js";
import type { SimOptions } from "./sim-options.js";
import { SimulatedDevice, type TelemetryCounters } from "./simulated-device.js";
import type { UpdateCounters } from "./simulated-updates.js";

/** `<fleet-dir>/fleet.json`: the devices a run registered, for later runs on the same identities. */
interface FleetRecord {
  v: 1;
  cloudUrl: string;
  devices: string[];
}

/** The JSON summary `fieldgate-sim` prints on stdout. */
export interface SimSummary {
  devices: number;
  options: {
    rate: number;
    batch: number;
    maxInFlight: number;
    enroll: boolean;
    failUpdatesPct: number;
    killDownloadsPct: number;
    durationMs: number;
    backlog: number;
  };
  fleetDir: string | null;
  enrollment: {
    registered: number;
    registerMs: number | null;
    enrolled: number;
    failed: number;
    /** From the first request to the last device enrolled and connected. */
    ms: number | null;
    perSecond: number | null;
    latencyMs: LatencySummary;
    firstError: string | null;
  } | null;
  connect: {
    connected: number;
    failed: number;
    ms: number;
    perSecond: number | null;
    connackMs: LatencySummary;
    firstError: string | null;
  };
  backlog: {
    written: number;
    writeMs: number;
    writePerSecond: number | null;
    /** From the first CONNACK to every outbox empty; null if it did not empty. */
    drainMs: number | null;
    drainPerSecond: number | null;
  } | null;
  telemetry: {
    produced: number;
    acked: number;
    batchesAcked: number;
    /** Readings still in the outboxes at the end (kept for the next run, never lost). */
    pending: number;
    runMs: number;
    /** Acknowledged (= stored) during the publishing phase, per second; the final drain is not counted. */
    ackedPerSecond: number | null;
    storedLatencyMs: LatencySummary;
  };
  updates: {
    received: number;
    succeeded: number;
    failed: number;
    corrupt: number;
    interrupted: number;
    resumed: number;
    bytes: number;
    downloadMs: number | null;
    bytesPerSecond: number | null;
  };
  durationMs: number;
}

/** What the fleet needs besides its options. */
export interface FleetDeps {
  logger: Logger;
  /** A progress line for the operator (stderr). */
  progress: (line: string) => void;
  agentVersion: string;
}

const TICK_MS = 100;
const ENROLL_ATTEMPTS = 5;
const BACKLOG_CHUNK = 10_000;

/**
 * N simulated gateways in one process. A run: register and enroll (with `enroll`) or load the
 * identities of an earlier run, write any offline backlog, connect every device at once, publish
 * at the configured rate, run the update jobs the cloud sends, then drain and summarise.
 */
export class Fleet {
  private readonly devices: SimulatedDevice[] = [];
  private readonly telemetry: TelemetryCounters = { produced: 0, acked: 0, batchesAcked: 0 };
  private readonly updates: UpdateCounters = {
    received: 0,
    succeeded: 0,
    failed: 0,
    corrupt: 0,
    interrupted: 0,
    resumed: 0,
    bytes: 0,
    firstDownloadAt: undefined,
    lastDownloadAt: undefined,
  };
  private readonly storedLatency = new LatencyRecorder();
  private readonly connackLatency = new LatencyRecorder();
  private readonly enrollLatency = new LatencyRecorder();
  private stopRequested = false;
  private phase = "starting";
  private enrolled = 0;
  private connected = 0;
  private lastAcked = 0;
  private lastProgressAt = 0;
  private firstConnackAt: number | undefined;
  private connectFailures = 0;
  private connectError: string | null = null;

  constructor(
    private readonly options: SimOptions,
    private readonly deps: FleetDeps,
  ) {}

  /** Ends the current phase early (SIGINT); the summary still comes. */
  requestStop(): void {
    this.stopRequested = true;
  }

  async run(): Promise<SimSummary> {
    const { options } = this;
    const started = performance.now();
    const fleetDir = options.fleetDir ?? mkdtempSync(join(tmpdir(), "fieldgate-sim-"));
    mkdirSync(fleetDir, { recursive: true, mode: 0o700 });
    const progressTimer = setInterval(() => this.reportProgress(), options.progressIntervalMs);
    try {
      let tokens: Map<string, string> | undefined;
      let registerMs: number | null = null;
      let uuids: string[];
      if (options.enroll) {
        this.phase = "registering";
        uuids = Array.from({ length: options.devices }, () => randomUUID());
        const t0 = performance.now();
        const operator = new OperatorClient(options.cloudUrl, options.caPem, options.operatorAuthorization ?? "");
        tokens = await operator.importDevices(uuids, options.deviceType);
        registerMs = performance.now() - t0;
        writeFileAtomic(
          join(fleetDir, "fleet.json"),
          `${JSON.stringify({ v: 1, cloudUrl: options.cloudUrl, devices: uuids } satisfies FleetRecord)}\n`,
          0o600,
        );
      } else {
        uuids = this.knownDevices(fleetDir);
      }
      this.buildDevices(fleetDir, uuids);

      const needsOutbox = options.rate > 0 || options.backlog > 0;
      if (needsOutbox) for (const device of this.devices) device.openOutbox();
      const backlog = options.backlog > 0 ? this.writeBacklog() : undefined;

      const enrollment = tokens ? await this.enrollAndConnect(tokens, registerMs) : null;
      const connect = enrollment ? this.connectSummary(enrollment.ms ?? 0) : await this.connectAll();
      const runStart = performance.now();
      const drainMs = await this.publishPhase(runStart);
      const runMs = performance.now() - runStart;
      const ackedInRun = this.telemetry.acked;
      this.phase = "draining";
      await this.drain();
      const pending = this.devices.reduce((sum, d) => sum + d.backlog, 0);
      this.phase = "stopping";
      await Promise.all(this.devices.map((d) => d.stop(1000)));
      const { firstDownloadAt, lastDownloadAt, ...updateCounts } = this.updates;
      const downloadMs =
        firstDownloadAt !== undefined && lastDownloadAt !== undefined ? lastDownloadAt - firstDownloadAt : null;
      return {
        devices: options.devices,
        options: {
          rate: options.rate,
          batch: options.batch,
          maxInFlight: options.maxInFlight,
          enroll: options.enroll,
          failUpdatesPct: options.failUpdatesPct,
          killDownloadsPct: options.killDownloadsPct,
          durationMs: options.durationMs,
          backlog: options.backlog,
        },
        fleetDir: options.fleetDir ?? null,
        enrollment,
        connect,
        backlog: backlog
          ? {
              ...backlog,
              drainMs: drainMs === undefined ? null : Math.round(drainMs),
              drainPerSecond: drainMs ? perSecond(backlog.written, drainMs) : null,
            }
          : null,
        telemetry: {
          ...this.telemetry,
          pending,
          runMs: Math.round(runMs),
          ackedPerSecond: perSecond(ackedInRun, runMs),
          storedLatencyMs: this.storedLatency.summary(),
        },
        updates: {
          ...updateCounts,
          downloadMs: downloadMs === null ? null : Math.round(downloadMs),
          bytesPerSecond: downloadMs ? perSecond(this.updates.bytes, downloadMs) : null,
        },
        durationMs: Math.round(performance.now() - started),
      };
    } finally {
      clearInterval(progressTimer);
      if (!options.fleetDir) rmSync(fleetDir, { recursive: true, force: true });
    }
  }

  private knownDevices(fleetDir: string): string[] {
    const file = join(fleetDir, "fleet.json");
    const record = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as FleetRecord) : undefined;
    if (!record || record.devices.length < this.options.devices) {
      throw new FieldgateError(
        "CONFIG_INVALID",
        `${file} holds ${record?.devices.length ?? 0} enrolled devices, fewer than --devices ${this.options.devices}; run once with --enroll (and the same --fleet-dir) first`,
        "fleet-dir",
      );
    }
    return record.devices.slice(0, this.options.devices);
  }

  private buildDevices(fleetDir: string, uuids: string[]): void {
    const { options } = this;
    const cloud = new URL(options.cloudUrl);
    const cloudPort = Number(cloud.port || 443);
    uuids.forEach((uuid, i) => {
      const interrupter = picked(i, options.killDownloadsPct)
        ? new DownloadInterrupter(cloud.hostname, cloudPort)
        : undefined;
      this.devices.push(
        new SimulatedDevice({
          uuid,
          dataDir: join(fleetDir, "devices", uuid),
          cloudUrl: options.cloudUrl,
          caPem: options.caPem,
          batchMax: options.batch,
          maxInFlight: options.maxInFlight,
          logger: this.deps.logger,
          telemetry: this.telemetry,
          updates: this.updates,
          storedLatency: this.storedLatency,
          failInstall: picked(i, options.failUpdatesPct),
          ...(interrupter && { interrupter }),
          agentVersion: this.deps.agentVersion,
        }),
      );
    });
  }

  private writeBacklog(): { written: number; writeMs: number; writePerSecond: number | null } {
    this.phase = "writing backlog";
    const t0 = performance.now();
    let written = 0;
    for (const device of this.devices) {
      for (let left = this.options.backlog; left > 0; left -= BACKLOG_CHUNK) {
        const count = Math.min(BACKLOG_CHUNK, left);
        device.produce(count);
        written += count;
      }
    }
    const writeMs = performance.now() - t0;
    return { written, writeMs: Math.round(writeMs), writePerSecond: perSecond(written, writeMs) };
  }

  /** Enrolls with at most `concurrency` requests in flight; each device connects as soon as it is enrolled. */
  private async enrollAndConnect(tokens: Map<string, string>, registerMs: number | null) {
    this.phase = "enrolling";
    const t0 = performance.now();
    const connects: Promise<void>[] = [];
    let failed = 0;
    let firstError: string | null = null;
    let next = 0;
    const worker = async () => {
      while (next < this.devices.length && !this.stopRequested) {
        const device = this.devices[next++] as SimulatedDevice;
        const begun = performance.now();
        try {
          await withRetries(() => device.enroll(tokens.get(device.uuid) ?? ""), ENROLL_ATTEMPTS);
          this.enrollLatency.record(performance.now() - begun);
          this.enrolled += 1;
          connects.push(this.connectOne(device));
        } catch (err) {
          failed += 1;
          firstError ??= describe(err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency, this.devices.length) }, worker));
    await Promise.all(connects);
    const ms = performance.now() - t0;
    return {
      registered: tokens.size,
      registerMs: registerMs === null ? null : Math.round(registerMs),
      enrolled: this.enrolled,
      failed,
      ms: Math.round(ms),
      perSecond: perSecond(this.connected, ms),
      latencyMs: this.enrollLatency.summary(),
      firstError,
    };
  }

  private connectOne(device: SimulatedDevice): Promise<void> {
    const begun = performance.now();
    return device.connect(this.connectTimeoutMs()).then(
      () => {
        this.firstConnackAt ??= performance.now();
        this.connackLatency.record(performance.now() - begun);
        this.connected += 1;
      },
      (err: unknown) => {
        this.connectFailures += 1;
        this.connectError ??= describe(err);
      },
    );
  }

  /** A storm of N handshakes takes time on a small cloud; a device gives up only well after that. */
  private connectTimeoutMs(): number {
    return Math.max(60_000, this.options.devices * 30);
  }

  /** Every device at once: the reconnect storm of a fleet whose cloud came back. */
  private async connectAll() {
    this.phase = "connecting";
    const ready = this.devices.filter((device) => {
      if (device.loadIdentity()) return true;
      this.connectFailures += 1;
      this.connectError ??= `${device.uuid} has no stored identity; enroll it again with --enroll`;
      return false;
    });
    // The clock starts when the cloud "comes back": identities and sessions exist before, as on
    // running gateways; each then pays its connection only.
    for (const device of ready) device.prepare(this.connectTimeoutMs());
    const t0 = performance.now();
    await Promise.all(ready.map((d) => this.connectOne(d)));
    return this.connectSummary(performance.now() - t0);
  }

  private connectSummary(ms: number) {
    return {
      connected: this.connected,
      failed: this.connectFailures,
      ms: Math.round(ms),
      perSecond: perSecond(this.connected, ms),
      connackMs: this.connackLatency.summary(),
      firstError: this.connectError,
    };
  }

  /** Produces readings at the rate until the duration ends (or the drain / job goal is met); returns the drain time. */
  private async publishPhase(runStart: number): Promise<number | undefined> {
    const { options } = this;
    this.phase = "publishing";
    let producedEach = 0;
    let drainMs: number | undefined;
    // Publishers start at each device's CONNACK: the backlog drains from the first one.
    const drainStart = this.firstConnackAt ?? runStart;
    for (;;) {
      const elapsed = performance.now() - runStart;
      if (options.rate > 0) {
        const due = Math.floor((options.rate * Math.min(elapsed, options.durationMs)) / 1000) - producedEach;
        if (due > 0) {
          const ts = Date.now();
          for (const device of this.devices) device.produce(due, ts);
          producedEach += due;
        }
      }
      if (drainMs === undefined && options.backlog > 0 && this.telemetry.acked >= this.telemetry.produced) {
        drainMs = performance.now() - drainStart;
      }
      const jobsDone = this.updates.succeeded + this.updates.failed;
      if (this.stopRequested || elapsed >= options.durationMs) break;
      if (options.untilDrained && options.rate === 0 && this.telemetry.acked >= this.telemetry.produced) break;
      if (options.expectJobs > 0 && jobsDone >= options.expectJobs && !this.devices.some((d) => d.updating)) break;
      await sleep(TICK_MS);
    }
    return drainMs;
  }

  /** After the last reading: lets the publishers empty the outboxes, up to the drain timeout. */
  private async drain(): Promise<void> {
    const deadline = performance.now() + this.options.drainTimeoutMs;
    while (this.telemetry.acked < this.telemetry.produced && performance.now() < deadline && !this.stopRequested) {
      await sleep(TICK_MS);
    }
  }

  private reportProgress(): void {
    const now = performance.now();
    const seconds = this.lastProgressAt ? (now - this.lastProgressAt) / 1000 : 0;
    const ackRate = seconds > 0 ? Math.round((this.telemetry.acked - this.lastAcked) / seconds) : 0;
    this.lastProgressAt = now;
    this.lastAcked = this.telemetry.acked;
    const n = this.options.devices;
    const parts = [
      this.phase,
      this.options.enroll ? `enrolled ${this.enrolled}/${n}` : "",
      `connected ${this.connected}/${n}`,
      `produced ${this.telemetry.produced}`,
      `acked ${this.telemetry.acked} (${ackRate}/s)`,
      this.updates.received > 0
        ? `jobs ${this.updates.succeeded + this.updates.failed}/${this.updates.received} (${this.updates.corrupt} corrupt)`
        : "",
    ];
    this.deps.progress(parts.filter(Boolean).join(" · "));
  }
}

/** Exactly round(n·pct/100) of n indexes, spread evenly: index i is picked when the running share steps up. */
export function picked(index: number, pct: number): boolean {
  return Math.floor(((index + 1) * pct) / 100) > Math.floor((index * pct) / 100);
}

async function withRetries(attempt: () => Promise<void>, attempts: number): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await attempt();
      return;
    } catch (err) {
      // Only an overloaded or unreachable cloud is worth another try; a refusal is final.
      if ((err as FieldgateError).code !== "CLOUD_UNREACHABLE" || i >= attempts) throw err;
      await sleep(250 * 2 ** i * (0.5 + Math.random()));
    }
  }
}

function perSecond(count: number, ms: number): number | null {
  return ms > 0 ? Math.round((count * 1000) / ms) : null;
}

function describe(err: unknown): string {
  return err instanceof FieldgateError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

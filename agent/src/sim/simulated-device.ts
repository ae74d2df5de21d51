import { mkdirSync } from "node:fs";
import type { Logger } from "pino";
import { EnrollmentClient } from "../enrollment/enrollment-client.js";
import { type Identity, IdentityStore } from "../identity/identity-store.js";
import { OutboxPublisher } from "../outbox/outbox-publisher.js";
import { OutboxWriter } from "../outbox/outbox-writer.js";
import { SqliteOutboxStore } from "../outbox/sqlite-outbox-store.js";
import { MqttSession } from "../transport/mqtt-session.js";
import type { DownloadInterrupter } from "./download-interrupter.js";
import type { LatencyRecorder } from "./latency-recorder.js";
import { SimulatedUpdates, type UpdateCounters } from "./simulated-updates.js";

/** The name of the simulated readings: a per-device counter (1, 2, 3, …), so loss and duplicates show. */
export const SIM_READING = "sim.counter";

/** Fleet-wide telemetry counters the devices add to. */
export interface TelemetryCounters {
  produced: number;
  acked: number;
  batchesAcked: number;
}

/** What one simulated gateway needs; the fleet shares the counters and recorders. */
export interface SimulatedDeviceDeps {
  uuid: string;
  /** This device's data directory: identity/ and agent.db, as on a real gateway. */
  dataDir: string;
  cloudUrl: string;
  caPem: string;
  batchMax: number;
  maxInFlight: number;
  logger: Logger;
  telemetry: TelemetryCounters;
  updates: UpdateCounters;
  /** publish → PUBACK; the cloud acknowledges only once stored, so this is publish-to-stored. */
  storedLatency: LatencyRecorder;
  failInstall: boolean;
  interrupter?: DownloadInterrupter;
  agentVersion: string;
}

/**
 * One simulated gateway built from the agent's own parts: `EnrollmentClient` and `IdentityStore`
 * for its identity, `MqttSession` for the mTLS session, the SQLite outbox with its writer and
 * publisher for telemetry, and the firmware downloader for jobs. Only the sampler (replaced by a
 * counter at a set rate) and the installer (simulated) are not the agent's.
 */
export class SimulatedDevice {
  readonly identityStore: IdentityStore;
  private identity: Identity | undefined;
  private store: SqliteOutboxStore | undefined;
  private writer: OutboxWriter | undefined;
  private session: MqttSession | undefined;
  private publisher: OutboxPublisher | undefined;
  private updates: SimulatedUpdates | undefined;
  private readonly publishedAt = new Map<number, number>();

  constructor(private readonly deps: SimulatedDeviceDeps) {
    this.identityStore = new IdentityStore(deps.dataDir);
  }

  get uuid(): string {
    return this.deps.uuid;
  }

  get connected(): boolean {
    return this.session?.connected ?? false;
  }

  get updating(): boolean {
    return this.updates?.busy ?? false;
  }

  /** Readings in the outbox not yet acknowledged. */
  get backlog(): number {
    return this.store?.backlog().rows ?? 0;
  }

  /** Enrolls with the one-time token (a fresh key and CSR, as the agent does). */
  async enroll(token: string): Promise<void> {
    mkdirSync(this.deps.dataDir, { recursive: true, mode: 0o700 });
    const client = new EnrollmentClient({
      cloudUrl: this.deps.cloudUrl,
      ca: this.deps.caPem,
      uuid: this.deps.uuid,
      token,
      identity: this.identityStore,
      timeoutMs: 60_000,
    });
    this.identity = await client.enroll();
  }

  /** Loads the identity a previous run stored; false when there is none. */
  loadIdentity(): boolean {
    this.identity = this.identityStore.load();
    return this.identity !== undefined;
  }

  /** Opens the outbox (only devices that produce or hold readings need one: 10k SQLite files cost fds). */
  openOutbox(): void {
    if (this.store) return;
    mkdirSync(this.deps.dataDir, { recursive: true, mode: 0o700 });
    this.store = new SqliteOutboxStore(`${this.deps.dataDir}/agent.db`, { maxRows: 100_000_000 });
    this.writer = new OutboxWriter({
      store: this.store,
      logger: this.deps.logger,
      onAppend: () => this.publisher?.notify(),
    });
  }

  /** Appends `count` counter readings, as a sampler would. */
  produce(count: number, ts = Date.now()): void {
    if (count <= 0 || !this.writer) return;
    this.writer.appendCounter(SIM_READING, count, ts);
    this.deps.telemetry.produced += count;
  }

  /**
   * Builds the session (its TLS context included) and the update handler without connecting: a
   * running gateway has them before its cloud comes back.
   */
  prepare(timeoutMs: number): void {
    const identity = this.identity;
    if (!identity) throw new Error(`${this.deps.uuid} has no identity`);
    if (this.session) return;
    const session = new MqttSession({
      uuid: this.deps.uuid,
      url: identity.mqttUrl,
      keyPem: identity.keyPem,
      certPem: identity.certPem,
      caPem: identity.caPem,
      keepaliveS: 60,
      reconnectMinMs: 500,
      reconnectMaxMs: 10_000,
      connectTimeoutMs: timeoutMs,
      logger: this.deps.logger,
    });
    this.session = session;
    this.updates = new SimulatedUpdates({
      uuid: this.deps.uuid,
      dataDir: this.deps.dataDir,
      cloudUrl: this.deps.cloudUrl,
      caPem: this.deps.caPem,
      identity: () => this.identity,
      sink: session,
      failInstall: this.deps.failInstall,
      ...(this.deps.interrupter && { interrupter: this.deps.interrupter }),
      agentVersion: this.deps.agentVersion,
      counters: this.deps.updates,
    });
    session.on("message", (topic, payload) => this.updates?.handle(topic, payload));
    if (this.store) this.startPublisher(this.store, session);
  }

  /** Starts the session (and the publisher when there is an outbox); resolves at the first CONNACK. */
  connect(timeoutMs: number): Promise<void> {
    try {
      this.prepare(timeoutMs);
    } catch (err) {
      return Promise.reject(err);
    }
    const session = this.session as MqttSession;
    const connected = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
      session.once("connected", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    session.start();
    return connected;
  }

  /** Stops publishing new batches, waits up to `drainMs` for those in flight, then disconnects cleanly. */
  async stop(drainMs: number): Promise<void> {
    await this.publisher?.stop(drainMs);
    await this.session?.stop(Math.min(2000, Math.max(100, drainMs)));
    this.store?.close();
  }

  private startPublisher(store: SqliteOutboxStore, session: MqttSession): void {
    const { telemetry, storedLatency } = this.deps;
    const publisher = new OutboxPublisher({
      store,
      sink: session,
      uuid: this.deps.uuid,
      batchMax: this.deps.batchMax,
      maxInFlight: this.deps.maxInFlight,
      publishIntervalMs: 100,
      logger: this.deps.logger,
    });
    publisher.on("published", (e) => this.publishedAt.set(e.seq, performance.now()));
    publisher.on("acked", (e) => {
      telemetry.acked += e.count;
      telemetry.batchesAcked += 1;
      const sent = this.publishedAt.get(e.seq);
      if (sent !== undefined) {
        storedLatency.record(performance.now() - sent);
        this.publishedAt.delete(e.seq);
      }
    });
    this.publisher = publisher;
    publisher.start();
  }
}

import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FieldgateError } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { AgentConfig } from "./config/config-schema.js";
import { type Enroller, EnrollmentClient } from "./enrollment/enrollment-client.js";
import { EnrollmentLoop } from "./enrollment/enrollment-loop.js";
import { RejectedTokens } from "./enrollment/rejected-tokens.js";
import { FactoryKey } from "./identity/factory-key.js";
import { type Identity, IdentityStore } from "./identity/identity-store.js";
import { OutboxPublisher } from "./outbox/outbox-publisher.js";
import { OutboxWriter } from "./outbox/outbox-writer.js";
import { SqliteOutboxStore } from "./outbox/sqlite-outbox-store.js";
import { type AgentState, StatusFile } from "./status/status-file.js";
import { SystemSampler } from "./telemetry/system-sampler.js";
import { MqttSession } from "./transport/mqtt-session.js";

/** Seams for tests; production passes none. */
export interface AgentOverrides {
  enroller?: Enroller;
  random?: () => number;
}

/** The outbox database file inside a data directory. */
export function outboxPath(dataDir: string): string {
  return join(dataDir, "agent.db");
}

/**
 * The composition root: config → identity → enrollment loop → MQTT session → outbox publisher → sampler.
 * The sampler and the outbox run from the start, so readings taken while enrolling or offline are kept.
 */
export class Agent {
  readonly identityStore: IdentityStore;
  private store: SqliteOutboxStore | undefined;
  private writer: OutboxWriter | undefined;
  private sampler: SystemSampler | undefined;
  private enrollLoop: EnrollmentLoop | undefined;
  private session: MqttSession | undefined;
  private publisher: OutboxPublisher | undefined;
  private status: StatusFile | undefined;
  private running = false;
  private identity: Identity | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly logger: Logger,
    private readonly overrides: AgentOverrides = {},
  ) {
    this.identityStore = new IdentityStore(config.dataDir);
  }

  get state(): AgentState {
    return this.status?.current.state ?? "stopped";
  }

  get currentIdentity(): Identity | undefined {
    return this.identity;
  }

  /** Starts every capability; returns once they run (enrollment and connection continue in the background). */
  async start(): Promise<void> {
    if (this.running) return;
    const { config, logger } = this;
    const enroller = this.overrides.enroller ?? this.buildEnroller();
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    this.running = true;
    this.status = new StatusFile(config.dataDir, config.uuid);
    this.status.flush();

    this.store = new SqliteOutboxStore(outboxPath(config.dataDir), { maxRows: config.outbox.maxRows });
    this.writer = new OutboxWriter({ store: this.store, logger, onAppend: () => this.publisher?.notify() });
    this.writer.on("full", (e) => this.status?.setError("OUTBOX_FULL", `dropped ${e.dropped} oldest readings`));
    this.sampler = new SystemSampler({
      sink: this.writer,
      dataDir: config.dataDir,
      sampleIntervalMs: config.telemetry.sampleIntervalMs,
      syntheticRate: config.telemetry.syntheticRate,
      logger,
    });
    this.sampler.start();
    logger.info(
      { uuid: config.uuid, dataDir: config.dataDir, stream: this.store.stream, backlog: this.store.backlog().rows },
      `fieldgate-agent starting as ${config.uuid}`,
    );

    const existing = this.identityStore.load();
    if (existing && existing.uuid !== config.uuid) {
      logger.warn(
        { stored: existing.uuid, configured: config.uuid },
        `the stored identity is for ${existing.uuid}, not ${config.uuid}; enrolling again`,
      );
    }
    if (existing && existing.uuid === config.uuid) {
      this.connect(existing);
      return;
    }
    this.status.setState("enrolling");
    const loop = new EnrollmentLoop({
      enroller,
      uuid: config.uuid,
      retryMinMs: config.enrollment.retryMinMs,
      retryMaxMs: config.enrollment.retryMaxMs,
      logger,
      ...(this.overrides.random && { random: this.overrides.random }),
      onError: (err) => this.status?.setError(err.code, err.message),
      stored: () => {
        const identity = this.identityStore.load();
        return identity?.uuid === config.uuid ? identity : undefined;
      },
    });
    this.enrollLoop = loop;
    loop.run().then(
      (identity) => {
        if (identity && this.running) this.connect(identity);
      },
      (err: unknown) => logger.error({ err: (err as Error).message }, "the enrollment loop failed"),
    );
  }

  /** Graceful stop: sampler, enrollment, a short drain of in-flight batches, `offline` presence, clean disconnect. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.sampler?.stop();
    this.enrollLoop?.stop();
    await this.publisher?.stop(2000);
    await this.session?.stop();
    this.store?.close();
    this.status?.setState("stopped");
    this.logger.info({ uuid: this.config.uuid }, "fieldgate-agent stopped");
  }

  private connect(identity: Identity): void {
    const { config, logger } = this;
    this.identity = identity;
    const store = this.store as SqliteOutboxStore;
    const url = config.cloud.mqttUrl ?? identity.mqttUrl;
    const session = new MqttSession({
      uuid: config.uuid,
      url,
      keyPem: identity.keyPem,
      certPem: identity.certPem,
      caPem: identity.caPem,
      keepaliveS: config.mqtt.keepaliveS,
      reconnectMinMs: config.mqtt.reconnectMinMs,
      reconnectMaxMs: config.mqtt.reconnectMaxMs,
      logger,
      ...(this.overrides.random && { random: this.overrides.random }),
    });
    session.on("state", (s) => {
      if (s === "connecting" || s === "connected" || s === "offline") this.status?.setState(s);
    });
    session.on("disconnected", (err) =>
      this.status?.setError("CLOUD_UNREACHABLE", err?.message ?? "disconnected from the broker"),
    );
    const publisher = new OutboxPublisher({
      store,
      sink: session,
      uuid: config.uuid,
      batchMax: config.telemetry.batchMax,
      maxInFlight: config.telemetry.maxInFlight,
      publishIntervalMs: config.telemetry.publishIntervalMs,
      logger,
    });
    publisher.on("acked", (e) => this.status?.published(e.at));
    this.session = session;
    this.publisher = publisher;
    publisher.start();
    session.start();
  }

  private buildEnroller(): Enroller {
    const { config } = this;
    let ca: Buffer | undefined;
    if (config.cloud.caFile) {
      try {
        ca = readFileSync(config.cloud.caFile);
      } catch (err) {
        throw new FieldgateError(
          "CONFIG_INVALID",
          `cannot read ${config.cloud.caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          "cloud.caFile",
        );
      }
    }
    const factoryKey = config.enrollment.factoryKeyFile ? FactoryKey.load(config.enrollment.factoryKeyFile) : undefined;
    return new EnrollmentClient({
      cloudUrl: config.cloud.url,
      uuid: config.uuid,
      identity: this.identityStore,
      rejectedTokens: new RejectedTokens(config.dataDir),
      ...(ca && { ca }),
      ...(config.enrollment.token && { token: config.enrollment.token }),
      ...(factoryKey && { factoryKey }),
    });
  }
}

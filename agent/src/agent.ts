import { mkdirSync, readFileSync } from "node:fs";
import { uptime } from "node:os";
import { join } from "node:path";
import { checkLinks, type DeviceEvents, deviceTopic, FieldgateError } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { AgentConfig } from "./config/config-schema.js";
import { DesiredConfigHandler, FileDesiredConfigStore } from "./config/desired-config.js";
import { type Enroller, EnrollmentClient } from "./enrollment/enrollment-client.js";
import { EnrollmentLoop } from "./enrollment/enrollment-loop.js";
import { RejectedTokens } from "./enrollment/rejected-tokens.js";
import { type AgentHealth, createAgentHealth } from "./health/agent-health.js";
import type { HealthPublisher } from "./health/health-monitor.js";
import { MqttTimeSync } from "./health/mqtt-time-sync.js";
import { SqlitePostedStatusStore } from "./health/posted-status-store.js";
import { CertificateRenewer } from "./identity/certificate-renewer.js";
import { FactoryKey } from "./identity/factory-key.js";
import { type Identity, IdentityStore } from "./identity/identity-store.js";
import { bleLinkFactory } from "./links/ble/ble-link.js";
import type { LinkFactories } from "./links/link.js";
import { LinkHealth } from "./links/link-health.js";
import { LinkManager } from "./links/link-manager.js";
import { createSerialLink } from "./links/serial/serial-link.js";
import { assertSocketFree, LocalApi } from "./local-api/local-api.js";
import { logTeeOf } from "./log/logger.js";
import { effectiveLogLevels, LogForwarding } from "./logs/log-forwarding.js";
import { SqliteLogBuffer } from "./logs/sqlite-log-buffer.js";
import { OutboxPublisher } from "./outbox/outbox-publisher.js";
import { OutboxWriter } from "./outbox/outbox-writer.js";
import { SqliteOutboxStore } from "./outbox/sqlite-outbox-store.js";
import { DeviceStateReporter } from "./status/device-state-reporter.js";
import { type AgentState, StatusFile } from "./status/status-file.js";
import { RESERVE_BYTES, StorageGuard } from "./storage/storage-full.js";
import { SystemSampler } from "./telemetry/system-sampler.js";
import { MqttSession } from "./transport/mqtt-session.js";
import { InstalledVersionStore } from "./update/installed-version-store.js";
import { UpdateService } from "./update/update-service.js";

/** The link types this agent builds, by `type` (docs/links.md). */
// noble loads with the first BLE link, never before (it throws on hosts without Bluetooth).
/** The link types this agent runs; a call per agent, so the BLE adapter is never shared between agents. */
function defaultLinkFactories(): LinkFactories {
  return { serial: createSerialLink, ble: bleLinkFactory() };
}

/** Seams for tests; production passes none. */
export interface AgentOverrides {
  /** Link implementations by type; default `defaultLinkFactories()`. */
  linkFactories?: LinkFactories;
  enroller?: Enroller;
  random?: () => number;
  /** The version checked against an image's `minAgentVersion`; default: the agent package's. */
  agentVersion?: string;
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
  private enroller: Enroller | undefined;
  private renewer: CertificateRenewer | undefined;
  private timeSync: MqttTimeSync | undefined;
  private losingIdentity = false;
  private session: MqttSession | undefined;
  private publisher: OutboxPublisher | undefined;
  private status: StatusFile | undefined;
  private running = false;
  private logForwarding: LogForwarding | undefined;
  private logBuffer: SqliteLogBuffer | undefined;
  private postedStatuses: SqlitePostedStatusStore | undefined;
  private desiredConfig: DesiredConfigHandler | undefined;
  private identity: Identity | undefined;
  private health: AgentHealth | undefined;
  private storage: StorageGuard | undefined;
  private localApi: LocalApi | undefined;
  private updates: UpdateService | undefined;
  private links: LinkManager | undefined;
  private linkHealth: LinkHealth | undefined;
  private onRestart: (() => void) | undefined;
  /** Resolves when a capability asks for a restart (the agent updated itself); `run` then stops and exits. */
  readonly restartRequested = new Promise<void>((resolve) => {
    this.onRestart = resolve;
  });

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
    this.enroller = enroller;
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    // A live agent on this data directory answers on the socket: refuse before touching its files.
    if (config.localApi.enabled) await assertSocketFree(config.localApi.socket);
    this.running = true;
    // Kept allocated so a full disk can be un-jammed; see docs/health.md ("storage").
    this.storage = new StorageGuard({
      reservePath: join(config.dataDir, "storage.reserve"),
      reserveBytes: RESERVE_BYTES,
      logger,
    });
    this.storage.ensureReserve();
    this.status = new StatusFile(config.dataDir, config.uuid);
    this.status.flush();

    this.store = new SqliteOutboxStore(outboxPath(config.dataDir), {
      maxRows: config.outbox.maxRows,
      storage: this.storage,
    });
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
    // Device links feed the outbox like the sampler; which links run is decided by the desired config below.
    const links = new LinkManager({
      factories: this.overrides.linkFactories ?? defaultLinkFactories(),
      sink: this.writer,
      logger,
      linkPaths: config.linkPaths,
    });
    this.links = links;
    await this.startHealth();
    this.linkHealth = new LinkHealth({ links, target: (this.health as AgentHealth).monitor });
    this.linkHealth.start();
    // Log forwarding buffers from the start (lines logged while enrolling are sent once connected);
    // the last applied desired config is re-applied before the cloud is reached.
    // Lines wait on disk (own tables in agent.db), so a crash or a power cut loses none that were committed.
    this.logBuffer = new SqliteLogBuffer(outboxPath(config.dataDir), {
      maxWaiting: config.logs.bufferMax,
      storage: this.storage,
    });
    const logForwarding = new LogForwarding({
      uuid: config.uuid,
      config,
      logger,
      tee: logTeeOf(logger),
      store: this.logBuffer,
    });
    this.logForwarding = logForwarding;
    logForwarding.start();
    this.desiredConfig = new DesiredConfigHandler({
      uuid: config.uuid,
      store: new FileDesiredConfigStore(config.dataDir),
      logger,
      apply: (desired) => {
        // Checked before anything changes: a refused config leaves links and levels as they were.
        // The cloud's `links`, when given, replace the file's whole (docs/links.md).
        const linkConfigs =
          desired.links === undefined
            ? [...config.links]
            : checkLinks(desired.links, "links", "VALIDATION_FAILED", { devicePaths: true });
        const levels = effectiveLogLevels(config, desired);
        logForwarding.apply(levels);
        links.apply(linkConfigs).catch((err: Error) => logger.error({ err: err.message }, "applying links failed"));
        return {
          logLevel: levels.local,
          forwardLevel: levels.forward,
          maxLinesPerSecond: levels.maxLinesPerSecond,
          links: linkConfigs.filter((l) => l.enabled !== false).map((l) => l.id),
          linksFrom: desired.links === undefined ? "file" : "cloud",
        };
      },
    });
    this.desiredConfig.start();
    // Built even with updates disabled: a job then ends FAILED UPDATES_DISABLED instead of hanging.
    this.updates = new UpdateService({
      config,
      identityStore: this.identityStore,
      health: (this.health as AgentHealth).monitor,
      dbPath: outboxPath(config.dataDir),
      storage: this.storage,
      agentVersion: this.overrides.agentVersion ?? packageVersion(),
      logger,
      requestRestart: () => this.onRestart?.(),
    });
    this.updates.start();
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
    this.enroll(enroller);
  }

  /** Enrolls (again), retrying until a window opens; then connects. */
  private enroll(enroller: Enroller): void {
    const { config, logger } = this;
    this.status?.setState("enrolling");
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
    this.linkHealth?.stop();
    await this.links?.stop();
    this.health?.clockSkew.stop();
    this.timeSync?.detach();
    this.health?.monitor.stop();
    await this.localApi?.stop();
    this.enrollLoop?.stop();
    this.renewer?.stop();
    await this.updates?.stop();
    await this.publisher?.stop(2000);
    await this.logForwarding?.stop(1000);
    await this.session?.stop();
    this.store?.close();
    this.logBuffer?.close();
    this.postedStatuses?.close();
    this.status?.setState("stopped");
    this.logger.info({ uuid: this.config.uuid }, "fieldgate-agent stopped");
  }

  /**
   * Health checks, the clock measurement and the local API run from the start, like the sampler:
   * readings posted while enrolling or offline wait in the outbox; health is published once connected.
   */
  private async startHealth(): Promise<void> {
    const { config, logger } = this;
    const store = this.store as SqliteOutboxStore;
    const topic = deviceTopic(config.uuid, { kind: "health" });
    const current = () => this.session;
    const publisher: HealthPublisher = {
      get connected() {
        return current()?.connected ?? false;
      },
      publish: (report) =>
        current()?.publish(topic, JSON.stringify(report), { qos: 1 }) ??
        Promise.reject(new FieldgateError("CLOUD_UNREACHABLE", "not connected to the broker")),
    };
    // Statuses posted through the local API outlive a restart (own table in agent.db).
    this.postedStatuses = new SqlitePostedStatusStore(outboxPath(config.dataDir), this.storage);
    const health = createAgentHealth({
      config,
      identityStore: this.identityStore,
      backlog: () => store.backlog(),
      publisher,
      logger,
      postedStatuses: this.postedStatuses,
      ...(this.storage && { storage: this.storage.check() }),
    });
    this.health = health;
    health.monitor.on("change", (snapshot) => this.status?.setHealth(snapshot));
    health.monitor.start();
    health.clockSkew.start();
    this.timeSync = new MqttTimeSync({
      uuid: config.uuid,
      clockSkew: health.clockSkew,
      intervalMs: config.health.clockSkewIntervalMs,
      logger,
    });
    if (!config.localApi.enabled) return;
    const localApi = new LocalApi({
      socket: config.localApi.socket,
      ...(config.localApi.port !== undefined && { port: config.localApi.port }),
      sink: this.writer as OutboxWriter,
      health: health.monitor,
      ...(this.links && { links: this.links }),
      logger,
    });
    this.localApi = localApi;
    try {
      await localApi.start();
    } catch (err) {
      await this.stop();
      throw err;
    }
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
      maxSendAttempts: config.outbox.maxSendAttempts,
      logger,
    });
    publisher.on("acked", (e) => this.status?.published(e.at));
    session.on("message", (topic, payload) => publisher.handleMessage(topic, payload));
    publisher.on("setAside", ({ code, seq, reason }) => {
      // The cloud's device history shows it too (best effort: the batch itself is kept either way).
      const message = `telemetry batch ${seq} set aside: ${reason.code}${reason.field ? ` at ${reason.field}` : ""}: ${reason.message}`;
      const events: DeviceEvents = {
        v: 1,
        events: [{ ts: Date.now(), code, severity: "warning", message: message.slice(0, 2048) }],
      };
      session
        .publish(deviceTopic(config.uuid, { kind: "events" }), JSON.stringify(events), { qos: 1 })
        .catch((err: Error) => logger.debug({ err: err.message }, "reporting a set-aside batch failed"));
    });
    session.on("connected", () => this.health?.monitor.connected());
    const stateReporter = new DeviceStateReporter(
      config.uuid,
      {
        agentVersion: this.overrides.agentVersion ?? packageVersion(),
        firmwareVersion: () => new InstalledVersionStore(config.dataDir).get(),
        uptimeS: () => uptime(),
      },
      logger,
    );
    session.on("connected", () => void stateReporter.send(session));
    this.timeSync?.attach(session);
    // CONNACK "not authorized" means this certificate is no longer the device's current one.
    session.on("refused", () => void this.loseIdentity(new FieldgateError("CERT_REVOKED")));
    this.logForwarding?.attach(session);
    this.desiredConfig?.attach(session);
    session.on("message", (topic, payload) => void this.desiredConfig?.handle(topic, payload));
    this.updates?.attach(session);
    session.on("message", (topic, payload) => {
      this.updates
        ?.handle(topic, payload)
        .catch((err: Error) => logger.warn({ err: err.message }, "jobs/notify failed"));
    });
    this.session = session;
    this.publisher = publisher;
    publisher.start();
    session.start();
    this.renewerFor().start(identity);
  }

  private renewerFor(): CertificateRenewer {
    if (this.renewer) return this.renewer;
    const renewer = new CertificateRenewer({
      cloudUrl: this.config.cloud.url,
      identityStore: this.identityStore,
      logger: this.logger,
      // Renewal retries at the enrollment pace: at most one request per retryMax per device.
      retryMinMs: this.config.enrollment.retryMinMs,
      retryMaxMs: this.config.enrollment.retryMaxMs,
      ...(this.overrides.random && { random: this.overrides.random }),
    });
    renewer.on("renewed", (identity) => {
      this.identity = identity;
      void this.session?.switchIdentity({ keyPem: identity.keyPem, certPem: identity.certPem, caPem: identity.caPem });
    });
    renewer.on("lost", (err) => void this.loseIdentity(err));
    this.renewer = renewer;
    return renewer;
  }

  /**
   * The certificate expired, was revoked, or the device was deleted or replaced: say so once,
   * clearly, drop the dead identity (the factory key and the outbox stay) and enroll again, so a
   * window an operator opens brings the device back without a visit.
   */
  private async loseIdentity(error: FieldgateError): Promise<void> {
    if (this.losingIdentity || !this.running) return;
    this.losingIdentity = true;
    const { config, logger } = this;
    const why =
      error.code === "CERT_EXPIRED"
        ? "the certificate expired while the device could not renew it"
        : "the cloud refuses this certificate (revoked, or the device was deleted or replaced)";
    logger.error(
      { code: error.code, uuid: config.uuid },
      `${why}; an operator must run \`fieldgate-cloud devices reset-token ${config.uuid}\` (or add the device again), then the agent re-enrolls by itself`,
    );
    this.status?.setError(error.code, why);
    this.renewer?.stop();
    await this.publisher?.stop(0);
    await this.session?.stop(500);
    this.publisher = undefined;
    this.session = undefined;
    this.identity = undefined;
    this.identityStore.reset();
    this.losingIdentity = false;
    if (this.running && this.enroller) this.enroll(this.enroller);
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

/** The agent package's version (`minAgentVersion` is checked against it). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: string };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

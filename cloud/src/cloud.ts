import fs from "node:fs";
import { deviceTopic, FieldgateError, SchemaValidator } from "@fieldgate/shared";
import type { Logger } from "pino";
import { AccessPolicy } from "./access/access-policy.js";
import { ApiServer } from "./api/api-server.js";
import { MqttBroker } from "./broker/mqtt-broker.js";
import { BulkOperations } from "./bulk/bulk-operations.js";
import type { CloudConfig } from "./config/cloud-config.js";
import { DataDirLock } from "./config/data-dir-lock.js";
import { dataFiles, type RuntimeInfo } from "./config/data-files.js";
import { ApiCredentials } from "./credentials/api-credentials.js";
import { HostCredentials } from "./credentials/host-credentials.js";
import { DeviceConfigs } from "./device-config/device-configs.js";
import { DeviceTypes } from "./device-types/device-types.js";
import { EnrollmentService } from "./enrollment/enrollment-service.js";
import { DeviceEventLog } from "./events/device-events.js";
import { FirmwareKeys } from "./firmware/firmware-keys.js";
import type { FirmwareImageUser } from "./firmware/firmware-record.js";
import { type CorruptImageHandler, FirmwareStore } from "./firmware/firmware-store.js";
import { type GroupDependent, GroupTree } from "./groups/group-tree.js";
import { DeviceIngest } from "./ingest/device-ingest.js";
import { DeviceJobs } from "./jobs/device-jobs.js";
import { KeepaliveMonitor } from "./keepalive/keepalive-monitor.js";
import { type LiveDeviceRef, LiveFeed } from "./live/live-feed.js";
import { LiveStreams } from "./live/live-streams.js";
import { DeviceLogs } from "./logs/device-logs.js";
import { LogRetention } from "./logs/log-retention.js";
import { CertificateAuthority } from "./pki/certificate-authority.js";
import { writePublicFile, writeSecretFile } from "./pki/secret-files.js";
import { DeviceRegistry } from "./registry/device-registry.js";
import { GroupDeviceMembers } from "./registry/group-members.js";
import { RolloutScheduler } from "./rollouts/rollout-scheduler.js";
import { Rollouts } from "./rollouts/rollouts.js";
import { type CloudDatabase, openCloudDatabase } from "./storage/cloud-database.js";
import { WalCheckpointer } from "./storage/wal-checkpointer.js";
import { TelemetryHistory } from "./telemetry/telemetry-history.js";
import { TelemetryReader } from "./telemetry/telemetry-reader.js";
import { TelemetryRetention } from "./telemetry/telemetry-retention.js";
import { TelemetryWriter } from "./telemetry/telemetry-writer.js";
import { LoginThrottle, MAX_TRACKED_LOGINS } from "./users/login-throttle.js";
import { UserDirectory } from "./users/user-directory.js";

/** How long a device has to finish an update job: the agent's default `updates.jobTimeout`. */

/** The cloud's composition root: wires storage, CA, registry, enrollment, broker and API. */
export class Cloud {
  private database: CloudDatabase | undefined;
  private broker: MqttBroker | undefined;
  private api: ApiServer | undefined;
  private keepalive: KeepaliveMonitor | undefined;
  private rolloutScheduler: RolloutScheduler | undefined;
  private logRetention: LogRetention | undefined;
  private telemetryRetention: TelemetryRetention | undefined;
  private checkpointer: WalCheckpointer | undefined;
  private live: LiveFeed | undefined;
  private lock: DataDirLock | undefined;

  constructor(
    private readonly config: CloudConfig,
    private readonly logger: Logger,
    private readonly version: string,
    /** Where to print the one-time admin secret: the operator's terminal, never the log. */
    private readonly announce: (text: string) => void,
  ) {}

  async start(): Promise<RuntimeInfo> {
    ownerOnlyDir(this.config.dataDir);
    // Before anything in the data directory is written: a second cloud must not touch the first's files.
    this.lock = DataDirLock.acquire(this.config.dataDir);
    try {
      return await this.startLocked();
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }
  }

  private async startLocked(): Promise<RuntimeInfo> {
    const files = dataFiles(this.config.dataDir);
    const firmwareKeys = new FirmwareKeys(this.config.firmwareSigningKey);
    // A broken key file is an error now, naming the file, not at the first upload.
    firmwareKeys.trusted();
    const database = await openCloudDatabase(this.config.database ?? { kind: "sqlite", file: files.database });
    this.database = database;
    // The embedded file's WAL is checkpointed off the event loop; PostgreSQL does its own.
    if (database.embedded !== undefined) {
      this.checkpointer = new WalCheckpointer(database.embedded, {
        file: files.database,
        logger: this.logger.child({ component: "storage" }),
      });
      this.checkpointer.start();
    }
    // Before the broker: on PostgreSQL this week's partition and the next ones must exist.
    this.telemetryRetention = new TelemetryRetention(
      database,
      { retentionMs: this.config.telemetryRetentionMs },
      this.logger.child({ component: "telemetry-retention" }),
    );
    await this.telemetryRetention.start();
    const events = new DeviceEventLog(database);
    // Device types are removed with a deleted subtree; they exist only after the registry, hence the late binding.
    const groupDependents: GroupDependent[] = [];
    const groups = new GroupTree(database, new GroupDeviceMembers(database), Date.now, groupDependents);
    // What changed, for `GET /api/v1/live`; resolved at delivery, when the services below exist.
    let rollouts: Rollouts | undefined;
    const liveLog = this.logger.child({ component: "live" });
    const live: LiveFeed = new LiveFeed({
      resolver: {
        device: (deviceId): Promise<LiveDeviceRef | undefined> => registry.liveRef(deviceId),
        rollout: (rolloutId) => rollouts?.liveRef(rolloutId),
      },
      onError: (err) => liveLog.warn({ err: (err as Error).message }, "delivering live updates failed"),
    });
    this.live = live;
    const registry: DeviceRegistry = new DeviceRegistry(database, groups, this.config.enrollWindowMs, Date.now, live);
    this.keepalive = new KeepaliveMonitor(
      database,
      registry,
      events,
      Date.now,
      this.logger.child({ component: "keepalive" }),
      {
        checkIntervalMs: this.config.keepaliveCheckMs,
        minuteMs: this.config.keepaliveUnitMs,
      },
    );
    // A missed keep-alive is in the device's events and its view.
    this.keepalive.onMissed((missed) => live.device(missed.deviceId));
    const orgId = await registry.ensureDefaultOrganization();
    const ca = new CertificateAuthority({
      dir: files.pkiDir,
      hostnames: this.config.hostnames,
      deviceCertLifetimeDays: this.config.certLifetimeDays,
    });
    const pki = await ca.start();
    if (pki.created) this.logger.info({ caCert: files.caCert }, "created the device CA");
    if (pki.serverReissued) this.logger.info({ names: this.config.hostnames }, "issued the server certificate");

    const credentials = new ApiCredentials(database);
    const firstAdmin =
      (await credentials.count()) === 0
        ? await credentials.create(orgId, (await groups.root(orgId)).id, "admin", "admin")
        : undefined;
    // The host credential (organizations:* only) is made once, like the first admin's, for the CLI on this host.
    const hostCredentials = new HostCredentials(database);
    if ((await hostCredentials.count()) === 0) {
      const host = await hostCredentials.create();
      // Saved at once (a later start-up failure must not lose it) and not announced: it stays on
      // this host, for `fieldgate-cloud organizations` (docs/security.md).
      writeSecretFile(
        files.hostCredential,
        `${JSON.stringify({ credentialId: host.id, secret: host.secret, caFile: files.caCert }, null, 2)}\n`,
      );
    }

    const validator = new SchemaValidator();
    ownerOnlyDir(this.config.firmwareDir);
    const types = new DeviceTypes(database, groups, registry);
    groupDependents.push(types);
    const policy = new AccessPolicy();
    // A stored image found to differ from its manifest: logged, an event on the device, and its job
    // failed now. Jobs and ingest exist only after the store, hence the late binding.
    let reportCorrupt: CorruptImageHandler | undefined;
    // Jobs and rollouts refer to images (asked before a delete); they too exist only after the store.
    const imageUsers: FirmwareImageUser[] = [];
    const firmware = new FirmwareStore(
      database,
      this.config.firmwareDir,
      this.config.firmwareMaxSize,
      firmwareKeys,
      types,
      Date.now,
      (record, device, problem) => reportCorrupt?.(record, device, problem),
      imageUsers,
    );
    // A job is stored first, then sent (QoS 1) to the device now and again on every connect until it ends.
    // Job ends move their rollout on; the rollouts service exists only after the jobs, hence the late binding.
    const jobs = new DeviceJobs({
      database,
      devices: registry,
      types,
      firmware,
      live,
      timeoutMs: this.config.jobTimeoutMs,
      onFinished: (jobId, rolloutId) => rollouts?.jobFinished(jobId, rolloutId),
      notify: (uuid, message) => {
        this.broker
          ?.publishToDevice(uuid, deviceTopic(uuid, { kind: "jobs/notify" }), JSON.stringify(message))
          .catch((err: Error) => this.logger.warn({ uuid, err: err.message }, "publishing a job notify failed"));
      },
    });
    rollouts = new Rollouts({
      database,
      registry,
      types,
      policy,
      firmware,
      jobs,
      validator,
      logger: this.logger.child({ component: "rollouts" }),
      defaultJobTimeoutMs: this.config.jobTimeoutMs,
      live,
    });
    imageUsers.push(jobs, rollouts);
    this.rolloutScheduler = new RolloutScheduler(
      rollouts,
      this.logger.child({ component: "rollouts" }),
      this.config.rolloutTickMs,
    );
    const deviceLogs = new DeviceLogs(database);
    const telemetryWriter = new TelemetryWriter(database);
    const ingest = new DeviceIngest(
      database,
      registry,
      validator,
      telemetryWriter,
      events,
      deviceLogs,
      this.logger,
      Date.now,
      jobs,
      5,
    );
    const firmwareLog = this.logger.child({ component: "firmware" });
    reportCorrupt = (record, device, problem) => {
      const message = `${record.name}@${record.version} is not served: ${problem}`;
      const image = `${record.name}@${record.version}`;
      jobs.failForImage(device.id, record.id, "FIRMWARE_IMAGE_CORRUPT", message).then(
        (failed) =>
          firmwareLog.error({ uuid: device.uuid, image, problem, failed }, "stored image differs from its manifest"),
        (err: Error) =>
          firmwareLog.error(
            { uuid: device.uuid, image, problem, err: err.message },
            "stored image differs from its manifest; failing its jobs failed",
          ),
      );
      events
        .record(device.id, "FIRMWARE_IMAGE_CORRUPT", "error", message)
        .catch((err: Error) => firmwareLog.warn({ uuid: device.uuid, err: err.message }, "recording the event failed"));
    };
    // A PUT stores the desired config, then the broker sends it (retained) to the device.
    const deviceConfigs = new DeviceConfigs(
      database,
      (uuid, message) => {
        this.broker
          ?.publishDesiredConfig(uuid, message)
          .catch((err: Error) => this.logger.warn({ uuid, err: err.message }, "publishing the desired config failed"));
      },
      validator,
    );
    this.broker = new MqttBroker(
      {
        host: this.config.host,
        port: this.config.mqttPort,
        tls: { key: ca.serverKeyPem(), cert: ca.serverCertPem(), ca: ca.caPem() },
        desiredConfig: (deviceId) => deviceConfigs.message(deviceId),
        deviceReady: (deviceId) => {
          jobs
            .resend(deviceId)
            .catch((err: Error) => this.logger.warn({ deviceId, err: err.message }, "resending jobs failed"));
        },
        limits: {
          handshakeTimeoutMs: this.config.limits.tlsHandshakeTimeoutMs,
          maxPending: this.config.limits.maxPendingConnections,
          connectTimeoutMs: this.config.limits.mqttConnectTimeoutMs,
          maxPacketSize: this.config.limits.mqttMaxPacketSize,
        },
      },
      registry,
      ingest,
      events,
      this.logger.child({ component: "broker" }),
    );
    const mqttPort = await this.broker.start().catch((err: Error) => {
      throw listenError(err, "mqtt-port", this.config.mqttPort);
    });
    this.api = new ApiServer(
      {
        host: this.config.host,
        port: this.config.httpPort,
        tls: { key: ca.serverKeyPem(), cert: ca.serverCertPem(), ca: ca.caPem() },
        limits: {
          handshakeTimeoutMs: this.config.limits.tlsHandshakeTimeoutMs,
          maxPending: this.config.limits.maxPendingConnections,
          headersTimeoutMs: this.config.limits.httpHeadersTimeoutMs,
          requestTimeoutMs: this.config.limits.httpRequestTimeoutMs,
          keepAliveTimeoutMs: this.config.limits.httpKeepAliveTimeoutMs,
          authThrottle: {
            maxFailures: this.config.limits.authFailureLimit,
            windowMs: this.config.limits.authFailureWindowMs,
          },
        },
      },
      {
        registry,
        enrollment: new EnrollmentService(database, registry, ca, Date.now, () => firmwareKeys.publicKeyPem()),
        credentials,
        hostCredentials,
        users: new UserDirectory(
          database,
          Date.now,
          new LoginThrottle(Date.now, MAX_TRACKED_LOGINS, this.config.limits.loginDelayMs),
        ),
        groups,
        types,
        policy,
        deviceConfigs,
        deviceLogs,
        telemetry: new TelemetryReader(database),
        firmware,
        jobs,
        rollouts,
        live: new LiveStreams(live, policy),
        events,
        bulk: new BulkOperations({
          database,
          registry,
          // Sequence marks stay with the device they came from: they deduplicate its own resends.
          histories: [
            new TelemetryHistory(database),
            events,
            deviceLogs,
            { deleteHistory: (deviceId, executor) => ingest.forgetRejected(deviceId, executor) },
          ],
          groups,
          types,
          policy,
          validator,
          windowMs: this.config.enrollWindowMs,
        }),
        version: this.version,
        mqttPort: () => mqttPort,
        mqttUrl: this.config.mqttUrl,
      },
      this.logger.child({ component: "api" }),
    );
    const httpPort = await this.api.start().catch((err: Error) => {
      throw listenError(err, "http-port", this.config.httpPort);
    });
    this.keepalive.start();
    this.rolloutScheduler.start();
    this.logRetention = new LogRetention(
      database,
      { retentionMs: this.config.logRetentionMs },
      this.logger.child({ component: "log-retention" }),
    );
    this.logRetention.start();
    const runtime: RuntimeInfo = {
      pid: process.pid,
      url: `https://localhost:${httpPort}`,
      httpPort,
      mqttPort,
      startedAt: new Date().toISOString(),
    };
    writePublicFile(files.runtime, `${JSON.stringify(runtime, null, 2)}\n`);
    if (firstAdmin) {
      writeSecretFile(
        files.adminCredential,
        `${JSON.stringify({ credentialId: firstAdmin.id, secret: firstAdmin.secret, caFile: files.caCert }, null, 2)}\n`,
      );
      this.announce(
        [
          "Admin API credential (shown once; also saved, mode 0600, to the file below for the CLI on this host):",
          `  id:     ${firstAdmin.id}`,
          `  secret: ${firstAdmin.secret}`,
          `  file:   ${files.adminCredential}`,
          "",
        ].join("\n"),
      );
    }
    this.logger.info({ httpPort, mqttPort, dataDir: this.config.dataDir, url: runtime.url }, "cloud ready");
    return runtime;
  }

  async stop(): Promise<void> {
    await this.api?.stop();
    await this.broker?.stop();
    await this.keepalive?.stop();
    this.rolloutScheduler?.stop();
    await this.logRetention?.stop();
    await this.telemetryRetention?.stop();
    this.live?.close();
    await this.checkpointer?.stop();
    await this.database?.close();
    if (this.lock) {
      fs.rmSync(dataFiles(this.config.dataDir).runtime, { force: true });
      this.lock.release();
      this.lock = undefined;
    }
    this.logger.info("cloud stopped");
  }
}

/** Turns a listen failure into an error that names the flag to change. */
function listenError(err: Error, flag: string, port: number): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE")
    return new FieldgateError("CONFIG_INVALID", `port ${port} is already in use; pick another with --${flag}`, flag);
  if (code === "EACCES")
    return new FieldgateError(
      "CONFIG_INVALID",
      `no permission to listen on port ${port}; use a port above 1023 or grant the capability`,
      flag,
    );
  // ENOTFOUND: a --host that is no address or name at all.
  if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND")
    return new FieldgateError("CONFIG_INVALID", `the listen address is not on this host (--host)`, "host");
  return err;
}

/** Makes the directory, or closes one an older version made 0755: what it holds is then private too. */
function ownerOnlyDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if ((fs.statSync(dir).mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
}

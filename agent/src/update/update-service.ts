import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  deviceTopic,
  FieldgateError,
  JobNotify,
  type JobStatus,
  parseDeviceTopic,
  SchemaValidator,
  type SignedManifest,
} from "@fieldgate/shared";
import type { Logger } from "pino";
import type { AgentConfig } from "../config/config-schema.js";
import { writeFileAtomic } from "../identity/atomic-file.js";
import type { IdentityStore } from "../identity/identity-store.js";
import type { StorageWatch } from "../storage/storage-full.js";
import type { MessageSink } from "../transport/mqtt-session.js";
import { AgentInstaller } from "./agent-installer.js";
import { FirmwareDownloader } from "./firmware-downloader.js";
import { FirmwareKeyStore } from "./firmware-key-store.js";
import { InstalledVersionStore } from "./installed-version-store.js";
import {
  AbSlotsInstaller,
  type Installer,
  MissingInstaller,
  RebootingScriptInstaller,
  ScriptInstaller,
} from "./installers.js";
import { ReportAcks } from "./report-acks.js";
import { type UpdateJobRow, UpdateJobStore } from "./update-job-store.js";
import { type HealthSource, UpdateMachine } from "./update-machine.js";
import { isTerminal } from "./update-states.js";
import { trustedFirmwareKeys, verifyBeforeInstall } from "./verify-before-install.js";

/** What the update service needs from the agent. */
export interface UpdateServiceDeps {
  config: AgentConfig;
  identityStore: IdentityStore;
  health: HealthSource;
  /** The agent database file, where `update_jobs` lives. */
  dbPath: string;
  /** Told when a job state cannot be stored for lack of space. */
  storage?: StorageWatch;
  agentVersion: string;
  logger: Logger;
  /** Stops the agent and exits so the service manager starts it again (the `agent` installer). */
  requestRestart?: () => void;
}

const validator = new SchemaValidator();

/**
 * Wires the update machine to MQTT: `jobs/notify` in (validated, manifest fetched over mTLS, job
 * submitted), `jobs/{id}/status` out at QoS 1. Reports sent while offline are kept, the latest
 * per job, and sent on the next connect. The machine runs even with `updates.enabled` false, so a
 * job gets an answer (FAILED `UPDATES_DISABLED`) rather than silence.
 */
export class UpdateService {
  readonly machine: UpdateMachine;
  private readonly store: UpdateJobStore;
  private readonly unsent = new Map<string, JobStatus>();
  private sink: MessageSink | undefined;
  private compat: string | undefined;
  private readonly compatFile: string;
  private readonly firmwareKeys: FirmwareKeyStore;
  /** Which reports the cloud acknowledged, for the confirmation gate. */
  private readonly acks = new ReportAcks();

  constructor(private readonly deps: UpdateServiceDeps) {
    const { config, identityStore, logger } = deps;
    this.firmwareKeys = new FirmwareKeyStore(config.dataDir);
    this.store = new UpdateJobStore(deps.dbPath, deps.storage);
    // The device learns its type's compat id from the cloud's notify; kept so a resumed job has it.
    this.compatFile = join(config.dataDir, "firmware-compat");
    this.compat = readOptional(this.compatFile);
    const self = this;
    this.machine = new UpdateMachine({
      store: this.store,
      installer: installerFrom(config, () => deps.requestRestart?.()),
      downloader: { download: (signed: SignedManifest) => this.downloader().download(signed) },
      verify: verifyBeforeInstall,
      health: deps.health,
      cloud: this.acks,
      installedVersions: new InstalledVersionStore(config.dataDir),
      reporter: (jobId, status) => this.report(jobId, status),
      clock: { now: Date.now },
      logger,
      updatesEnabled: config.updates.enabled,
      publicKeys: () =>
        trustedFirmwareKeys(
          identityStore.loadInfo(),
          config.updates,
          (f) => readFileSync(f, "utf8"),
          this.firmwareKeys.load(),
        ),
      get deviceFirmwareCompat() {
        return self.compat ?? "";
      },
      agentVersion: deps.agentVersion,
      certificateNotAfter: () => {
        const notAfter = identityStore.loadInfo()?.notAfter;
        return notAfter === undefined ? undefined : Date.parse(notAfter);
      },
      diskPath: config.dataDir,
      options: {
        confirmDeadlineMs: config.updates.confirmDeadlineMs,
        jobTimeoutMs: config.updates.jobTimeoutMs,
        ...(config.updates.confirmCommand && { confirmCommand: config.updates.confirmCommand }),
        confirmGate: config.updates.confirmGate,
        confirmRequiresCloud: config.updates.confirmRequiresCloud,
        startJitterMs: config.updates.startJitterMs,
      },
    });
  }

  /** Recovers jobs a crash interrupted (resume or roll back). Runs in the background. */
  start(): void {
    this.machine.start().catch((err: Error) => this.deps.logger.error({ err: err.message }, "update recovery failed"));
  }

  /** Waits up to `timeoutMs` for the running step; the persisted state resumes on the next start. */
  async stop(timeoutMs = 2000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      this.machine.stop().then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    // A step still running uses the database; the process exit closes it then.
    if (stopped) this.store.close();
  }

  /** Reports go out through this session; what waited while offline is sent on each connect. */
  attach(sink: MessageSink): void {
    this.sink = sink;
    sink.on("connected", () => this.flush());
  }

  /** Acts on `jobs/notify`; other topics are ignored. */
  async handle(topic: string, payload: Buffer): Promise<void> {
    if (parseDeviceTopic(topic)?.topic.kind !== "jobs/notify") return;
    const { logger } = this.deps;
    let notify: JobNotify;
    try {
      notify = validator.parse(JobNotify, JSON.parse(payload.toString("utf8")), "jobs/notify");
    } catch (err) {
      logger.warn({ topic, err: (err as Error).message }, "ignored an invalid jobs/notify");
      return;
    }
    if (notify.cancel) {
      const honoured = this.machine.cancel(notify.jobId);
      logger.info(
        { jobId: notify.jobId, honoured },
        honoured ? "update job cancelled by the cloud" : "cancel ignored: the job is unknown, ended, or past VERIFYING",
      );
      return;
    }
    // The cloud re-sends unfinished jobs on every connect: a job seen before is not fetched again.
    // One that ended here but not in the cloud lost its last report (a restart while offline, or
    // the restart into a new agent): it is sent again.
    const seen = this.store.get(notify.jobId);
    if (seen) {
      if (isTerminal(seen.state) && seen.finalized === 1) await this.report(seen.jobId, endReport(seen));
      return;
    }
    if (notify.firmwareCompat !== this.compat) {
      this.compat = notify.firmwareCompat;
      writeFileAtomic(this.compatFile, notify.firmwareCompat, 0o600);
    }
    const { name, version } = notify.firmware;
    logger.info({ jobId: notify.jobId, name, version }, `update job ${notify.jobId} received: ${name}@${version}`);
    let signed: SignedManifest;
    try {
      signed = await this.downloader().manifest(name, version);
    } catch (err) {
      const code = err instanceof FieldgateError ? err.code : "INTERNAL";
      logger.warn({ jobId: notify.jobId, code, err: (err as Error).message }, "fetching the job's manifest failed");
      // Unreachable: the cloud sends the job again on the next connect. Anything else is final.
      if (code !== "CLOUD_UNREACHABLE") {
        await this.report(notify.jobId, {
          v: 1,
          ts: Date.now(),
          status: "FAILED",
          step: "DOWNLOADING",
          reason: code,
          message: (err as Error).message.slice(0, 2048),
        });
      }
      return;
    }
    await this.refreshFirmwareKeys();
    this.machine
      .submit({ jobId: notify.jobId, signed, rollback: notify.rollback === true })
      .catch((err: Error) =>
        logger.error({ jobId: notify.jobId, err: err.message }, "the update job failed unexpectedly"),
      );
  }

  /**
   * Fetches the keys to trust over mTLS, just before a job is verified: a key made or rotated since
   * enrollment reaches the device this way. On failure the stored keys stay; verification then
   * names the missing key.
   */
  private async refreshFirmwareKeys(): Promise<void> {
    try {
      if (this.firmwareKeys.replace(await this.downloader().trustedKeys())) {
        const ids = this.firmwareKeys.load()?.keys.map((k) => k.keyId);
        this.deps.logger.info({ keyIds: ids }, `firmware keys trusted now: ${ids?.join(", ")}`);
      }
    } catch (err) {
      this.deps.logger.warn(
        { err: (err as Error).message },
        "fetching the trusted firmware keys failed; kept the stored ones",
      );
    }
  }

  /** Publishes at QoS 1 when connected; otherwise keeps it (only the latest per job) for the next connect. */
  private async report(jobId: string, status: JobStatus): Promise<void> {
    this.unsent.set(jobId, status);
    if (this.sink?.connected) await this.send(jobId, status);
  }

  private flush(): void {
    for (const [jobId, status] of this.unsent) void this.send(jobId, status);
  }

  private async send(jobId: string, status: JobStatus): Promise<void> {
    const topic = deviceTopic(this.deps.config.uuid, { kind: "jobs/status", jobId });
    const sink = this.sink;
    try {
      if (!sink) return;
      await this.acks.track(() => sink.publish(topic, JSON.stringify(status), { qos: 1 }));
      if (this.unsent.get(jobId) === status) this.unsent.delete(jobId);
    } catch (err) {
      this.deps.logger.debug({ jobId, err: (err as Error).message }, "job status kept for the next connect");
    }
  }

  /** Built per use from the identity on disk, so a renewed certificate is picked up. */
  private downloader(): FirmwareDownloader {
    const identity = this.deps.identityStore.load();
    if (!identity) throw new FieldgateError("CERT_UNKNOWN", "the device is not enrolled");
    const ca = this.deps.config.cloud.caFile ? readFileSync(this.deps.config.cloud.caFile, "utf8") : identity.caPem;
    const { updates } = this.deps.config;
    return new FirmwareDownloader(
      this.deps.config.dataDir,
      { apiUrl: this.deps.config.cloud.url, trust: { ca, key: identity.keyPem, cert: identity.certPem } },
      {
        ...(updates.downloadRateLimit !== undefined && { rateLimit: updates.downloadRateLimit }),
        // A dropped connection resumes with Range; the job's timeout bounds the whole download.
        retries: 8,
        onRetry: ({ attempt, have, delayMs, error }) =>
          this.deps.logger.warn(
            { attempt, have, delayMs, err: error.message },
            `firmware download interrupted at byte ${have}; resuming in ${delayMs} ms`,
          ),
      },
    );
  }
}

function installerFrom(config: AgentConfig, requestRestart: () => void): Installer {
  const installer = config.updates.installer;
  if (installer?.type === "script") {
    const options = { command: installer.command, timeoutMs: installer.timeoutMs };
    if (installer.activation === "reboot" && installer.rebootCommand && installer.versionCommand) {
      return new RebootingScriptInstaller(options, {
        rebootCommand: installer.rebootCommand,
        versionCommand: installer.versionCommand,
      });
    }
    return new ScriptInstaller(options);
  }
  if (installer?.type === "ab-slots") return new AbSlotsInstaller(installer.root);
  if (installer?.type === "agent") {
    return new AgentInstaller({ root: installer.root, maxBoots: installer.maxBoots, requestRestart });
  }
  return new MissingInstaller();
}

/** The final report of an ended job, rebuilt from its row. */
function endReport(row: UpdateJobRow): JobStatus {
  const succeeded = row.state === "SUCCEEDED";
  const message = succeeded ? row.output : row.message;
  return {
    v: 1,
    ts: Date.now(),
    status: row.state as JobStatus["status"],
    ...(succeeded && { step: "CONFIRMING" }),
    ...(!succeeded && row.reason !== null && { reason: row.reason as JobStatus["reason"] }),
    ...(message && { message: message.slice(0, 2048) }),
  } as JobStatus;
}

function readOptional(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

import { rmSync } from "node:fs";
import {
  deviceTopic,
  FieldgateError,
  JobNotify,
  type JobStatus,
  parseDeviceTopic,
  SchemaValidator,
  type SignedManifest,
} from "@fieldgate/shared";
import type { Identity } from "../identity/identity-store.js";
import type { MessageSink } from "../transport/mqtt-session.js";
import { FirmwareDownloader } from "../update/firmware-downloader.js";
import { checkedTrustedKeys } from "../update/firmware-key-store.js";
import { trustedFirmwareKeys, verifyBeforeInstall } from "../update/verify-before-install.js";
import type { DownloadInterrupter } from "./download-interrupter.js";

/** Fleet-wide counters the update simulation adds to. */
export interface UpdateCounters {
  received: number;
  succeeded: number;
  failed: number;
  /** Images that failed verification after download: must stay 0. */
  corrupt: number;
  /** Downloads cut midway by the interrupter. */
  interrupted: number;
  /** Downloads finished after a cut, by resuming. */
  resumed: number;
  bytes: number;
  firstDownloadAt: number | undefined;
  lastDownloadAt: number | undefined;
}

/** What one simulated device's update handling needs. */
export interface SimulatedUpdatesDeps {
  uuid: string;
  dataDir: string;
  cloudUrl: string;
  caPem: string;
  identity: () => Identity | undefined;
  sink: MessageSink;
  /** This device's jobs end FAILED `INSTALL_FAILED` at INSTALLING (exercises rollout thresholds). */
  failInstall: boolean;
  /** Present when this device's first download is to be cut midway. */
  interrupter?: DownloadInterrupter;
  agentVersion: string;
  counters: UpdateCounters;
  now?: () => number;
}

const validator = new SchemaValidator();
const RESUME_ATTEMPTS = 5;

/**
 * A simulated gateway's side of an update job: the real manifest fetch, resuming mTLS download and
 * verification (signature, compatibility, size, sha256), then a simulated install that succeeds or
 * fails as configured. Statuses go out on `jobs/{id}/status` like the agent's. The staged image is
 * deleted afterwards, so a fan-out to many devices does not fill the disk.
 */
export class SimulatedUpdates {
  private readonly seen = new Set<string>();
  /** Jobs the cloud cancelled (an aborted rollout); honoured until INSTALLING, as the agent does. */
  private readonly cancelled = new Set<string>();
  private active = 0;

  constructor(private readonly deps: SimulatedUpdatesDeps) {}

  get busy(): boolean {
    return this.active > 0;
  }

  /** Acts on `jobs/notify`; other topics are ignored. */
  handle(topic: string, payload: Buffer): void {
    if (parseDeviceTopic(topic)?.topic.kind !== "jobs/notify") return;
    let notify: JobNotify;
    try {
      notify = validator.parse(JobNotify, JSON.parse(payload.toString("utf8")), "jobs/notify");
    } catch {
      return;
    }
    if (notify.cancel) {
      this.cancelled.add(notify.jobId);
      // A cancel for a job never seen: it must not run if it is offered later.
      this.seen.add(notify.jobId);
      return;
    }
    // The cloud re-sends unfinished jobs on every connect; each runs once.
    if (this.seen.has(notify.jobId)) return;
    this.seen.add(notify.jobId);
    this.deps.counters.received += 1;
    this.active += 1;
    void this.run(notify).finally(() => {
      this.active -= 1;
    });
  }

  private async run(notify: JobNotify): Promise<void> {
    const { counters } = this.deps;
    const now = this.deps.now ?? Date.now;
    let current = "DOWNLOADING";
    const report = (status: JobStatus["status"], step: string, extra: Partial<JobStatus> = {}) => {
      current = step;
      return this.report(notify.jobId, { v: 1, ts: now(), status, step, ...extra });
    };
    try {
      await report("IN_PROGRESS", "DOWNLOADING");
      const direct = this.downloader(this.deps.cloudUrl);
      const signed = await direct.manifest(notify.firmware.name, notify.firmware.version);
      counters.firstDownloadAt ??= now();
      const part = await this.download(signed, direct);
      counters.lastDownloadAt = now();
      counters.bytes += signed.manifest.size;
      await report("IN_PROGRESS", "VERIFYING");
      const identity = this.deps.identity();
      // As the agent does: the keys the cloud lists over mTLS, else the one from enrollment.
      const fromCloud = await direct.trustedKeys().then(checkedTrustedKeys, () => undefined);
      try {
        await verifyBeforeInstall({
          signed,
          imagePath: part,
          publicKeys: trustedFirmwareKeys(identity, {}, () => "", fromCloud?.keys.length ? fromCloud : undefined),
          deviceFirmwareCompat: notify.firmwareCompat,
          installedVersion: undefined,
          agentVersion: this.deps.agentVersion,
        });
      } catch (err) {
        if ((err as FieldgateError).code === "FIRMWARE_HASH_MISMATCH") counters.corrupt += 1;
        throw err;
      } finally {
        rmSync(part, { force: true });
      }
      if (this.cancelled.has(notify.jobId)) {
        throw new FieldgateError("JOB_CANCELLED", "cancelled by the cloud before anything was installed");
      }
      await report("IN_PROGRESS", "INSTALLING");
      if (this.deps.failInstall) {
        throw new FieldgateError("INSTALL_FAILED", "simulated installer failure (fieldgate-sim --fail-updates)");
      }
      await report("IN_PROGRESS", "ACTIVATING");
      await report("SUCCEEDED", "CONFIRMING");
      counters.succeeded += 1;
    } catch (err) {
      counters.failed += 1;
      const code = err instanceof FieldgateError ? err.code : "INTERNAL";
      await report("FAILED", current, { reason: code, message: (err as Error).message.slice(0, 2048) }).catch(
        () => undefined,
      );
    }
  }

  /** Downloads through the interrupter when one is set (cut once, then resumed), else directly. */
  private async download(signed: SignedManifest, direct: FirmwareDownloader): Promise<string> {
    const { interrupter, counters } = this.deps;
    if (!interrupter) return direct.download(signed);
    interrupter.cutAfterBytes = Math.floor(signed.manifest.size / 2);
    const port = await interrupter.start();
    // Same host name as the cloud's URL, so the server certificate still matches; only the port differs.
    const viaRelay = new URL(this.deps.cloudUrl);
    viaRelay.port = String(port);
    const relayed = this.downloader(viaRelay.origin);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const part = await relayed.download(signed);
          if (interrupter.interrupted) counters.resumed += 1;
          return part;
        } catch (err) {
          if ((err as FieldgateError).code !== "CLOUD_UNREACHABLE" || attempt >= RESUME_ATTEMPTS) throw err;
          if (interrupter.interrupted && attempt === 1) counters.interrupted += 1;
        }
      }
    } finally {
      await interrupter.stop();
    }
  }

  private downloader(apiUrl: string): FirmwareDownloader {
    const identity = this.deps.identity();
    if (!identity) throw new FieldgateError("CERT_UNKNOWN", "the simulated device is not enrolled");
    return new FirmwareDownloader(this.deps.dataDir, {
      apiUrl,
      trust: { ca: this.deps.caPem, key: identity.keyPem, cert: identity.certPem },
      timeoutMs: 60_000,
    });
  }

  private async report(jobId: string, status: JobStatus): Promise<void> {
    const topic = deviceTopic(this.deps.uuid, { kind: "jobs/status", jobId });
    await this.deps.sink.publish(topic, JSON.stringify(status), { qos: 1 });
  }
}

import { randomBytes } from "node:crypto";
import { type ErrorCode, FieldgateError, type JobNotify, type JobStatus, type JobStatusCheck } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import type { EmbeddedFirmwareLookup } from "../firmware/embedded-firmware-lookup.js";
import type { FirmwareImageUser, FirmwareRecord } from "../firmware/firmware-record.js";
import { type LiveSink, NO_LIVE } from "../live/live-feed.js";
import type { DeviceRow } from "../registry/device-registry.js";
import { readRows, storedIso } from "../storage/stored-row.js";

/** Job statuses after which the device does nothing more for the job. */
export const FINISHED_JOB_STATUSES = ["SUCCEEDED", "FAILED", "ROLLED_BACK", "REJECTED", "CANCELLED"] as const;

/** How a job is made: a rollout sets its own timeout and marks its jobs. */
export interface JobOptions {
  timeoutMs?: number;
  rolloutId?: number;
  /** Auto-rollback to the version the device had (see `JobNotify.rollback`). */
  rollback?: boolean;
}

/** One reported status of a job, as stored in `job_steps`. */
export interface JobStepView {
  ts: string;
  status: string;
  step: string | null;
  progress: { done: number; total: number } | null;
  reason: string | null;
  message: string | null;
  /** While CONFIRMING: the health checks that hold the confirmation back (null when none were reported). */
  checks: JobStatusCheck[] | null;
}

/** A job as the API shows it; `steps` (the report) only on the single-job answer. */
export interface JobView {
  id: string;
  device: string;
  firmware: { name: string | null; version: string | null };
  status: string;
  step: string | null;
  progress: { done: number; total: number } | null;
  reason: string | null;
  message: string | null;
  /** The checks of the latest report (see `JobStepView.checks`). */
  checks: JobStatusCheck[] | null;
  created: string;
  updated: string;
  timeoutAt: string;
  steps?: JobStepView[];
}

interface JobRow {
  id: string;
  org_id: number;
  device_id: number;
  firmware_id: number;
  status: string;
  step: string | null;
  progress_done: number | null;
  progress_total: number | null;
  reason: string | null;
  message: string | null;
  checks_json: string | null;
  created_at: number;
  updated_at: number;
  timeout_at: number;
  rollout_id: number | null;
  rollback: number;
  cancel_requested: number;
  /** The image's name and version, from the firmware store (null once the image is deleted). */
  fw_name: string | null;
  fw_version: string | null;
  compat: string | null;
  uuid: string;
}

/** A job row as `SELECT_JOB` reads it, before its image is looked up. */
type StoredJobRow = Omit<JobRow, "fw_name" | "fw_version">;

interface StepRow {
  ts: number;
  status: string;
  step: string | null;
  progress_done: number | null;
  progress_total: number | null;
  reason: string | null;
  message: string | null;
  checks_json: string | null;
}

/** Dependencies of the job service; `notify` sends a `JobNotify` to the device (QoS 1). */
export interface DeviceJobsDeps {
  db: Database.Database;
  firmware: EmbeddedFirmwareLookup;
  notify: (uuid: string, message: JobNotify) => void;
  /** How long a device has to finish a job, from its creation. */
  timeoutMs: number;
  clock?: () => number;
  /** Called after a job reaches a finished status (reported, timed out or cancelled). */
  onFinished?: (jobId: string, rolloutId: number | null) => void;
  /** Told of every change to a job (created, reported on, cancelled, failed), for live updates. */
  live?: LiveSink;
}

const SELECT_JOB = `
  SELECT j.*, t.firmware_compat AS compat, d.uuid AS uuid
  FROM jobs j
  JOIN devices d ON d.id = j.device_id
  LEFT JOIN device_types t ON t.id = d.type_id`;

/**
 * Single-device firmware update jobs (issue #5). The cloud creates a job, tells the device on
 * `jobs/notify`, and stores what the device reports on `jobs/{id}/status`. A job the device has not
 * finished is sent again each time it connects, until it ends or its timeout passes (then the
 * cloud marks it FAILED `JOB_TIMEOUT`; the agent enforces the same deadline on its side).
 */
export class DeviceJobs implements FirmwareImageUser {
  private readonly clock: () => number;

  private readonly live: LiveSink;

  constructor(private readonly deps: DeviceJobsDeps) {
    this.clock = deps.clock ?? Date.now;
    this.live = deps.live ?? NO_LIVE;
  }

  /** Creates a job for `name@version` on the device and notifies it. */
  create(device: DeviceRow, ref: string, options: JobOptions = {}): JobView {
    const { name, version } = parseFirmwareRef(ref);
    return this.createFor(device, this.deps.firmware.get(device.org_id, name, version), options);
  }

  /** Creates a job for an image already looked up; FIRMWARE_INCOMPATIBLE unless made for the device's type. */
  createFor(device: DeviceRow, record: FirmwareRecord, options: JobOptions = {}): JobView {
    const compat = this.compatOf(device);
    if (compat === undefined) {
      throw new FieldgateError("FIRMWARE_INCOMPATIBLE", "the device has no device type, so no firmware-compat id");
    }
    if (!record.compatible.includes(compat)) {
      throw new FieldgateError(
        "FIRMWARE_INCOMPATIBLE",
        `${record.name}@${record.version} is for ${record.compatible.join(", ")}, not ${compat}`,
        "firmware",
      );
    }
    const now = this.clock();
    const id = `job-${randomBytes(8).toString("hex")}`;
    this.deps.db
      .prepare(
        `INSERT INTO jobs (id, org_id, device_id, firmware_id, status, created_at, updated_at, timeout_at,
           rollout_id, rollback)
         VALUES (?, ?, ?, ?, 'CREATED', ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        device.org_id,
        device.id,
        record.id,
        now,
        now,
        now + (options.timeoutMs ?? this.deps.timeoutMs),
        options.rolloutId ?? null,
        options.rollback ? 1 : 0,
      );
    const row = this.row(id);
    this.live.job(device.id, id);
    this.send(row);
    return view(row);
  }

  /** The job's status and rollout, or undefined. */
  statusOf(jobId: string): { status: string; reason: string | null; message: string | null } | undefined {
    return this.deps.db.prepare("SELECT status, reason, message FROM jobs WHERE id = ?").get(jobId) as
      | { status: string; reason: string | null; message: string | null }
      | undefined;
  }

  /**
   * Cancels unfinished jobs. One the device has not reported on (CREATED) ends CANCELLED at once and
   * is never offered again; every one is also sent a cancel, which the agent honours until it begins
   * INSTALLING (then the job ends FAILED `JOB_CANCELLED`); past that the install runs to its end,
   * as with AWS IoT Jobs without `force`. The cancel is sent again on each connect while it matters.
   * Returns the ids that ended CANCELLED here.
   */
  cancel(jobIds: readonly string[]): string[] {
    const { db } = this.deps;
    const now = this.clock();
    const request = db.prepare("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?");
    const cancel = db.prepare(
      "UPDATE jobs SET status = 'CANCELLED', message = ?, updated_at = ? WHERE id = ? AND status = 'CREATED'",
    );
    const ended = db.transaction(() =>
      jobIds.filter((id) => {
        request.run(now, id);
        return cancel.run("the rollout was aborted before the device started", now, id).changes > 0;
      }),
    )();
    for (const id of jobIds) {
      const row = this.row(id);
      this.live.job(row.device_id, id);
      this.sendCancel(row);
    }
    return ended;
  }

  /**
   * Ends the device's unfinished jobs for an image FAILED with `reason` (the cloud found the image
   * unusable, so waiting for the device's own report would only wait for its retries). Returns the ids.
   */
  failForImage(deviceId: number, firmwareId: number, reason: ErrorCode, message: string): string[] {
    const now = this.clock();
    const finished = FINISHED_JOB_STATUSES.map((s) => `'${s}'`).join(", ");
    const rows = this.deps.db
      .prepare(
        `UPDATE jobs SET status = 'FAILED', reason = ?, message = ?, updated_at = ?
         WHERE device_id = ? AND firmware_id = ? AND status NOT IN (${finished}) RETURNING id, rollout_id`,
      )
      .all(reason, message, now, deviceId, firmwareId) as { id: string; rollout_id: number | null }[];
    for (const row of rows) this.live.job(deviceId, row.id);
    for (const row of rows) this.deps.onFinished?.(row.id, row.rollout_id);
    return rows.map((r) => r.id);
  }

  /** True while a job a device has not finished uses the image (the firmware store asks before a delete). */
  usesImage(firmwareId: number): boolean {
    return (
      this.deps.db
        .prepare(
          `SELECT 1 FROM jobs WHERE firmware_id = ? AND status NOT IN (${FINISHED_JOB_STATUSES.map(() => "?").join(",")}) LIMIT 1`,
        )
        .get(firmwareId, ...FINISHED_JOB_STATUSES) !== undefined
    );
  }

  /** How many jobs (not rollbacks) the rollout created after `since`, for its rate cap. */
  startedSince(rolloutId: number, since: number): number {
    const row = this.deps.db
      .prepare("SELECT count(*) AS n FROM jobs WHERE rollout_id = ? AND rollback = 0 AND created_at > ?")
      .get(rolloutId, since) as { n: number };
    return row.n;
  }

  /** Marks every unfinished job past its timeout FAILED `JOB_TIMEOUT`; returns how many. */
  expireOverdue(): number {
    const now = this.clock();
    // The statuses are inlined, not bound, so that SQLite can use the partial index `jobs_open`.
    const rows = this.deps.db
      .prepare(
        `SELECT id, device_id, rollout_id FROM jobs WHERE timeout_at <= ?
         AND status NOT IN (${FINISHED_JOB_STATUSES.map((s) => `'${s}'`).join(", ")})`,
      )
      .all(now) as { id: string; device_id: number; rollout_id: number | null }[];
    for (const row of rows) this.expire(row.id, now);
    for (const row of rows) this.live.job(row.device_id, row.id);
    for (const row of rows) this.deps.onFinished?.(row.id, row.rollout_id);
    return rows.length;
  }

  private expire(jobId: string, now: number): void {
    this.deps.db
      .prepare("UPDATE jobs SET status = 'FAILED', reason = 'JOB_TIMEOUT', message = ?, updated_at = ? WHERE id = ?")
      .run("the job's timeout passed before the device finished it", now, jobId);
  }

  list(device: DeviceRow): JobView[] {
    return this.withImages(
      this.deps.db
        .prepare(`${SELECT_JOB} WHERE j.device_id = ? ORDER BY j.created_at DESC, j.rowid DESC`)
        .all(device.id) as StoredJobRow[],
    ).map(view);
  }

  /** One job of the device, with its report. */
  get(device: DeviceRow, id: string): JobView {
    const stored = this.deps.db.prepare(`${SELECT_JOB} WHERE j.id = ? AND j.device_id = ?`).get(id, device.id) as
      | StoredJobRow
      | undefined;
    if (!stored) throw new FieldgateError("JOB_NOT_FOUND", `no job ${id} on this device`);
    const [row] = this.withImages([stored]) as [JobRow];
    const steps = this.deps.db.prepare("SELECT * FROM job_steps WHERE job_id = ? ORDER BY id").all(id) as StepRow[];
    // A step whose device-sent time cannot be read is left out rather than failing the job's answer.
    return {
      ...view(row),
      steps: readRows(steps, (step) => (storedIso(step.ts) === undefined ? undefined : stepView(step))).items,
    };
  }

  /**
   * Stores a status the device reported. False when the job is not this device's (the caller
   * records an event). A report after the job ended is kept in the report but does not reopen it.
   */
  report(deviceId: number, jobId: string, status: JobStatus): boolean {
    const job = this.deps.db
      .prepare("SELECT status, device_id, rollout_id, firmware_id FROM jobs WHERE id = ?")
      .get(jobId) as { status: string; device_id: number; rollout_id: number | null; firmware_id: number } | undefined;
    if (!job || job.device_id !== deviceId) return false;
    const fields = [
      status.step ?? null,
      status.progress?.done ?? null,
      status.progress?.total ?? null,
      status.reason ?? null,
      status.message ?? null,
      status.checks && status.checks.length > 0 ? JSON.stringify(status.checks) : null,
    ];
    this.deps.db.transaction(() => {
      this.deps.db
        .prepare(
          `INSERT INTO job_steps (job_id, ts, status, step, progress_done, progress_total, reason, message, checks_json)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(jobId, status.ts, status.status, ...fields);
      if (!isFinished(job.status)) {
        this.deps.db
          .prepare(
            `UPDATE jobs SET status = ?, step = ?, progress_done = ?, progress_total = ?, reason = ?, message = ?,
             checks_json = ?, updated_at = ? WHERE id = ?`,
          )
          .run(status.status, ...fields, this.clock(), jobId);
      }
    })();
    this.live.job(deviceId, jobId);
    if (!isFinished(job.status) && status.status === "SUCCEEDED") {
      // The device now runs the job's version: rollouts skip it and auto-rollback knows where it came from.
      this.deps.db
        .prepare("UPDATE devices SET firmware_version = ? WHERE id = ?")
        .run(this.deps.firmware.byId(job.firmware_id)?.version ?? null, deviceId);
      // The device's firmware version changed with it.
      this.live.device(deviceId);
    }
    if (!isFinished(job.status) && isFinished(status.status)) this.deps.onFinished?.(jobId, job.rollout_id);
    return true;
  }

  /**
   * On connect: every unfinished job of the device again (the agent ignores ids it has seen), and
   * the ones past their timeout are marked FAILED `JOB_TIMEOUT` instead.
   */
  resend(deviceId: number): void {
    // Cancels first: a device that took a job before its rollout aborted must hear of it.
    const cancels = this.deps.db
      .prepare(
        `${SELECT_JOB} WHERE j.device_id = ? AND j.cancel_requested = 1 AND j.timeout_at > ?
         AND (j.status = 'CANCELLED' OR j.status NOT IN (${FINISHED_JOB_STATUSES.map(() => "?").join(",")}))`,
      )
      .all(deviceId, this.clock(), ...FINISHED_JOB_STATUSES) as StoredJobRow[];
    for (const row of this.withImages(cancels)) this.sendCancel(row);
    const rows = this.withImages(
      this.deps.db
        .prepare(
          `${SELECT_JOB} WHERE j.device_id = ? AND j.status NOT IN (${FINISHED_JOB_STATUSES.map(() => "?").join(",")})
           ORDER BY j.created_at, j.rowid`,
        )
        .all(deviceId, ...FINISHED_JOB_STATUSES) as StoredJobRow[],
    );
    const now = this.clock();
    for (const row of rows) {
      if (now >= row.timeout_at) {
        this.expire(row.id, now);
        this.deps.onFinished?.(row.id, row.rollout_id);
        continue;
      }
      if (row.cancel_requested === 0) this.send(row);
    }
  }

  private send(row: JobRow): void {
    if (row.fw_name === null || row.fw_version === null || row.compat === null) return;
    this.deps.notify(row.uuid, {
      v: 1,
      jobId: row.id,
      firmware: { name: row.fw_name, version: row.fw_version },
      firmwareCompat: row.compat,
      timeoutS: Math.max(1, Math.ceil((row.timeout_at - this.clock()) / 1000)),
      ...(row.rollback === 1 && { rollback: true }),
    });
  }

  private sendCancel(row: JobRow): void {
    if (row.fw_name === null || row.fw_version === null || row.compat === null) return;
    this.deps.notify(row.uuid, {
      v: 1,
      jobId: row.id,
      firmware: { name: row.fw_name, version: row.fw_version },
      firmwareCompat: row.compat,
      timeoutS: Math.max(1, Math.ceil((row.timeout_at - this.clock()) / 1000)),
      cancel: true,
    });
  }

  private row(id: string): JobRow {
    const [row] = this.withImages([this.deps.db.prepare(`${SELECT_JOB} WHERE j.id = ?`).get(id) as StoredJobRow]);
    return row as JobRow;
  }

  /** The rows with their image's name and version, asked of the firmware store once per image. */
  private withImages(rows: readonly StoredJobRow[]): JobRow[] {
    const images = new Map<number, FirmwareRecord | undefined>();
    return rows.map((row) => {
      if (!images.has(row.firmware_id)) images.set(row.firmware_id, this.deps.firmware.byId(row.firmware_id));
      const image = images.get(row.firmware_id);
      return { ...row, fw_name: image?.name ?? null, fw_version: image?.version ?? null };
    });
  }

  private compatOf(device: DeviceRow): string | undefined {
    if (device.type_id === null) return undefined;
    const row = this.deps.db.prepare("SELECT firmware_compat FROM device_types WHERE id = ?").get(device.type_id) as
      | { firmware_compat: string }
      | undefined;
    return row?.firmware_compat;
  }
}

/** `name@version` split at the last `@`. */
export function parseFirmwareRef(ref: string): { name: string; version: string } {
  const at = ref.lastIndexOf("@");
  if (at <= 0 || at === ref.length - 1) {
    throw new FieldgateError("VALIDATION_FAILED", `firmware must be name@version, not ${ref}`, "firmware");
  }
  return { name: ref.slice(0, at), version: ref.slice(at + 1) };
}

export function isFinished(status: string): boolean {
  return (FINISHED_JOB_STATUSES as readonly string[]).includes(status);
}

const iso = (ms: number) => new Date(ms).toISOString();

function progressOf(done: number | null, total: number | null): { done: number; total: number } | null {
  return done === null || total === null ? null : { done, total };
}

function view(row: JobRow): JobView {
  return {
    id: row.id,
    device: row.uuid,
    firmware: { name: row.fw_name, version: row.fw_version },
    status: row.status,
    step: row.step,
    progress: progressOf(row.progress_done, row.progress_total),
    reason: row.reason,
    message: row.message,
    checks: checksOf(row.checks_json),
    created: iso(row.created_at),
    updated: iso(row.updated_at),
    timeoutAt: iso(row.timeout_at),
  };
}

function stepView(row: StepRow): JobStepView {
  return {
    ts: iso(row.ts),
    status: row.status,
    step: row.step,
    progress: progressOf(row.progress_done, row.progress_total),
    reason: row.reason,
    message: row.message,
    checks: checksOf(row.checks_json),
  };
}

/** Stored from a validated JobStatus, so it parses; anything else reads as none. */
function checksOf(json: string | null): JobStatusCheck[] | null {
  if (json === null) return null;
  try {
    const checks = JSON.parse(json) as unknown;
    return Array.isArray(checks) ? (checks as JobStatusCheck[]) : null;
  } catch {
    return null;
  }
}

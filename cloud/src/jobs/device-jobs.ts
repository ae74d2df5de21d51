import { randomBytes } from "node:crypto";
import { type ErrorCode, FieldgateError, type JobNotify, type JobStatus, type JobStatusCheck } from "@fieldgate/shared";
import { type Generated, type Kysely, type SqlBool, sql } from "kysely";
import type { FirmwareImageUser, FirmwareRecord } from "../firmware/firmware-record.js";
import { type LiveSink, NO_LIVE } from "../live/live-feed.js";
import type { DeviceRow } from "../registry/device-registry.js";
import { affectedRows, type CloudDatabase, type Executor } from "../storage/cloud-database.js";
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

/** The `jobs` table (this module owns it). */
interface JobsTable {
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
}

/** The `job_steps` table: every status a device reported, in arrival order. */
interface JobStepsTable {
  id: Generated<number>;
  job_id: string;
  ts: number;
  status: string;
  step: string | null;
  progress_done: number | null;
  progress_total: number | null;
  reason: string | null;
  message: string | null;
  checks_json: string | null;
}

type JobTables = {
  jobs: JobsTable;
  job_steps: JobStepsTable;
};

/** A value now, or later: the stores this module calls are turning async (issue #14). */
export type Awaitable<T> = T | Promise<T>;

/** What jobs need of the registry, which owns the devices. */
export interface JobDevices {
  findById(deviceId: number, executor?: Executor): Awaitable<DeviceRow | undefined>;
  recordFirmwareVersion(deviceId: number, version: string, executor?: Executor): Awaitable<boolean>;
}

/** What jobs need of the device types: the firmware-compat id a job is sent with. */
export interface FirmwareCompatSource {
  firmwareCompat(typeId: number, executor?: Executor): Awaitable<string | undefined>;
}

/** The images jobs install, read from the firmware store. */
export interface JobImages {
  get(orgId: number, name: string, version: string): Awaitable<FirmwareRecord>;
  byId(id: number): Awaitable<FirmwareRecord | undefined>;
}

/** A stored job with what it is sent with: its device's uuid and compat id, its image's name and version. */
interface JobRow extends JobsTable {
  /** The image's name and version, from the firmware store (null once the image is deleted). */
  fw_name: string | null;
  fw_version: string | null;
  compat: string | null;
  uuid: string;
}

type StepRow = Omit<JobStepsTable, "id" | "job_id">;

/** A job made inside a caller's transaction: `announce` it once that transaction committed. */
export interface StagedJob {
  readonly view: JobView;
  readonly row: JobRow;
}

/** A job as a rollout's device list shows it. */
export interface JobSummary {
  id: string;
  status: string;
  step: string | null;
  progress: { done: number; total: number } | null;
  updatedAt: number;
}

/** Dependencies of the job service; `notify` sends a `JobNotify` to the device (QoS 1). */
export interface DeviceJobsDeps {
  database: CloudDatabase;
  devices: JobDevices;
  types: FirmwareCompatSource;
  firmware: JobImages;
  notify: (uuid: string, message: JobNotify) => void;
  /** How long a device has to finish a job, from its creation. */
  timeoutMs: number;
  clock?: () => number;
  /** Called after a job reaches a finished status (reported, timed out or cancelled). */
  onFinished?: (jobId: string, rolloutId: number | null) => Awaitable<void>;
  /** Told of every change to a job (created, reported on, cancelled, failed), for live updates. */
  live?: LiveSink;
}

/** The finished statuses as SQL literals: inlined, not bound, so that the partial index `jobs_open` serves. */
const NOT_FINISHED = sql<SqlBool>`${sql.raw(`status NOT IN (${FINISHED_JOB_STATUSES.map((s) => `'${s}'`).join(", ")})`)}`;

/** At most this many ids in one `IN (…)`, well below SQLite's limit of bound values. */
const IDS_PER_QUERY = 1000;

const TIMEOUT_MESSAGE = "the job's timeout passed before the device finished it";

/**
 * Single-device firmware update jobs (issue #5). The cloud creates a job, tells the device on
 * `jobs/notify`, and stores what the device reports on `jobs/{id}/status`. A job the device has not
 * finished is sent again each time it connects, until it ends or its timeout passes (then the
 * cloud marks it FAILED `JOB_TIMEOUT`; the agent enforces the same deadline on its side).
 */
export class DeviceJobs implements FirmwareImageUser {
  private readonly clock: () => number;

  private readonly live: LiveSink;

  private readonly db: Kysely<JobTables>;

  constructor(private readonly deps: DeviceJobsDeps) {
    this.clock = deps.clock ?? Date.now;
    this.live = deps.live ?? NO_LIVE;
    this.db = deps.database.kysely.withTables<JobTables>();
  }

  /** Its own handle, or the caller's transaction. */
  private on(executor?: Executor): Kysely<JobTables> {
    return (executor as Kysely<JobTables> | undefined) ?? this.db;
  }

  /** Creates a job for `name@version` on the device and notifies it. */
  async create(device: DeviceRow, ref: string, options: JobOptions = {}): Promise<JobView> {
    const { name, version } = parseFirmwareRef(ref);
    return this.createFor(device, await this.deps.firmware.get(device.org_id, name, version), options);
  }

  /** Creates a job for an image already looked up; FIRMWARE_INCOMPATIBLE unless made for the device's type. */
  async createFor(device: DeviceRow, record: FirmwareRecord, options: JobOptions = {}): Promise<JobView> {
    const staged = await this.stage(device, record, options);
    this.announce(staged);
    return staged.view;
  }

  /**
   * Stores a job (in `executor`'s transaction when given) without telling anyone: the caller
   * announces it after its commit, so that a device never hears of a job it cannot report on.
   */
  async stage(
    device: DeviceRow,
    record: FirmwareRecord,
    options: JobOptions = {},
    executor?: Executor,
  ): Promise<StagedJob> {
    const compat = device.type_id === null ? undefined : await this.deps.types.firmwareCompat(device.type_id, executor);
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
    const stored: JobsTable = {
      id: `job-${randomBytes(8).toString("hex")}`,
      org_id: device.org_id,
      device_id: device.id,
      firmware_id: record.id,
      status: "CREATED",
      step: null,
      progress_done: null,
      progress_total: null,
      reason: null,
      message: null,
      checks_json: null,
      created_at: now,
      updated_at: now,
      timeout_at: now + (options.timeoutMs ?? this.deps.timeoutMs),
      rollout_id: options.rolloutId ?? null,
      rollback: options.rollback ? 1 : 0,
      cancel_requested: 0,
    };
    await this.on(executor).insertInto("jobs").values(stored).execute();
    const row: JobRow = { ...stored, fw_name: record.name, fw_version: record.version, compat, uuid: device.uuid };
    return { view: view(row), row };
  }

  /** Tells the live feed and the device of a staged job, once it is committed. */
  announce(job: StagedJob): void {
    this.live.job(job.row.device_id, job.row.id);
    this.send(job.row);
  }

  /** The job's status, or undefined. */
  async statusOf(
    jobId: string,
    executor?: Executor,
  ): Promise<{ status: string; reason: string | null; message: string | null } | undefined> {
    return this.on(executor)
      .selectFrom("jobs")
      .select(["status", "reason", "message"])
      .where("id", "=", jobId)
      .executeTakeFirst();
  }

  /** The jobs' status, step and progress by id, for a rollout's device list; unknown ids are left out. */
  async summaries(jobIds: readonly string[], executor?: Executor): Promise<Map<string, JobSummary>> {
    const summaries = new Map<string, JobSummary>();
    const unique = [...new Set(jobIds)];
    for (let i = 0; i < unique.length; i += IDS_PER_QUERY) {
      const rows = await this.on(executor)
        .selectFrom("jobs")
        .select(["id", "status", "step", "progress_done", "progress_total", "updated_at"])
        .where("id", "in", unique.slice(i, i + IDS_PER_QUERY))
        .execute();
      for (const r of rows) {
        summaries.set(r.id, {
          id: r.id,
          status: r.status,
          step: r.step,
          progress: progressOf(r.progress_done, r.progress_total),
          updatedAt: r.updated_at,
        });
      }
    }
    return summaries;
  }

  /**
   * Cancels unfinished jobs. One the device has not reported on (CREATED) ends CANCELLED at once and
   * is never offered again; every one is also sent a cancel, which the agent honours until it begins
   * INSTALLING (then the job ends FAILED `JOB_CANCELLED`); past that the install runs to its end,
   * as with AWS IoT Jobs without `force`. The cancel is sent again on each connect while it matters.
   * Returns the ids that ended CANCELLED here.
   */
  async cancel(jobIds: readonly string[]): Promise<string[]> {
    if (jobIds.length === 0) return [];
    const now = this.clock();
    const ended = await this.db.transaction().execute(async (trx) => {
      const cancelled: string[] = [];
      for (const id of jobIds) {
        await trx.updateTable("jobs").set({ cancel_requested: 1, updated_at: now }).where("id", "=", id).execute();
        const result = await trx
          .updateTable("jobs")
          .set({ status: "CANCELLED", message: "the rollout was aborted before the device started", updated_at: now })
          .where("id", "=", id)
          .where("status", "=", "CREATED")
          .executeTakeFirst();
        if (affectedRows(result) > 0) cancelled.push(id);
      }
      return cancelled;
    });
    const byId = new Map<string, JobRow>();
    for (let i = 0; i < jobIds.length; i += IDS_PER_QUERY) {
      const stored = await this.selectJobs()
        .where("id", "in", jobIds.slice(i, i + IDS_PER_QUERY))
        .execute();
      for (const row of await this.rows(stored)) byId.set(row.id, row);
    }
    for (const id of jobIds) {
      const row = byId.get(id);
      if (!row) continue;
      this.live.job(row.device_id, id);
      this.sendCancel(row);
    }
    return ended;
  }

  /**
   * Ends the device's unfinished jobs for an image FAILED with `reason` (the cloud found the image
   * unusable, so waiting for the device's own report would only wait for its retries). Returns the ids.
   */
  async failForImage(deviceId: number, firmwareId: number, reason: ErrorCode, message: string): Promise<string[]> {
    const rows = await this.db
      .updateTable("jobs")
      .set({ status: "FAILED", reason, message, updated_at: this.clock() })
      .where("device_id", "=", deviceId)
      .where("firmware_id", "=", firmwareId)
      .where(NOT_FINISHED)
      .returning(["id", "rollout_id"])
      .execute();
    for (const row of rows) this.live.job(deviceId, row.id);
    for (const row of rows) await this.deps.onFinished?.(row.id, row.rollout_id);
    return rows.map((r) => r.id);
  }

  /** True while a job a device has not finished uses the image (the firmware store asks before a delete). */
  async usesImage(firmwareId: number, executor?: Executor): Promise<boolean> {
    const row = await this.on(executor)
      .selectFrom("jobs")
      .select(sql<number>`1`.as("one"))
      .where("firmware_id", "=", firmwareId)
      .where(NOT_FINISHED)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** How many jobs (not rollbacks) the rollout created after `since`, for its rate cap. */
  async startedSince(rolloutId: number, since: number, executor?: Executor): Promise<number> {
    const row = await this.on(executor)
      .selectFrom("jobs")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("rollout_id", "=", rolloutId)
      .where("rollback", "=", 0)
      .where("created_at", ">", since)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Marks every unfinished job past its timeout FAILED `JOB_TIMEOUT`; returns how many. */
  async expireOverdue(): Promise<number> {
    // One conditional UPDATE: a report arriving meanwhile either lands first (and wins) or finds the job ended.
    const rows = await this.db
      .updateTable("jobs")
      .set({ status: "FAILED", reason: "JOB_TIMEOUT", message: TIMEOUT_MESSAGE, updated_at: this.clock() })
      .where("timeout_at", "<=", this.clock())
      .where(NOT_FINISHED)
      .returning(["id", "device_id", "rollout_id"])
      .execute();
    for (const row of rows) this.live.job(row.device_id, row.id);
    for (const row of rows) await this.deps.onFinished?.(row.id, row.rollout_id);
    return rows.length;
  }

  /** Ends one job FAILED `JOB_TIMEOUT` unless it ended meanwhile; true when this call ended it. */
  private async expire(jobId: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable("jobs")
      .set({ status: "FAILED", reason: "JOB_TIMEOUT", message: TIMEOUT_MESSAGE, updated_at: now })
      .where("id", "=", jobId)
      .where(NOT_FINISHED)
      .executeTakeFirst();
    return affectedRows(result) > 0;
  }

  async list(device: DeviceRow): Promise<JobView[]> {
    // Newest first; jobs of one millisecond by id, as the jobs table keeps no insertion order on PostgreSQL.
    const stored = await this.selectJobs()
      .where("device_id", "=", device.id)
      .orderBy("created_at", "desc")
      .orderBy("id", "desc")
      .execute();
    return (await this.rows(stored, device)).map(view);
  }

  /** One job of the device, with its report. */
  async get(device: DeviceRow, id: string): Promise<JobView> {
    const stored = await this.selectJobs().where("id", "=", id).where("device_id", "=", device.id).executeTakeFirst();
    if (!stored) throw new FieldgateError("JOB_NOT_FOUND", `no job ${id} on this device`);
    const [row] = (await this.rows([stored], device)) as [JobRow];
    const steps = await this.db
      .selectFrom("job_steps")
      .select(["ts", "status", "step", "progress_done", "progress_total", "reason", "message", "checks_json"])
      .where("job_id", "=", id)
      .orderBy("id")
      .execute();
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
  async report(deviceId: number, jobId: string, status: JobStatus): Promise<boolean> {
    const fields = {
      step: status.step ?? null,
      progress_done: status.progress?.done ?? null,
      progress_total: status.progress?.total ?? null,
      reason: status.reason ?? null,
      message: status.message ?? null,
      checks_json: status.checks && status.checks.length > 0 ? JSON.stringify(status.checks) : null,
    };
    // The job's device, image and rollout never change: read before the transaction, which may use only `trx`.
    const job = await this.db
      .selectFrom("jobs")
      .select(["device_id", "rollout_id", "firmware_id"])
      .where("id", "=", jobId)
      .executeTakeFirst();
    if (!job || job.device_id !== deviceId) return false;
    const version =
      status.status === "SUCCEEDED" ? (await this.deps.firmware.byId(job.firmware_id))?.version : undefined;
    const wasOpen = await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto("job_steps")
        .values({ job_id: jobId, ts: status.ts, status: status.status, ...fields })
        .execute();
      // Conditional, so that of two reports (or a report and the timeout sweep) only one ends the job.
      const moved = await trx
        .updateTable("jobs")
        .set({ status: status.status, ...fields, updated_at: this.clock() })
        .where("id", "=", jobId)
        .where(NOT_FINISHED)
        .executeTakeFirst();
      const open = affectedRows(moved) > 0;
      // The device now runs the job's version: rollouts skip it and auto-rollback knows where it came from.
      if (open && version !== undefined) await this.deps.devices.recordFirmwareVersion(deviceId, version, trx);
      return open;
    });
    this.live.job(deviceId, jobId);
    // The device's firmware version changed with it.
    if (wasOpen && status.status === "SUCCEEDED") this.live.device(deviceId);
    if (wasOpen && isFinished(status.status)) await this.deps.onFinished?.(jobId, job.rollout_id);
    return true;
  }

  /**
   * On connect: every unfinished job of the device again (the agent ignores ids it has seen), and
   * the ones past their timeout are marked FAILED `JOB_TIMEOUT` instead.
   */
  async resend(deviceId: number): Promise<void> {
    const now = this.clock();
    // Cancels first: a device that took a job before its rollout aborted must hear of it.
    const cancels = await this.selectJobs()
      .where("device_id", "=", deviceId)
      .where("cancel_requested", "=", 1)
      .where("timeout_at", ">", now)
      .where((eb) => eb.or([eb("status", "=", "CANCELLED"), eb("status", "not in", FINISHED_JOB_STATUSES)]))
      .orderBy("created_at")
      .orderBy("id")
      .execute();
    const open = await this.selectJobs()
      .where("device_id", "=", deviceId)
      .where(NOT_FINISHED)
      .orderBy("created_at")
      .orderBy("id")
      .execute();
    if (cancels.length === 0 && open.length === 0) return;
    const device = await this.deps.devices.findById(deviceId);
    if (!device) return;
    for (const row of await this.rows(cancels, device)) this.sendCancel(row);
    for (const row of await this.rows(open, device)) {
      if (now >= row.timeout_at) {
        if (await this.expire(row.id, now)) await this.deps.onFinished?.(row.id, row.rollout_id);
        continue;
      }
      if (row.cancel_requested === 0) this.send(row);
    }
  }

  private selectJobs() {
    return this.db.selectFrom("jobs").selectAll();
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

  /**
   * The rows with what they are sent with: the device's uuid and type's compat id (from the
   * registry and the device types; `known` saves the look-up) and the image's name and version
   * (from the firmware store), each asked once per device, type or image.
   */
  private async rows(stored: readonly JobsTable[], known?: DeviceRow): Promise<JobRow[]> {
    const devices = new Map<number, DeviceRow | undefined>(known ? [[known.id, known]] : []);
    const compats = new Map<number, string | undefined>();
    const images = new Map<number, FirmwareRecord | undefined>();
    const rows: JobRow[] = [];
    for (const row of stored) {
      if (!devices.has(row.device_id)) devices.set(row.device_id, await this.deps.devices.findById(row.device_id));
      const device = devices.get(row.device_id);
      // A job goes with its device (ON DELETE CASCADE): one whose device is gone is being deleted.
      if (!device) continue;
      const typeId = device.type_id;
      if (typeId !== null && !compats.has(typeId)) compats.set(typeId, await this.deps.types.firmwareCompat(typeId));
      if (!images.has(row.firmware_id)) images.set(row.firmware_id, await this.deps.firmware.byId(row.firmware_id));
      const image = images.get(row.firmware_id);
      rows.push({
        ...row,
        uuid: device.uuid,
        compat: typeId === null ? null : (compats.get(typeId) ?? null),
        fw_name: image?.name ?? null,
        fw_version: image?.version ?? null,
      });
    }
    return rows;
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

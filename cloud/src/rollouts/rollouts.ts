import {
  type CreateRolloutBody,
  FieldgateError,
  formatDuration,
  ListDevicesQuery,
  parseDuration,
  type RolloutDeviceList,
  type RolloutTarget,
  type RolloutView,
  type SchemaValidator,
} from "@fieldgate/shared";
import type { Generated, Kysely, Selectable } from "kysely";
import type { Logger } from "pino";
import type { AccessPolicy, Principal } from "../access/access-policy.js";
import type { FirmwareImageUser, FirmwareRecord } from "../firmware/firmware-record.js";
import {
  type Awaitable,
  type DeviceJobs,
  type FirmwareCompatSource,
  type JobImages,
  parseFirmwareRef,
  type StagedJob,
} from "../jobs/device-jobs.js";
import { type LiveRolloutRef, type LiveSink, NO_LIVE } from "../live/live-feed.js";
import type { DeviceFilters, SqlScope } from "../registry/device-query.js";
import type { DeviceRow } from "../registry/device-registry.js";
import { affectedRows, type CloudDatabase, type Executor } from "../storage/cloud-database.js";
import {
  failureThresholdCrossed,
  formatRate,
  type MaintenanceWindow,
  nextWindowOpening,
  type PhaseMark,
  parseMaintenanceWindow,
  parsePhases,
  parseRate,
  parseThreshold,
  phaseSizes,
  phaseVerdict,
  type Rate,
  startsAllowed,
  windowOpen,
} from "./rollout-plan.js";

/** Where one device stands in a rollout. */
export type RolloutDeviceState = "pending" | "active" | "succeeded" | "failed" | "skipped" | "cancelled";
export type RolloutState = "running" | "paused" | "completed" | "aborted";

/** Rollout states that hold on to their image: it cannot be deleted under them. */
export const ACTIVE_ROLLOUT_STATES = ["running", "paused"] as const satisfies readonly RolloutState[];

/** What rollouts need of the registry, which owns the devices. */
export interface RolloutDevices {
  findByUuid(uuid: string): Awaitable<DeviceRow | undefined>;
  findById(deviceId: number, executor?: Executor): Awaitable<DeviceRow | undefined>;
  groupPath(row: DeviceRow): Awaitable<string>;
  resolveFilters(
    orgId: number,
    query: ListDevicesQuery,
    visible: (groupPath: string) => boolean,
  ): Awaitable<DeviceFilters>;
  matching(orgId: number, scope: SqlScope, filters: DeviceFilters): Awaitable<DeviceRow[]>;
  uuidsByIds(ids: readonly number[], executor?: Executor): Awaitable<Map<number, string>>;
}

/** The images rollouts install and roll back to, read from the firmware store. */
export interface RolloutImages extends JobImages {
  find(orgId: number, name: string, version: string): Awaitable<FirmwareRecord | undefined>;
}

export interface RolloutsDeps {
  database: CloudDatabase;
  registry: RolloutDevices;
  types: FirmwareCompatSource;
  policy: AccessPolicy;
  firmware: RolloutImages;
  jobs: DeviceJobs;
  validator: SchemaValidator;
  logger: Logger;
  /** Default per-job timeout when a rollout names none. */
  defaultJobTimeoutMs: number;
  clock?: () => number;
  /** Most jobs one tick creates, so a tick over a large fleet stays short; the next tick goes on. */
  startsPerTick?: number;
  /** Told when a rollout's state, phase or progress changes, for live updates. */
  live?: LiveSink;
}

/** The `rollouts` table (this module owns it). */
interface RolloutsTable {
  id: Generated<number>;
  org_id: number;
  firmware_id: number;
  group_paths_json: string;
  target_json: string;
  phases_json: string;
  success_threshold: number;
  failure_threshold: number;
  rate_json: string | null;
  window_json: string | null;
  job_timeout_ms: number;
  retries: number;
  auto_rollback: number;
  state: RolloutState;
  stop_reason: string | null;
  stop_message: string | null;
  current_phase: number;
  last_start_at: number | null;
  created_by: string;
  created_at: number;
  updated_at: number;
}

/** The `rollout_devices` table: the target snapshot, one row per device with its phase and place. */
interface RolloutDevicesTable {
  rollout_id: number;
  device_id: number;
  position: number;
  phase: number;
  state: RolloutDeviceState;
  attempts: Generated<number>;
  job_id: string | null;
  from_version: string | null;
  reason: string | null;
  message: string | null;
  started_at: number | null;
  finished_at: number | null;
  rollback_job_id: string | null;
  rollback_state: string | null;
}

type RolloutTables = {
  rollouts: RolloutsTable;
  rollout_devices: RolloutDevicesTable;
};

type RolloutRow = Selectable<RolloutsTable>;

type MemberRow = Selectable<RolloutDevicesTable>;

type StateCount = { state: RolloutDeviceState; rollback_state: string | null; n: number };

const DEFAULTS = { phases: "100%", successThreshold: "100%", failureThreshold: "100%", retries: 0 };
const LIST_LIMIT = 200;
const DEVICE_LIST_LIMIT = 1000;
/** Members inserted per statement at creation, well below SQLite's limit of bound values. */
const MEMBERS_PER_INSERT = 500;

/**
 * Phased rollouts (issue #5), after hawkBit's rollout groups and AWS IoT Jobs' rollout and abort
 * configs. The target set is a snapshot taken at creation; each device has a phase and a place.
 * `tick` starts installs in the current phase (rate and maintenance window permitting), retries
 * failures, advances a finished phase that met the success threshold (or holds it), and aborts
 * when failures cross the failure threshold. Job ends arrive through `jobFinished`. All state is
 * in the database, so a restarted cloud goes on where it stopped.
 */
export class Rollouts implements FirmwareImageUser {
  private readonly clock: () => number;

  private readonly live: LiveSink;

  private readonly db: Kysely<RolloutTables>;

  /** Where each rollout read so far belongs, for `liveRef`. */
  private readonly liveRefs = new Map<number, LiveRolloutRef>();

  constructor(private readonly deps: RolloutsDeps) {
    this.clock = deps.clock ?? Date.now;
    this.live = deps.live ?? NO_LIVE;
    this.db = deps.database.kysely.withTables<RolloutTables>();
  }

  /**
   * Where a rollout belongs, for the live feed (which resolves synchronously); undefined for one
   * this process has not read. Every change announced follows a read of the rollout here.
   */
  liveRef(id: number): LiveRolloutRef | undefined {
    return this.liveRefs.get(id);
  }

  /** A rollout row just read; its organization and groups are fixed at creation, so they are remembered. */
  private remember<R extends RolloutRow | undefined>(row: R): R {
    if (row && !this.liveRefs.has(row.id)) {
      this.liveRefs.set(row.id, { orgId: row.org_id, groupPaths: JSON.parse(row.group_paths_json) as string[] });
    }
    return row;
  }

  /** True while a rollout in an active state uses the image (the firmware store asks before a delete). */
  async usesImage(firmwareId: number, executor?: Executor): Promise<boolean> {
    const row = await this.on(executor)
      .selectFrom("rollouts")
      .select("id")
      .where("firmware_id", "=", firmwareId)
      .where("state", "in", ACTIVE_ROLLOUT_STATES)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Deletes the image's (finished) rollouts with their devices; inside the firmware store's delete transaction. */
  async releaseImage(firmwareId: number, executor?: Executor): Promise<void> {
    await this.on(executor).deleteFrom("rollouts").where("firmware_id", "=", firmwareId).execute();
  }

  async create(principal: Principal, body: CreateRolloutBody): Promise<RolloutView> {
    const { name, version } = parseFirmwareRef(body.firmware);
    const image = await this.deps.firmware.get(principal.orgId, name, version);
    const marks = parsePhases(body.phases ?? DEFAULTS.phases);
    const successThreshold = parseThreshold(body.successThreshold ?? DEFAULTS.successThreshold, "successThreshold");
    const failureThreshold = parseThreshold(body.failureThreshold ?? DEFAULTS.failureThreshold, "failureThreshold");
    const rate = body.rate === undefined ? null : parseRate(body.rate);
    const window = body.maintenanceWindow === undefined ? null : parseMaintenanceWindow(body.maintenanceWindow);
    const timeoutMs = body.timeout === undefined ? this.deps.defaultJobTimeoutMs : parseDuration(body.timeout);
    if (timeoutMs === undefined || timeoutMs < 1000) {
      throw new FieldgateError(
        "VALIDATION_FAILED",
        `timeout ${body.timeout} is not a duration of 1s or more`,
        "timeout",
      );
    }
    const devices = await this.resolveTarget(principal, body.target);
    const compatOf = await this.compatIds(devices);
    const eligible = devices.filter((d) => d.type_id !== null && image.compatible.includes(compatOf(d.type_id) ?? ""));
    if (eligible.length === 0) {
      throw new FieldgateError(
        "ROLLOUT_NO_DEVICES",
        devices.length === 0
          ? "the target selects no device this credential may update"
          : `none of the ${devices.length} targeted devices has a type that ${name}@${version} is made for`,
        "target",
      );
    }
    const sizes = phaseSizes(marks, devices.length);
    const phaseOf = phaseIndexer(sizes);
    const now = this.clock();
    const groupPaths: string[] = [];
    for (const d of devices) groupPaths.push(await this.deps.registry.groupPath(d));
    const id = await this.db.transaction().execute(async (trx) => {
      const created = await trx
        .insertInto("rollouts")
        .values({
          org_id: principal.orgId,
          firmware_id: image.id,
          group_paths_json: JSON.stringify([...new Set(groupPaths)]),
          target_json: JSON.stringify(body.target),
          phases_json: JSON.stringify(marks),
          success_threshold: successThreshold,
          failure_threshold: failureThreshold,
          rate_json: rate && JSON.stringify(rate),
          window_json: window && JSON.stringify(window),
          job_timeout_ms: timeoutMs,
          retries: body.retries ?? DEFAULTS.retries,
          auto_rollback: body.autoRollback ? 1 : 0,
          state: "running",
          current_phase: 0,
          created_by: `${principal.kind}:${principal.id}`,
          created_at: now,
          updated_at: now,
        })
        .returning("id")
        .executeTakeFirstOrThrow();
      const rolloutId = created.id;
      const members = devices.map((d, position) => {
        const skip = skipReason(d, image, compatOf);
        return {
          rollout_id: rolloutId,
          device_id: d.id,
          position,
          phase: phaseOf(position),
          state: skip ? ("skipped" as const) : ("pending" as const),
          from_version: d.firmware_version,
          reason: skip?.code ?? null,
          message: skip?.message ?? null,
        };
      });
      for (let i = 0; i < members.length; i += MEMBERS_PER_INSERT) {
        await trx
          .insertInto("rollout_devices")
          .values(members.slice(i, i + MEMBERS_PER_INSERT))
          .execute();
      }
      return rolloutId;
    });
    this.deps.logger.info({ rolloutId: id, firmware: body.firmware, devices: devices.length }, "rollout created");
    this.live.rollout(id);
    await this.advance(id);
    return this.view(await this.row(principal.orgId, id), true);
  }

  /** The rollouts the principal may read (holding `firmware:read` on every targeted group), newest first. */
  async list(principal: Principal): Promise<RolloutView[]> {
    const rows = await this.db
      .selectFrom("rollouts")
      .selectAll()
      .where("org_id", "=", principal.orgId)
      .orderBy("id", "desc")
      .execute();
    for (const r of rows) this.remember(r);
    const views: RolloutView[] = [];
    for (const r of rows.filter((r) => this.allowed(principal, r, "firmware:read")).slice(0, LIST_LIMIT)) {
      views.push(await this.view(r, false));
    }
    return views;
  }

  /** The groups a right on the rollout must cover; ROLLOUT_NOT_FOUND outside the organization. */
  async groupPaths(orgId: number, id: number): Promise<string[]> {
    return JSON.parse((await this.row(orgId, id)).group_paths_json) as string[];
  }

  async show(orgId: number, id: number): Promise<RolloutView> {
    return this.view(await this.row(orgId, id), true);
  }

  /** The rollout's devices in target order (at most DEVICE_LIST_LIMIT), each with its current job. */
  async devices(orgId: number, id: number): Promise<RolloutDeviceList> {
    const row = await this.row(orgId, id);
    const members = await this.db
      .selectFrom("rollout_devices")
      .selectAll()
      .where("rollout_id", "=", row.id)
      .orderBy("position")
      .limit(DEVICE_LIST_LIMIT)
      .execute();
    const { n: total } = await this.db
      .selectFrom("rollout_devices")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("rollout_id", "=", row.id)
      .executeTakeFirstOrThrow();
    const jobs = await this.deps.jobs.summaries(
      members.flatMap((m) => {
        const jobId = m.rollback_job_id ?? m.job_id;
        return jobId === null ? [] : [jobId];
      }),
    );
    const items: RolloutDeviceList["items"] = [];
    for (const m of members) {
      // The registry owns the names; a device deleted meanwhile leaves the list with its row (cascade).
      const device = await this.deps.registry.findById(m.device_id);
      if (!device) continue;
      const job = jobs.get(m.rollback_job_id ?? m.job_id ?? "");
      items.push({
        device: device.uuid,
        name: device.name,
        phase: m.phase,
        state: m.state,
        reason: m.reason,
        message: m.message,
        attempts: m.attempts,
        fromVersion: m.from_version,
        rollback: m.rollback_state,
        job:
          job === undefined
            ? null
            : {
                id: job.id,
                status: job.status,
                step: job.step,
                progress: job.progress,
                updated: new Date(job.updatedAt).toISOString(),
              },
      });
    }
    return { total: Number(total), items };
  }

  async pause(orgId: number, id: number): Promise<RolloutView> {
    const row = await this.row(orgId, id);
    if (row.state !== "running")
      throw new FieldgateError("ROLLOUT_STATE", `rollout ${id} is ${row.state}, not running`);
    await this.setState(id, "paused", "OPERATOR", "paused by an operator");
    return this.show(orgId, id);
  }

  /** Resumes a paused rollout; one held below its success threshold goes on to the next phase. */
  async resume(orgId: number, id: number): Promise<RolloutView> {
    const row = await this.row(orgId, id);
    if (row.state !== "paused") throw new FieldgateError("ROLLOUT_STATE", `rollout ${id} is ${row.state}, not paused`);
    const held = row.stop_reason === "SUCCESS_THRESHOLD_NOT_MET";
    // Conditional on still being paused: two resumes at once move a held phase on once.
    const resumed = await this.db
      .updateTable("rollouts")
      .set((eb) => ({
        state: "running",
        stop_reason: null,
        stop_message: null,
        updated_at: this.clock(),
        current_phase: eb("current_phase", "+", held ? 1 : 0),
      }))
      .where("id", "=", id)
      .where("state", "=", "paused")
      .executeTakeFirst();
    if (affectedRows(resumed) === 0) throw new FieldgateError("ROLLOUT_STATE", `rollout ${id} is no longer paused`);
    this.live.rollout(id);
    await this.advance(id);
    return this.show(orgId, id);
  }

  async abort(orgId: number, id: number): Promise<RolloutView> {
    const row = await this.row(orgId, id);
    if (row.state === "completed" || row.state === "aborted") {
      throw new FieldgateError("ROLLOUT_STATE", `rollout ${id} is already ${row.state}`);
    }
    await this.stop(row, "OPERATOR", "aborted by an operator");
    return this.show(orgId, id);
  }

  /** A job ended: records it on its device's row, then moves the rollout on. */
  async jobFinished(jobId: string, rolloutId: number | null): Promise<void> {
    if (rolloutId === null) return;
    const job = await this.deps.jobs.statusOf(jobId);
    if (!job) return;
    const member = await this.db
      .selectFrom("rollout_devices")
      .selectAll()
      .where("rollout_id", "=", rolloutId)
      .where((eb) => eb.or([eb("job_id", "=", jobId), eb("rollback_job_id", "=", jobId)]))
      .executeTakeFirst();
    if (!member) return;
    const rollout = this.remember(
      await this.db.selectFrom("rollouts").selectAll().where("id", "=", rolloutId).executeTakeFirstOrThrow(),
    );
    this.live.rollout(rolloutId);
    const now = this.clock();
    if (member.rollback_job_id === jobId) {
      await this.db
        .updateTable("rollout_devices")
        .set({ rollback_state: job.status === "SUCCEEDED" ? "succeeded" : "failed" })
        .where("rollout_id", "=", rolloutId)
        .where("device_id", "=", member.device_id)
        .execute();
      return;
    }
    let state: RolloutDeviceState;
    if (job.status === "SUCCEEDED") state = "succeeded";
    else if (job.status === "CANCELLED" || job.reason === "JOB_CANCELLED") state = "cancelled";
    // The device already has this version or a newer one: neither a success nor a failure.
    else if (job.status === "REJECTED") state = "skipped";
    // Retries only while the rollout runs: an aborted one starts nothing new.
    else if (member.attempts <= rollout.retries && rollout.state === "running") state = "pending";
    else state = "failed";
    await this.db
      .updateTable("rollout_devices")
      .set({ state, reason: job.reason, message: job.message, finished_at: state === "pending" ? null : now })
      .where("rollout_id", "=", rolloutId)
      .where("device_id", "=", member.device_id)
      .execute();
    // A device that finished its install after the abort is sent back like the others.
    if (rollout.state === "aborted" && rollout.auto_rollback === 1 && state === "succeeded")
      await this.rollBack(rollout);
    await this.advance(rolloutId);
  }

  /** One pass over every running rollout; returns how many jobs it started. */
  async tick(): Promise<number> {
    await this.deps.jobs.expireOverdue();
    const ids = await this.db.selectFrom("rollouts").select("id").where("state", "=", "running").execute();
    let started = 0;
    for (const { id } of ids) started += await this.advance(id);
    return started;
  }

  /**
   * Moves one running rollout on: abort past the failure threshold; advance or hold a finished
   * phase; start pending installs of the current phase as the rate and the window allow.
   */
  private async advance(id: number): Promise<number> {
    let row = this.remember(await this.db.selectFrom("rollouts").selectAll().where("id", "=", id).executeTakeFirst());
    if (row?.state !== "running") return 0;
    const totals = await this.counts(id);
    if (failureThresholdCrossed(totals.failed, totals.started, row.failure_threshold)) {
      await this.stop(
        row,
        "FAILURE_THRESHOLD",
        `${totals.failed} of ${totals.started} started devices failed, at or above the ${pct(row.failure_threshold)} threshold`,
      );
      return 0;
    }
    const phaseCount = (JSON.parse(row.phases_json) as PhaseMark[]).length;
    // Finished phases advance one after another (a phase may also be empty or all skipped).
    for (;;) {
      const c = await this.phaseCounts(id, row.current_phase);
      const verdict = phaseVerdict(c, row.success_threshold);
      if (verdict === "open") break;
      if (verdict === "hold") {
        await this.setState(
          id,
          "paused",
          "SUCCESS_THRESHOLD_NOT_MET",
          `phase ${row.current_phase + 1} finished with ${c.succeeded} of ${c.total - c.skipped} succeeded, below ${pct(row.success_threshold)}; resume to go on, or abort`,
        );
        return 0;
      }
      if (row.current_phase + 1 >= phaseCount) {
        await this.setState(id, "completed", null, null);
        this.deps.logger.info({ rolloutId: id }, "rollout completed");
        return 0;
      }
      // Conditional on the phase read: of two passes at once (a tick and a job's end), one moves it on.
      const moved = await this.db
        .updateTable("rollouts")
        .set({ current_phase: row.current_phase + 1, updated_at: this.clock() })
        .where("id", "=", id)
        .where("current_phase", "=", row.current_phase)
        .where("state", "=", "running")
        .executeTakeFirst();
      if (affectedRows(moved) === 0) return 0;
      this.live.rollout(id);
      row = { ...row, current_phase: row.current_phase + 1 };
    }
    return this.startPending(row);
  }

  /**
   * Starts the current phase's pending installs as the window, the rate and the tick's budget
   * allow. The count of recent starts, the starts and the booked slot are one transaction holding
   * the rollout's row, so two passes at once (two ticks, a tick and a job's end) never exceed the
   * rate together: on PostgreSQL the second waits on `FOR UPDATE`, on SQLite the single writer
   * serializes them. Devices hear of their jobs only after the commit.
   */
  private async startPending(read: RolloutRow): Promise<number> {
    const { id } = read;
    // Asked before the transaction: inside it, only `trx` may be used (SQLite has one connection).
    const image = await this.imageOf(read);
    const staged: StagedJob[] = [];
    const started = await this.db.transaction().execute(async (trx) => {
      let locked = trx.selectFrom("rollouts").selectAll().where("id", "=", id);
      if (this.deps.database.dialect === "postgres") locked = locked.forUpdate();
      const row = await locked.executeTakeFirst();
      if (row?.state !== "running") return 0;
      const now = this.clock();
      const window = row.window_json === null ? null : (JSON.parse(row.window_json) as MaintenanceWindow);
      if (window && !windowOpen(window, now)) return 0;
      let budget = this.deps.startsPerTick ?? 500;
      const rate = row.rate_json === null ? null : (JSON.parse(row.rate_json) as Rate);
      if (rate) {
        const recent = await this.deps.jobs.startedSince(row.id, now - rate.unitMs, trx);
        budget = Math.min(budget, startsAllowed(rate, now, row.last_start_at, recent));
      }
      if (budget <= 0) return 0;
      const pending = await trx
        .selectFrom("rollout_devices")
        .selectAll()
        .where("rollout_id", "=", row.id)
        .where("state", "=", "pending")
        .where("phase", "<=", row.current_phase)
        .orderBy("position")
        .limit(budget)
        .execute();
      let count = 0;
      for (const member of pending) {
        const device = await this.deps.registry.findById(member.device_id, trx);
        try {
          if (!device || device.retired_at !== null) throw new FieldgateError("DEVICE_NOT_FOUND", "the device is gone");
          const job = await this.deps.jobs.stage(
            device,
            image,
            { timeoutMs: row.job_timeout_ms, rolloutId: row.id },
            trx,
          );
          await trx
            .updateTable("rollout_devices")
            .set((eb) => ({
              state: "active",
              job_id: job.view.id,
              attempts: eb("attempts", "+", 1),
              started_at: now,
              reason: null,
              message: null,
            }))
            .where("rollout_id", "=", row.id)
            .where("device_id", "=", member.device_id)
            .execute();
          staged.push(job);
        } catch (err) {
          // Only refusals before any SQL land here (an SQL error aborts the transaction on PostgreSQL).
          if (!(err instanceof FieldgateError)) throw err;
          await trx
            .updateTable("rollout_devices")
            .set({ state: "failed", reason: err.code, message: err.message, finished_at: now })
            .where("rollout_id", "=", row.id)
            .where("device_id", "=", member.device_id)
            .execute();
        }
        count += 1;
      }
      if (count > 0) {
        // With a rate, the slots used are booked (not "now"), so a tick's remainder carries over and
        // the mean reaches the rate; at most one slot of credit is kept, so a pause does not bank a burst.
        // Whole milliseconds (an integer column on PostgreSQL), rounded up so that rounding never starts one early.
        const last =
          rate && row.last_start_at !== null
            ? Math.min(
                now,
                Math.ceil(
                  Math.max(row.last_start_at + (count * rate.unitMs) / rate.count, now - rate.unitMs / rate.count),
                ),
              )
            : now;
        await trx
          .updateTable("rollouts")
          .set({ last_start_at: last, updated_at: now })
          .where("id", "=", row.id)
          .execute();
      }
      return count;
    });
    for (const job of staged) this.deps.jobs.announce(job);
    if (started > 0) this.live.rollout(id);
    return started;
  }

  /**
   * Aborts: nothing new starts, jobs the devices have not taken are cancelled, and with
   * auto-rollback every device this rollout updated is sent back to the version it had.
   */
  private async stop(row: RolloutRow, reason: string, message: string): Promise<void> {
    await this.setState(row.id, "aborted", reason, message);
    this.deps.logger.warn({ rolloutId: row.id, reason }, `rollout aborted: ${message}`);
    const open = await this.db
      .selectFrom("rollout_devices")
      .select("job_id")
      .where("rollout_id", "=", row.id)
      .where("state", "=", "active")
      .where("job_id", "is not", null)
      .execute();
    const cancelled = await this.deps.jobs.cancel(open.flatMap((r) => (r.job_id === null ? [] : [r.job_id])));
    for (const jobId of cancelled) {
      await this.db
        .updateTable("rollout_devices")
        .set({ state: "cancelled", finished_at: this.clock() })
        .where("job_id", "=", jobId)
        .execute();
    }
    await this.db
      .updateTable("rollout_devices")
      .set({ state: "cancelled", reason: null, message: "the rollout was aborted before this device's turn" })
      .where("rollout_id", "=", row.id)
      .where("state", "=", "pending")
      .execute();
    if (row.auto_rollback === 1) await this.rollBack(row);
  }

  private async rollBack(row: RolloutRow): Promise<void> {
    const image = await this.imageOf(row);
    const updated = await this.db
      .selectFrom("rollout_devices")
      .selectAll()
      .where("rollout_id", "=", row.id)
      .where("state", "=", "succeeded")
      .where("rollback_state", "is", null)
      .orderBy("position")
      .execute();
    const mark = async (member: MemberRow, jobId: string | null, state: string, why: string | null) => {
      await this.db
        .updateTable("rollout_devices")
        .set((eb) => ({
          rollback_job_id: jobId,
          rollback_state: state,
          message: eb.fn.coalesce(eb.val(why), "message"),
        }))
        .where("rollout_id", "=", row.id)
        .where("device_id", "=", member.device_id)
        .execute();
    };
    for (const member of updated) {
      const device = await this.deps.registry.findById(member.device_id);
      const previous =
        member.from_version === null || member.from_version === image.version
          ? undefined
          : await this.deps.firmware.find(row.org_id, image.name, member.from_version);
      if (!device || !previous) {
        const why =
          member.from_version === null
            ? "ROLLBACK_UNAVAILABLE: the device never reported the version it had"
            : `ROLLBACK_UNAVAILABLE: ${image.name}@${member.from_version} is not in the store`;
        await mark(member, null, "unavailable", why);
        continue;
      }
      try {
        // Not rate-limited and not held to the window: a bad version is taken back at once.
        const job = await this.deps.jobs.createFor(device, previous, {
          timeoutMs: row.job_timeout_ms,
          rolloutId: row.id,
          rollback: true,
        });
        await mark(member, job.id, "active", null);
      } catch (err) {
        await mark(member, null, "failed", `ROLLBACK_UNAVAILABLE: ${(err as Error).message}`);
      }
    }
  }

  private async setState(
    id: number,
    state: RolloutState,
    reason: string | null,
    message: string | null,
  ): Promise<void> {
    await this.db
      .updateTable("rollouts")
      .set({ state, stop_reason: reason, stop_message: message, updated_at: this.clock() })
      .where("id", "=", id)
      .execute();
    this.live.rollout(id);
  }

  private async resolveTarget(principal: Principal, target: RolloutTarget): Promise<DeviceRow[]> {
    const given = (["devices", "tag", "query", "group"] as const).filter((k) => target[k] !== undefined);
    if (given.length !== 1) {
      throw new FieldgateError(
        "VALIDATION_FAILED",
        "give exactly one target: devices, tag, query or group",
        given.length === 0 ? "target" : `target.${given[1]}`,
      );
    }
    const { registry, policy } = this.deps;
    if (target.devices) {
      const seen = new Set<number>();
      const rows: DeviceRow[] = [];
      for (const [i, uuid] of target.devices.entries()) {
        const field = `target.devices[${i}]`;
        const row = await registry.findByUuid(uuid.toLowerCase());
        // Another tenant's device and one out of scope read alike: not found.
        if (
          !row ||
          row.org_id !== principal.orgId ||
          !policy.can(principal, "firmware:write", await registry.groupPath(row))
        ) {
          throw new FieldgateError("DEVICE_NOT_FOUND", `no device ${uuid}`, field);
        }
        if (row.retired_at !== null) throw new FieldgateError("DEVICE_RETIRED", `${uuid} is retired`, field);
        if (seen.has(row.id)) continue;
        seen.add(row.id);
        rows.push(row);
      }
      return rows;
    }
    const query: ListDevicesQuery = target.tag
      ? { tag: [target.tag] }
      : target.group !== undefined
        ? { group: String(target.group), includeSubgroups: true }
        : this.parseQuery(target.query ?? "");
    const filters = await registry.resolveFilters(principal.orgId, query, (path) =>
      policy.sees(principal, "devices:read", path, "scope-and-above"),
    );
    const scope = policy.sqlScope(principal, "firmware:write", "g.path");
    return registry.matching(principal.orgId, scope, { ...filters, sort: "createdAt" });
  }

  /** The device list's filters from a query string (`type=gw&tag=a&tag=b&online=true`). */
  private parseQuery(text: string): ListDevicesQuery {
    const params = new URLSearchParams(text);
    const value: Record<string, unknown> = {};
    for (const [key, raw] of params) {
      if (key === "limit" || key === "offset" || key === "sort") {
        throw new FieldgateError(
          "VALIDATION_FAILED",
          `${key} has no meaning in a rollout target`,
          `target.query.${key}`,
        );
      }
      if (key === "tag") value.tag = [...((value.tag as string[] | undefined) ?? []), raw];
      else if (["online", "includeSubgroups", "retired"].includes(key))
        value[key] = raw === "true" ? true : raw === "false" ? false : raw;
      else value[key] = raw;
    }
    return this.deps.validator.parse(ListDevicesQuery, value, "target.query");
  }

  /** The firmware-compat ids of the devices' types, asked of the device types once per type. */
  private async compatIds(devices: readonly DeviceRow[]): Promise<(typeId: number) => string | undefined> {
    const byId = new Map<number, string | undefined>();
    for (const d of devices) {
      if (d.type_id !== null && !byId.has(d.type_id))
        byId.set(d.type_id, await this.deps.types.firmwareCompat(d.type_id));
    }
    return (typeId) => byId.get(typeId);
  }

  private allowed(principal: Principal, row: RolloutRow, permission: "firmware:read" | "firmware:write"): boolean {
    return (JSON.parse(row.group_paths_json) as string[]).every((p) => this.deps.policy.can(principal, permission, p));
  }

  /** Its own handle, or the caller's transaction. */
  private on(executor?: Executor): Kysely<RolloutTables> {
    return (executor as Kysely<RolloutTables> | undefined) ?? this.db;
  }

  private async row(orgId: number, id: number): Promise<RolloutRow> {
    const row = await this.db
      .selectFrom("rollouts")
      .selectAll()
      .where("id", "=", id)
      .where("org_id", "=", orgId)
      .executeTakeFirst();
    if (!row) throw rolloutNotFound(id);
    return this.remember(row);
  }

  private async imageOf(row: RolloutRow): Promise<FirmwareRecord> {
    const image = await this.deps.firmware.byId(row.firmware_id);
    if (!image) throw new FieldgateError("FIRMWARE_NOT_FOUND", `rollout ${row.id}'s image is gone`);
    return image;
  }

  private async stateCounts(id: number, phase?: number) {
    let query = this.db
      .selectFrom("rollout_devices")
      .select((eb) => ["phase", "state", "rollback_state", eb.fn.countAll<number>().as("n")])
      .where("rollout_id", "=", id);
    if (phase !== undefined) query = query.where("phase", "=", phase);
    const rows = await query.groupBy(["phase", "state", "rollback_state"]).execute();
    return rows.map((r) => ({ ...r, n: Number(r.n) }));
  }

  private async counts(id: number): Promise<ReturnType<typeof countsOf>> {
    return countsOf(await this.stateCounts(id));
  }

  private async phaseCounts(id: number, phase: number): Promise<ReturnType<typeof countsOf>> {
    return countsOf(await this.stateCounts(id, phase));
  }

  private async view(row: RolloutRow, detailed: boolean): Promise<RolloutView> {
    const image = await this.deps.firmware.byId(row.firmware_id);
    const marks = JSON.parse(row.phases_json) as PhaseMark[];
    const now = this.clock();
    const window = row.window_json === null ? null : (JSON.parse(row.window_json) as MaintenanceWindow);
    const perPhase = await this.stateCounts(row.id);
    const all = countsOf(perPhase);
    let waitingFor: string | null = null;
    if (row.state === "running" && all.pending > 0) {
      if (window && !windowOpen(window, now)) waitingFor = "maintenance-window";
      else if (row.rate_json !== null) waitingFor = "rate";
    }
    const view: RolloutView = {
      id: row.id,
      firmware: { name: image?.name ?? "?", version: image?.version ?? "?" },
      state: row.state,
      stopReason: row.stop_reason,
      stopMessage: row.stop_message,
      waitingFor,
      nextWindowAt: window ? isoOrNull(nextWindowOpening(window, now)) : null,
      target: JSON.parse(row.target_json) as RolloutTarget,
      phases: marks.map((mark, index) => {
        const counts = countsOf(perPhase.filter((p) => p.phase === index));
        return {
          index,
          mark: "percent" in mark ? `${mark.percent}%` : String(mark.count),
          size: counts.total,
          counts: publicCounts(counts),
        };
      }),
      currentPhase: row.current_phase,
      counts: publicCounts(all),
      successThreshold: pct(row.success_threshold),
      failureThreshold: pct(row.failure_threshold),
      rate: row.rate_json === null ? null : formatRate(JSON.parse(row.rate_json) as Rate),
      maintenanceWindow: window ? `${window.cron}, ${formatDuration(window.durationMs)}, ${window.timezone}` : null,
      timeout: formatDuration(row.job_timeout_ms),
      retries: row.retries,
      autoRollback: row.auto_rollback === 1,
      createdBy: row.created_by,
      created: new Date(row.created_at).toISOString(),
      updated: new Date(row.updated_at).toISOString(),
    };
    if (detailed) view.failing = await this.failing(row.id);
    return view;
  }

  /** The devices that failed, are being rolled back, or wait for a retry, in target order (at most 1000). */
  private async failing(id: number): Promise<NonNullable<RolloutView["failing"]>> {
    const members = await this.db
      .selectFrom("rollout_devices")
      .selectAll()
      .where("rollout_id", "=", id)
      .where((eb) =>
        eb.or([
          eb("state", "=", "failed"),
          eb("rollback_state", "is not", null),
          eb.and([eb("state", "=", "pending"), eb("attempts", ">", 0)]),
        ]),
      )
      .orderBy("position")
      .limit(1000)
      .execute();
    const uuids = await this.deps.registry.uuidsByIds(members.map((m) => m.device_id));
    return members.flatMap((m) => {
      const uuid = uuids.get(m.device_id);
      return uuid === undefined
        ? []
        : [
            {
              device: uuid,
              phase: m.phase,
              status: m.state,
              reason: m.reason,
              message: m.message,
              attempts: m.attempts,
              rollback: m.rollback_state,
            },
          ];
    });
  }
}

function skipReason(
  device: DeviceRow,
  image: FirmwareRecord,
  compatOf: (typeId: number) => string | undefined,
): { code: string; message: string } | undefined {
  const compat = device.type_id === null ? undefined : compatOf(device.type_id);
  if (compat === undefined || !image.compatible.includes(compat)) {
    return {
      code: "FIRMWARE_INCOMPATIBLE",
      message: compat === undefined ? "the device has no type" : `the image is not made for ${compat}`,
    };
  }
  if (device.firmware_version === image.version) {
    return { code: "FIRMWARE_NOT_NEWER", message: `the device already runs ${image.version}` };
  }
  return undefined;
}

/** Position → phase index, from the phase sizes. */
function phaseIndexer(sizes: readonly number[]): (position: number) => number {
  const ends: number[] = [];
  let sum = 0;
  for (const size of sizes) {
    sum += size;
    ends.push(sum);
  }
  return (position) => {
    const index = ends.findIndex((end) => position < end);
    return index === -1 ? sizes.length - 1 : index;
  };
}

function countsOf(rows: readonly StateCount[]) {
  const c = { total: 0, pending: 0, active: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0, rolledBack: 0 };
  for (const r of rows) {
    c.total += r.n;
    c[r.state === "active" ? "active" : r.state] += r.n;
    if (r.rollback_state === "succeeded") c.rolledBack += r.n;
  }
  // Cancelled devices never ran: a phase with them is finished, and they count for neither side.
  return {
    ...c,
    open: c.pending + c.active,
    started: c.active + c.succeeded + c.failed,
    skipped: c.skipped + c.cancelled,
  };
}

function publicCounts(c: ReturnType<typeof countsOf>) {
  return {
    total: c.total,
    pending: c.pending,
    inProgress: c.active,
    succeeded: c.succeeded,
    failed: c.failed,
    skipped: c.skipped - c.cancelled,
    cancelled: c.cancelled,
    rolledBack: c.rolledBack,
  };
}

const pct = (fraction: number) => `${Math.round(fraction * 10_000) / 100}%`;

const isoOrNull = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** What an unknown rollout id gets; also a rollout reaching outside the caller's scope. */
export function rolloutNotFound(id: number): FieldgateError {
  return new FieldgateError("ROLLOUT_NOT_FOUND", `no rollout ${id}`);
}

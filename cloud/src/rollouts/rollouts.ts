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
import type Database from "better-sqlite3";
import type { Logger } from "pino";
import type { AccessPolicy, Principal } from "../access/access-policy.js";
import type { EmbeddedFirmwareLookup } from "../firmware/embedded-firmware-lookup.js";
import type { FirmwareImageUser, FirmwareRecord } from "../firmware/firmware-record.js";
import { type DeviceJobs, parseFirmwareRef } from "../jobs/device-jobs.js";
import { type LiveRolloutRef, type LiveSink, NO_LIVE } from "../live/live-feed.js";
import type { DeviceRegistry, DeviceRow } from "../registry/device-registry.js";
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

export interface RolloutsDeps {
  db: Database.Database;
  registry: DeviceRegistry;
  policy: AccessPolicy;
  firmware: EmbeddedFirmwareLookup;
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

interface RolloutRow {
  id: number;
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

interface MemberRow {
  device_id: number;
  position: number;
  phase: number;
  state: RolloutDeviceState;
  attempts: number;
  job_id: string | null;
  from_version: string | null;
  reason: string | null;
  message: string | null;
  rollback_job_id: string | null;
  rollback_state: string | null;
}

const DEFAULTS = { phases: "100%", successThreshold: "100%", failureThreshold: "100%", retries: 0 };
const LIST_LIMIT = 200;
const DEVICE_LIST_LIMIT = 1000;

/**
 * Phased rollouts (issue #5), after hawkBit's rollout groups and AWS IoT Jobs' rollout and abort
 * configs. The target set is a snapshot taken at creation; each device has a phase and a place.
 * `tick` starts installs in the current phase (rate and maintenance window permitting), retries
 * failures, advances a finished phase that met the success threshold (or holds it), and aborts
 * when failures cross the failure threshold. Job ends arrive through `jobFinished`. All state is
 * in SQLite, so a restarted cloud goes on where it stopped.
 */
export class Rollouts implements FirmwareImageUser {
  private readonly clock: () => number;

  private readonly live: LiveSink;

  constructor(private readonly deps: RolloutsDeps) {
    this.clock = deps.clock ?? Date.now;
    this.live = deps.live ?? NO_LIVE;
  }

  /** Where a rollout belongs, for the live feed; undefined when there is no such rollout. */
  liveRef(id: number): LiveRolloutRef | undefined {
    const row = this.deps.db.prepare("SELECT org_id, group_paths_json FROM rollouts WHERE id = ?").get(id) as
      | { org_id: number; group_paths_json: string }
      | undefined;
    return row && { orgId: row.org_id, groupPaths: JSON.parse(row.group_paths_json) as string[] };
  }

  /** True while a rollout in an active state uses the image (the firmware store asks before a delete). */
  usesImage(firmwareId: number): boolean {
    return (
      this.deps.db
        .prepare(
          `SELECT 1 FROM rollouts WHERE firmware_id = ? AND state IN (${ACTIVE_ROLLOUT_STATES.map(() => "?").join(",")}) LIMIT 1`,
        )
        .get(firmwareId, ...ACTIVE_ROLLOUT_STATES) !== undefined
    );
  }

  /** Deletes the image's (finished) rollouts with their devices; inside the firmware store's delete transaction. */
  releaseImage(firmwareId: number): void {
    this.deps.db.prepare("DELETE FROM rollouts WHERE firmware_id = ?").run(firmwareId);
  }

  async create(principal: Principal, body: CreateRolloutBody): Promise<RolloutView> {
    const { db } = this.deps;
    const { name, version } = parseFirmwareRef(body.firmware);
    const image = this.deps.firmware.get(principal.orgId, name, version);
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
    const compatOf = this.compatIds(principal.orgId);
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
    const groupPaths = [...new Set(await Promise.all(devices.map((d) => this.deps.registry.groupPath(d))))];
    const id = db.transaction(() => {
      const created = db
        .prepare(
          `INSERT INTO rollouts (org_id, firmware_id, group_paths_json, target_json, phases_json, success_threshold,
             failure_threshold, rate_json, window_json, job_timeout_ms, retries, auto_rollback, state,
             current_phase, created_by, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', 0, ?, ?, ?)`,
        )
        .run(
          principal.orgId,
          image.id,
          JSON.stringify(groupPaths),
          JSON.stringify(body.target),
          JSON.stringify(marks),
          successThreshold,
          failureThreshold,
          rate && JSON.stringify(rate),
          window && JSON.stringify(window),
          timeoutMs,
          body.retries ?? DEFAULTS.retries,
          body.autoRollback ? 1 : 0,
          `${principal.kind}:${principal.id}`,
          now,
          now,
        );
      const rolloutId = Number(created.lastInsertRowid);
      const insert = db.prepare(
        `INSERT INTO rollout_devices (rollout_id, device_id, position, phase, state, from_version, reason, message)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      devices.forEach((d, position) => {
        const skip = skipReason(d, image, compatOf);
        insert.run(
          rolloutId,
          d.id,
          position,
          phaseOf(position),
          skip ? "skipped" : "pending",
          d.firmware_version,
          skip?.code ?? null,
          skip?.message ?? null,
        );
      });
      return rolloutId;
    })();
    this.deps.logger.info({ rolloutId: id, firmware: body.firmware, devices: devices.length }, "rollout created");
    this.live.rollout(id);
    this.advance(id);
    return this.view(this.row(principal.orgId, id), true);
  }

  /** The rollouts the principal may read (holding `firmware:read` on every targeted group), newest first. */
  list(principal: Principal): RolloutView[] {
    const rows = this.deps.db
      .prepare("SELECT * FROM rollouts WHERE org_id = ? ORDER BY id DESC")
      .all(principal.orgId) as RolloutRow[];
    return rows
      .filter((r) => this.allowed(principal, r, "firmware:read"))
      .slice(0, LIST_LIMIT)
      .map((r) => this.view(r, false));
  }

  /** The groups a right on the rollout must cover; ROLLOUT_NOT_FOUND outside the organization. */
  groupPaths(orgId: number, id: number): string[] {
    return JSON.parse(this.row(orgId, id).group_paths_json) as string[];
  }

  show(orgId: number, id: number): RolloutView {
    return this.view(this.row(orgId, id), true);
  }

  /** The rollout's devices in target order (at most DEVICE_LIST_LIMIT), each with its current job. */
  devices(orgId: number, id: number): RolloutDeviceList {
    const row = this.row(orgId, id);
    const members = this.deps.db
      .prepare(
        `SELECT m.*, d.uuid, d.name, j.id AS j_id, j.status AS j_status, j.step AS j_step,
           j.progress_done AS j_done, j.progress_total AS j_total, j.updated_at AS j_updated
         FROM rollout_devices m JOIN devices d ON d.id = m.device_id
         LEFT JOIN jobs j ON j.id = coalesce(m.rollback_job_id, m.job_id)
         WHERE m.rollout_id = ? ORDER BY m.position LIMIT ?`,
      )
      .all(row.id, DEVICE_LIST_LIMIT) as (MemberRow & {
      uuid: string;
      name: string | null;
      j_id: string | null;
      j_status: string | null;
      j_step: string | null;
      j_done: number | null;
      j_total: number | null;
      j_updated: number | null;
    })[];
    const total = (
      this.deps.db.prepare("SELECT count(*) AS n FROM rollout_devices WHERE rollout_id = ?").get(row.id) as {
        n: number;
      }
    ).n;
    return {
      total,
      items: members.map((m) => ({
        device: m.uuid,
        name: m.name,
        phase: m.phase,
        state: m.state,
        reason: m.reason,
        message: m.message,
        attempts: m.attempts,
        fromVersion: m.from_version,
        rollback: m.rollback_state,
        job:
          m.j_id === null
            ? null
            : {
                id: m.j_id,
                status: m.j_status ?? "CREATED",
                step: m.j_step,
                progress: m.j_done !== null && m.j_total !== null ? { done: m.j_done, total: m.j_total } : null,
                updated: new Date(m.j_updated ?? 0).toISOString(),
              },
      })),
    };
  }

  pause(orgId: number, id: number): RolloutView {
    const row = this.row(orgId, id);
    if (row.state !== "running")
      throw new FieldgateError("ROLLOUT_STATE", `rollout ${id} is ${row.state}, not running`);
    this.setState(id, "paused", "OPERATOR", "paused by an operator");
    return this.show(orgId, id);
  }

  /** Resumes a paused rollout; one held below its success threshold goes on to the next phase. */
  resume(orgId: number, id: number): RolloutView {
    const row = this.row(orgId, id);
    if (row.state !== "paused") throw new FieldgateError("ROLLOUT_STATE", `rollout ${id} is ${row.state}, not paused`);
    const held = row.stop_reason === "SUCCESS_THRESHOLD_NOT_MET";
    this.deps.db
      .prepare(
        `UPDATE rollouts SET state = 'running', stop_reason = NULL, stop_message = NULL, updated_at = ?,
         current_phase = current_phase + ? WHERE id = ?`,
      )
      .run(this.clock(), held ? 1 : 0, id);
    this.live.rollout(id);
    this.advance(id);
    return this.show(orgId, id);
  }

  abort(orgId: number, id: number): RolloutView {
    const row = this.row(orgId, id);
    if (row.state === "completed" || row.state === "aborted") {
      throw new FieldgateError("ROLLOUT_STATE", `rollout ${id} is already ${row.state}`);
    }
    this.stop(row, "OPERATOR", "aborted by an operator");
    return this.show(orgId, id);
  }

  /** A job ended: records it on its device's row, then moves the rollout on. */
  jobFinished(jobId: string, rolloutId: number | null): void {
    if (rolloutId === null) return;
    const job = this.deps.jobs.statusOf(jobId);
    if (!job) return;
    const { db } = this.deps;
    const member = db
      .prepare("SELECT * FROM rollout_devices WHERE rollout_id = ? AND (job_id = ? OR rollback_job_id = ?)")
      .get(rolloutId, jobId, jobId) as MemberRow | undefined;
    if (!member) return;
    this.live.rollout(rolloutId);
    const now = this.clock();
    if (member.rollback_job_id === jobId) {
      db.prepare("UPDATE rollout_devices SET rollback_state = ? WHERE rollout_id = ? AND device_id = ?").run(
        job.status === "SUCCEEDED" ? "succeeded" : "failed",
        rolloutId,
        member.device_id,
      );
      return;
    }
    const rollout = db.prepare("SELECT * FROM rollouts WHERE id = ?").get(rolloutId) as RolloutRow;
    let state: RolloutDeviceState;
    if (job.status === "SUCCEEDED") state = "succeeded";
    else if (job.status === "CANCELLED" || job.reason === "JOB_CANCELLED") state = "cancelled";
    // The device already has this version or a newer one: neither a success nor a failure.
    else if (job.status === "REJECTED") state = "skipped";
    // Retries only while the rollout runs: an aborted one starts nothing new.
    else if (member.attempts <= rollout.retries && rollout.state === "running") state = "pending";
    else state = "failed";
    db.prepare(
      `UPDATE rollout_devices SET state = ?, reason = ?, message = ?, finished_at = ?
       WHERE rollout_id = ? AND device_id = ?`,
    ).run(state, job.reason, job.message, state === "pending" ? null : now, rolloutId, member.device_id);
    // A device that finished its install after the abort is sent back like the others.
    if (rollout.state === "aborted" && rollout.auto_rollback === 1 && state === "succeeded") this.rollBack(rollout);
    this.advance(rolloutId);
  }

  /** One pass over every running rollout; returns how many jobs it started. */
  tick(): number {
    this.deps.jobs.expireOverdue();
    const ids = this.deps.db.prepare("SELECT id FROM rollouts WHERE state = 'running'").all() as { id: number }[];
    let started = 0;
    for (const { id } of ids) started += this.advance(id);
    return started;
  }

  /**
   * Moves one running rollout on: abort past the failure threshold; advance or hold a finished
   * phase; start pending installs of the current phase as the rate and the window allow.
   */
  private advance(id: number): number {
    const { db } = this.deps;
    let row = db.prepare("SELECT * FROM rollouts WHERE id = ?").get(id) as RolloutRow | undefined;
    if (row?.state !== "running") return 0;
    const totals = this.counts(id);
    if (failureThresholdCrossed(totals.failed, totals.started, row.failure_threshold)) {
      this.stop(
        row,
        "FAILURE_THRESHOLD",
        `${totals.failed} of ${totals.started} started devices failed, at or above the ${pct(row.failure_threshold)} threshold`,
      );
      return 0;
    }
    const phaseCount = (JSON.parse(row.phases_json) as PhaseMark[]).length;
    // Finished phases advance one after another (a phase may also be empty or all skipped).
    for (;;) {
      const verdict = phaseVerdict(this.phaseCounts(id, row.current_phase), row.success_threshold);
      if (verdict === "open") break;
      if (verdict === "hold") {
        const c = this.phaseCounts(id, row.current_phase);
        this.setState(
          id,
          "paused",
          "SUCCESS_THRESHOLD_NOT_MET",
          `phase ${row.current_phase + 1} finished with ${c.succeeded} of ${c.total - c.skipped} succeeded, below ${pct(row.success_threshold)}; resume to go on, or abort`,
        );
        return 0;
      }
      if (row.current_phase + 1 >= phaseCount) {
        this.setState(id, "completed", null, null);
        this.deps.logger.info({ rolloutId: id }, "rollout completed");
        return 0;
      }
      db.prepare("UPDATE rollouts SET current_phase = current_phase + 1, updated_at = ? WHERE id = ?").run(
        this.clock(),
        id,
      );
      this.live.rollout(id);
      row = { ...row, current_phase: row.current_phase + 1 };
    }
    return this.startPending(row);
  }

  private startPending(row: RolloutRow): number {
    const { db } = this.deps;
    const now = this.clock();
    const window = row.window_json === null ? null : (JSON.parse(row.window_json) as MaintenanceWindow);
    if (window && !windowOpen(window, now)) return 0;
    let budget = this.deps.startsPerTick ?? 500;
    const rate = row.rate_json === null ? null : (JSON.parse(row.rate_json) as Rate);
    if (rate) {
      const recent = this.deps.jobs.startedSince(row.id, now - rate.unitMs);
      budget = Math.min(budget, startsAllowed(rate, now, row.last_start_at, recent));
    }
    if (budget <= 0) return 0;
    const pending = db
      .prepare(
        `SELECT * FROM rollout_devices WHERE rollout_id = ? AND state = 'pending' AND phase <= ?
         ORDER BY position LIMIT ?`,
      )
      .all(row.id, row.current_phase, budget) as MemberRow[];
    const image = this.imageOf(row);
    let started = 0;
    for (const member of pending) {
      const device = this.deviceById(member.device_id);
      try {
        if (!device || device.retired_at !== null) throw new FieldgateError("DEVICE_NOT_FOUND", "the device is gone");
        const job = this.deps.jobs.createFor(device, image, { timeoutMs: row.job_timeout_ms, rolloutId: row.id });
        db.prepare(
          `UPDATE rollout_devices SET state = 'active', job_id = ?, attempts = attempts + 1, started_at = ?,
           reason = NULL, message = NULL WHERE rollout_id = ? AND device_id = ?`,
        ).run(job.id, now, row.id, member.device_id);
      } catch (err) {
        const code = err instanceof FieldgateError ? err.code : "INTERNAL";
        db.prepare(
          `UPDATE rollout_devices SET state = 'failed', reason = ?, message = ?, finished_at = ?
           WHERE rollout_id = ? AND device_id = ?`,
        ).run(code, (err as Error).message, now, row.id, member.device_id);
      }
      started += 1;
    }
    if (started > 0) {
      // With a rate, the slots used are booked (not "now"), so a tick's remainder carries over and
      // the mean reaches the rate; at most one slot of credit is kept, so a pause does not bank a burst.
      const last =
        rate && row.last_start_at !== null
          ? Math.min(
              now,
              Math.max(row.last_start_at + (started * rate.unitMs) / rate.count, now - rate.unitMs / rate.count),
            )
          : now;
      db.prepare("UPDATE rollouts SET last_start_at = ?, updated_at = ? WHERE id = ?").run(last, now, row.id);
      this.live.rollout(row.id);
    }
    return started;
  }

  /**
   * Aborts: nothing new starts, jobs the devices have not taken are cancelled, and with
   * auto-rollback every device this rollout updated is sent back to the version it had.
   */
  private stop(row: RolloutRow, reason: string, message: string): void {
    const { db } = this.deps;
    this.setState(row.id, "aborted", reason, message);
    this.deps.logger.warn({ rolloutId: row.id, reason }, `rollout aborted: ${message}`);
    const open = (
      db
        .prepare("SELECT job_id FROM rollout_devices WHERE rollout_id = ? AND state = 'active' AND job_id IS NOT NULL")
        .all(row.id) as { job_id: string }[]
    ).map((r) => r.job_id);
    for (const jobId of this.deps.jobs.cancel(open)) {
      db.prepare("UPDATE rollout_devices SET state = 'cancelled', finished_at = ? WHERE job_id = ?").run(
        this.clock(),
        jobId,
      );
    }
    db.prepare(
      "UPDATE rollout_devices SET state = 'cancelled', reason = NULL, message = ? WHERE rollout_id = ? AND state = 'pending'",
    ).run("the rollout was aborted before this device's turn", row.id);
    if (row.auto_rollback === 1) this.rollBack(row);
  }

  private rollBack(row: RolloutRow): void {
    const { db } = this.deps;
    const image = this.imageOf(row);
    const updated = db
      .prepare(
        `SELECT * FROM rollout_devices WHERE rollout_id = ? AND state = 'succeeded' AND rollback_state IS NULL
         ORDER BY position`,
      )
      .all(row.id) as MemberRow[];
    const mark = db.prepare(
      `UPDATE rollout_devices SET rollback_job_id = ?, rollback_state = ?, message = coalesce(?, message)
       WHERE rollout_id = ? AND device_id = ?`,
    );
    for (const member of updated) {
      const device = this.deviceById(member.device_id);
      const previous =
        member.from_version === null || member.from_version === image.version
          ? undefined
          : this.deps.firmware.find(row.org_id, image.name, member.from_version);
      if (!device || !previous) {
        const why =
          member.from_version === null
            ? "ROLLBACK_UNAVAILABLE: the device never reported the version it had"
            : `ROLLBACK_UNAVAILABLE: ${image.name}@${member.from_version} is not in the store`;
        mark.run(null, "unavailable", why, row.id, member.device_id);
        continue;
      }
      try {
        // Not rate-limited and not held to the window: a bad version is taken back at once.
        const job = this.deps.jobs.createFor(device, previous, {
          timeoutMs: row.job_timeout_ms,
          rolloutId: row.id,
          rollback: true,
        });
        mark.run(job.id, "active", null, row.id, member.device_id);
      } catch (err) {
        mark.run(null, "failed", `ROLLBACK_UNAVAILABLE: ${(err as Error).message}`, row.id, member.device_id);
      }
    }
  }

  private setState(id: number, state: RolloutState, reason: string | null, message: string | null): void {
    this.deps.db
      .prepare("UPDATE rollouts SET state = ?, stop_reason = ?, stop_message = ?, updated_at = ? WHERE id = ?")
      .run(state, reason, message, this.clock(), id);
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
    return this.deps.registry.matching(principal.orgId, scope, { ...filters, sort: "createdAt" });
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

  private compatIds(orgId: number): (typeId: number) => string | undefined {
    const rows = this.deps.db.prepare("SELECT id, firmware_compat FROM device_types WHERE org_id = ?").all(orgId) as {
      id: number;
      firmware_compat: string;
    }[];
    const byId = new Map(rows.map((r) => [r.id, r.firmware_compat]));
    return (typeId) => byId.get(typeId);
  }

  private allowed(principal: Principal, row: RolloutRow, permission: "firmware:read" | "firmware:write"): boolean {
    return (JSON.parse(row.group_paths_json) as string[]).every((p) => this.deps.policy.can(principal, permission, p));
  }

  private row(orgId: number, id: number): RolloutRow {
    const row = this.deps.db.prepare("SELECT * FROM rollouts WHERE id = ? AND org_id = ?").get(id, orgId) as
      | RolloutRow
      | undefined;
    if (!row) throw rolloutNotFound(id);
    return row;
  }

  private imageOf(row: RolloutRow): FirmwareRecord {
    const image = this.deps.firmware.byId(row.firmware_id);
    if (!image) throw new FieldgateError("FIRMWARE_NOT_FOUND", `rollout ${row.id}'s image is gone`);
    return image;
  }

  private deviceById(id: number): DeviceRow | undefined {
    // TRANSITIONAL (issue #14): called inside synchronous transactions until this module is async;
    // then `await this.deps.registry.findById(id, executor)`.
    return this.deps.registry.embeddedRows().findById(id);
  }

  private counts(id: number): ReturnType<typeof countsOf> {
    return countsOf(
      this.deps.db
        .prepare(
          "SELECT state, rollback_state, count(*) AS n FROM rollout_devices WHERE rollout_id = ? GROUP BY state, rollback_state",
        )
        .all(id) as { state: RolloutDeviceState; rollback_state: string | null; n: number }[],
    );
  }

  private phaseCounts(id: number, phase: number): ReturnType<typeof countsOf> {
    return countsOf(
      this.deps.db
        .prepare(
          "SELECT state, rollback_state, count(*) AS n FROM rollout_devices WHERE rollout_id = ? AND phase = ? GROUP BY state, rollback_state",
        )
        .all(id, phase) as { state: RolloutDeviceState; rollback_state: string | null; n: number }[],
    );
  }

  private view(row: RolloutRow, detailed: boolean): RolloutView {
    const image = this.deps.firmware.byId(row.firmware_id);
    const marks = JSON.parse(row.phases_json) as PhaseMark[];
    const now = this.clock();
    const window = row.window_json === null ? null : (JSON.parse(row.window_json) as MaintenanceWindow);
    const perPhase = this.deps.db
      .prepare(
        "SELECT phase, state, rollback_state, count(*) AS n FROM rollout_devices WHERE rollout_id = ? GROUP BY phase, state, rollback_state",
      )
      .all(row.id) as { phase: number; state: RolloutDeviceState; rollback_state: string | null; n: number }[];
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
    if (detailed) {
      const failing = this.deps.db
        .prepare(
          `SELECT m.*, d.uuid FROM rollout_devices m JOIN devices d ON d.id = m.device_id
           WHERE m.rollout_id = ? AND (m.state = 'failed' OR m.rollback_state IS NOT NULL
             OR (m.state = 'pending' AND m.attempts > 0))
           ORDER BY m.position LIMIT 1000`,
        )
        .all(row.id) as (MemberRow & { uuid: string })[];
      view.failing = failing.map((m) => ({
        device: m.uuid,
        phase: m.phase,
        status: m.state,
        reason: m.reason,
        message: m.message,
        attempts: m.attempts,
        rollback: m.rollback_state,
      }));
    }
    return view;
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

function countsOf(rows: readonly { state: RolloutDeviceState; rollback_state: string | null; n: number }[]) {
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

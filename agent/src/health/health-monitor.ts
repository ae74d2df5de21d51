import { EventEmitter } from "node:events";
import { FieldgateError, formatDuration, type HealthReport, type HealthStatus } from "@fieldgate/shared";
import type { Logger } from "pino";
import {
  aggregateStatus,
  CHECK_NAME_PATTERN,
  type CheckKind,
  type CheckResult,
  type CheckStatus,
  clampMessage,
  type HealthCheck,
} from "./health-check.js";
import type { PostedStatusStore } from "./posted-status-store.js";

/** Where reports go: the MQTT session's `health` topic in the agent. */
export interface HealthPublisher {
  readonly connected: boolean;
  /** Resolves on PUBACK; rejects when offline or when the connection drops first. */
  publish(report: HealthReport): Promise<void>;
}

/** The current aggregate and every check, as `GET /v1/status` and status.json show it. */
export interface HealthSnapshot {
  status: HealthStatus;
  ts: number;
  checks: CheckResult[];
}

/** Schedules of the monitor. */
export interface HealthMonitorOptions {
  /** A report is published at least this often, changed or not. */
  reportIntervalMs: number;
  /** Default period of checks without their own `intervalMs`. */
  checkIntervalMs: number;
  /** At most this many checks pushed with `post` (a report carries at most 256 checks in all). */
  maxPosted?: number;
}

/** Dependencies of the monitor. */
export interface HealthMonitorDeps {
  checks: readonly HealthCheck[];
  publisher: HealthPublisher;
  logger: Logger;
  options: HealthMonitorOptions;
  clock?: { now(): number };
  /** Keeps posted statuses across restarts; without it they live in memory only. */
  postedStore?: PostedStatusStore;
}

/** Events of the monitor. */
export interface HealthMonitorEvents {
  /** The aggregate or a check's status changed, or a check came or went. */
  change: [HealthSnapshot];
}

/** The longest time-to-live a posted status may ask for (a timer's limit is about 24.8 days). */
export const MAX_TTL_MS = 7 * 86_400_000;

const CHECK_STATUSES: readonly CheckStatus[] = ["ok", "warning", "critical", "unknown"];

interface Posted {
  timer: NodeJS.Timeout | undefined;
}

/**
 * Runs the checks, keeps the latest result of each, and publishes a `HealthReport` whenever the
 * aggregate or any check's status changes, and every `reportInterval`. Health is state, not a
 * stream: offline, only the latest report matters, and it is published on the next connect.
 */
export class HealthMonitor extends EventEmitter<HealthMonitorEvents> {
  private readonly results = new Map<string, CheckResult>();
  private readonly running = new Set<string>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly posted = new Map<string, Posted>();
  private reportTimer: NodeJS.Timeout | undefined;
  private changeTimer: NodeJS.Timeout | undefined;
  private publishing = false;
  private again = false;
  private started = false;
  private lastStatus: HealthStatus | undefined;
  private hadResults = false;

  constructor(private readonly deps: HealthMonitorDeps) {
    super();
    const names = new Set<string>();
    for (const c of deps.checks) {
      if (!CHECK_NAME_PATTERN.test(c.name) || names.has(c.name)) {
        throw new TypeError(`check name ${JSON.stringify(c.name)} is invalid or used twice`);
      }
      names.add(c.name);
    }
  }

  private now(): number {
    return (this.deps.clock ?? Date).now();
  }

  /** Restores the posted statuses kept before a restart, runs every check now and then on its interval, and starts the periodic report. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.restorePosted();
    for (const check of this.deps.checks) {
      void this.runCheck(check);
      const timer = setInterval(() => void this.runCheck(check), check.intervalMs ?? this.deps.options.checkIntervalMs);
      timer.unref();
      this.timers.push(timer);
    }
    this.reportTimer = setInterval(() => void this.publish(), this.deps.options.reportIntervalMs);
    this.reportTimer.unref();
  }

  stop(): void {
    this.started = false;
    for (const t of this.timers.splice(0)) clearInterval(t);
    if (this.reportTimer) clearInterval(this.reportTimer);
    if (this.changeTimer) clearTimeout(this.changeTimer);
    this.reportTimer = undefined;
    this.changeTimer = undefined;
    for (const p of this.posted.values()) if (p.timer) clearTimeout(p.timer);
    for (const c of this.deps.checks) c.stop?.();
  }

  /** Runs one scheduled check now (skipped if it is still running); e.g. after a new clock measurement. */
  async runNow(name: string): Promise<CheckResult | undefined> {
    const check = this.deps.checks.find((c) => c.name === name);
    if (!check) return undefined;
    await this.runCheck(check);
    return this.results.get(name);
  }

  /**
   * Runs every scheduled check and resolves once each has a result from a run started after the
   * call: an update's confirmation must not rest on a result from before its activation.
   */
  async runAll(): Promise<void> {
    const settled = async (name: string) => {
      while (this.running.has(name)) await new Promise((resolve) => setTimeout(resolve, 20));
    };
    await Promise.all(
      this.deps.checks.map(async (c) => {
        // A run under way may have started before the call: let it end, then run again.
        await settled(c.name);
        await this.runCheck(c);
        await settled(c.name);
      }),
    );
  }

  /**
   * Sets a pushed status (the local API's). With `ttlMs`, it turns `unknown` unless posted again in time.
   * Throws `VALIDATION_FAILED` for a bad name, a name owned by a scheduled check, or too many statuses.
   */
  post(name: string, status: CheckStatus, message = "", ttlMs?: number): CheckResult & { expiresAt?: number } {
    if (!CHECK_NAME_PATTERN.test(name)) throw new FieldgateError("VALIDATION_FAILED", "invalid check name", "name");
    if (this.deps.checks.some((c) => c.name === name)) {
      throw new FieldgateError("VALIDATION_FAILED", `${name} is a built-in or configured check`, "name");
    }
    const max = this.deps.options.maxPosted ?? 128;
    if (!this.posted.has(name) && this.posted.size >= max) {
      throw new FieldgateError(
        "VALIDATION_FAILED",
        `at most ${max} statuses can be posted; delete one first (DELETE /v1/status/{name})`,
        "name",
      );
    }
    if (ttlMs !== undefined && !(ttlMs > 0 && ttlMs <= MAX_TTL_MS)) {
      throw new FieldgateError(
        "VALIDATION_FAILED",
        `ttl must be above 0 and at most ${formatDuration(MAX_TTL_MS)}`,
        "ttl",
      );
    }
    const result: CheckResult = { name, status, message: clampMessage(message) };
    const expiresAt = ttlMs === undefined ? undefined : this.now() + ttlMs;
    // Stored first: a status the API acknowledged must be there after a restart.
    this.deps.postedStore?.save({ ...result, ttlMs: ttlMs ?? null, expiresAt: expiresAt ?? null });
    const entry = this.posted.get(name) ?? { timer: undefined };
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = undefined;
    this.posted.set(name, entry);
    this.update(result);
    if (ttlMs === undefined || expiresAt === undefined) return result;
    this.expireLater(name, entry, ttlMs, ttlMs);
    return { ...result, expiresAt };
  }

  /** Removes a pushed status; `false` if there was none. */
  remove(name: string): boolean {
    const entry = this.posted.get(name);
    if (!entry) return false;
    this.deps.postedStore?.remove(name);
    if (entry.timer) clearTimeout(entry.timer);
    this.posted.delete(name);
    this.results.delete(name);
    this.changed();
    return true;
  }

  /**
   * Sets a check that another capability judges on its own schedule (a device link's state, as
   * `link.<id>`). Unlike `post`, such checks do not count against `maxPosted`; `drop` removes one.
   */
  set(result: CheckResult): void {
    if (
      !CHECK_NAME_PATTERN.test(result.name) ||
      this.deps.checks.some((c) => c.name === result.name) ||
      this.posted.has(result.name)
    ) {
      throw new TypeError(`check name ${JSON.stringify(result.name)} is invalid or owned by another check`);
    }
    this.update({ name: result.name, status: result.status, message: clampMessage(result.message) });
  }

  /** Removes a check set with `set`; scheduled and posted checks are left alone. */
  drop(name: string): void {
    if (this.posted.has(name) || this.deps.checks.some((c) => c.name === name)) return;
    if (this.results.delete(name)) this.changed();
  }

  /** Where a check with a result comes from (see `CheckKind`); checks set with `set` are link checks. */
  kindOf(name: string): CheckKind | undefined {
    const scheduled = this.deps.checks.find((c) => c.name === name);
    if (scheduled) return scheduled.kind ?? "builtin";
    if (this.posted.has(name)) return "posted";
    return this.results.has(name) ? "link" : undefined;
  }

  /** The latest result of one check. */
  get(name: string): CheckResult | undefined {
    const r = this.results.get(name);
    return r && { ...r };
  }

  /** The aggregate and every check's latest result, sorted by name. */
  snapshot(): HealthSnapshot {
    const checks = [...this.results.values()].map((r) => ({ ...r })).sort((a, b) => a.name.localeCompare(b.name));
    return { status: aggregateStatus(checks), ts: this.now(), checks };
  }

  /** The report as published: the snapshot with its schema version. */
  report(): HealthReport {
    const { status, ts, checks } = this.snapshot();
    return { v: 1, ts, status, checks: checks.slice(0, 256) };
  }

  /** Call on every (re)connect: the cloud gets the current state even if nothing changed meanwhile. */
  connected(): void {
    void this.publish();
  }

  /** Turns a posted status `unknown` in `delayMs` unless it is posted again. */
  private expireLater(name: string, entry: Posted, ttlMs: number, delayMs: number): void {
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.update({ name, status: "unknown", message: expiredMessage(ttlMs) });
    }, delayMs);
    entry.timer.unref();
  }

  /**
   * Brings back the statuses posted before a restart: one whose ttl ran out (while the agent was
   * down, too) is `unknown` as it would have been; the rest keep their remaining ttl, never more
   * than the ttl itself (a clock set back at boot must not stretch it). Damaged rows are skipped.
   */
  private restorePosted(): void {
    const store = this.deps.postedStore;
    if (!store) return;
    let rows: ReturnType<PostedStatusStore["all"]>;
    try {
      rows = store.all();
    } catch (err) {
      this.deps.logger.warn({ err: (err as Error).message }, "posted statuses could not be read; they start empty");
      return;
    }
    const now = this.now();
    const max = this.deps.options.maxPosted ?? 128;
    for (const row of rows) {
      const { name, ttlMs, expiresAt } = row;
      const status = row.status as CheckStatus;
      const valid =
        CHECK_NAME_PATTERN.test(name) &&
        CHECK_STATUSES.includes(status) &&
        !this.deps.checks.some((c) => c.name === name) &&
        (ttlMs === null || (ttlMs > 0 && ttlMs <= MAX_TTL_MS && expiresAt !== null));
      if (!valid || this.posted.has(name) || this.posted.size >= max) continue;
      const entry: Posted = { timer: undefined };
      this.posted.set(name, entry);
      const result: CheckResult = { name, status, message: clampMessage(String(row.message)) };
      if (ttlMs === null || expiresAt === null) {
        this.update(result);
        continue;
      }
      const remaining = Math.min(ttlMs, expiresAt - now);
      if (remaining <= 0) {
        this.update({ name, status: "unknown", message: expiredMessage(ttlMs) });
        continue;
      }
      this.update(result);
      this.expireLater(name, entry, ttlMs, remaining);
    }
    if (this.posted.size > 0)
      this.deps.logger.info({ count: this.posted.size }, `restored ${this.posted.size} posted statuses`);
  }

  private async runCheck(check: HealthCheck): Promise<void> {
    // Never two instances of one check: a slow command keeps its slot until it ends or times out.
    if (this.running.has(check.name)) return;
    this.running.add(check.name);
    let result: CheckResult;
    try {
      const r = await check.run();
      result = { name: check.name, status: r.status, message: clampMessage(r.message) };
    } catch (err) {
      result = {
        name: check.name,
        status: "unknown",
        message: clampMessage(`check failed: ${(err as Error).message}`),
      };
    } finally {
      this.running.delete(check.name);
    }
    if (this.started) this.update(result);
  }

  private update(result: CheckResult): void {
    const before = this.results.get(result.name);
    this.results.set(result.name, result);
    this.hadResults = true;
    if (before?.status === result.status) return;
    const line = `health check ${result.name}: ${before?.status ?? "new"} → ${result.status}: ${result.message}`;
    const level = result.status === "ok" || result.status === "unknown" ? "info" : "warn";
    this.deps.logger[before === undefined && result.status === "ok" ? "debug" : level](
      { check: result.name, status: result.status, was: before?.status ?? null },
      line,
    );
    this.changed();
  }

  /** Coalesces the changes of one tick (the first round of checks, say) into one report. */
  private changed(): void {
    if (this.changeTimer) return;
    this.changeTimer = setTimeout(() => {
      this.changeTimer = undefined;
      const snap = this.snapshot();
      if (snap.status !== this.lastStatus) {
        this.deps.logger.info({ status: snap.status, was: this.lastStatus ?? null }, `device health is ${snap.status}`);
        this.lastStatus = snap.status;
      }
      this.emit("change", snap);
      void this.publish();
    }, 0);
  }

  /** Publishes the current report; while offline nothing is queued (the next connect publishes the latest). */
  private async publish(): Promise<void> {
    if (this.publishing) {
      this.again = true;
      return;
    }
    const { publisher, logger } = this.deps;
    // Before the first result there is nothing to say; after it, even an empty list is news.
    if (!publisher.connected || !this.hadResults) return;
    this.publishing = true;
    try {
      await publisher.publish(this.report());
    } catch (err) {
      logger.debug({ err: (err as Error).message }, "publishing the health report failed; the next connect sends it");
    } finally {
      this.publishing = false;
    }
    if (this.again) {
      this.again = false;
      await this.publish();
    }
  }
}

function expiredMessage(ttlMs: number): string {
  return `no update within ttl (${formatDuration(ttlMs)})`;
}

import { statfsSync } from "node:fs";
import { availableParallelism, freemem, loadavg, totalmem } from "node:os";
import { formatDuration } from "@fieldgate/shared";
import type { Backlog } from "../outbox/outbox-store.js";
import type { ClockSkew } from "./clock-skew.js";
import { type CheckResult, type HealthCheck, judge } from "./health-check.js";

export type { HealthThresholds } from "../config/config-schema.js";

import type { HealthThresholds } from "../config/config-schema.js";

/** The defaults of the thresholds; `outboxRowsCrit` is 90 % of the default outbox cap. */
export const DEFAULT_THRESHOLDS: HealthThresholds = {
  diskFreeWarnPct: 15,
  diskFreeCritPct: 5,
  memoryUsedWarnPct: 90,
  memoryUsedCritPct: 97,
  loadPerCoreWarn: 2,
  loadPerCoreCrit: 4,
  clockSkewWarnS: 60,
  clockSkewCritS: 300,
  certDaysWarn: 14,
  certDaysCrit: 3,
  outboxRowsWarn: 100_000,
  outboxRowsCrit: 900_000,
  outboxAgeWarnMs: 3_600_000,
  outboxAgeCritMs: 86_400_000,
};

/** Below this the HTTP `Date` header (1 s resolution) cannot tell a skew from noise. */
export const CLOCK_SKEW_NOISE_MS = 2000;

const pct = (v: number) => `${v.toFixed(1)}%`;

/** A check from a function: the built-ins are one judgement each. */
function check(name: string, run: () => Omit<CheckResult, "name">): HealthCheck {
  return { name, run: () => ({ name, ...run() }) };
}

/** Free space on the filesystem of the data directory (where the outbox grows). */
export function diskCheck(
  t: HealthThresholds,
  dataDir: string,
  statfs: (path: string) => { bavail: number; blocks: number } = statfsSync,
): HealthCheck {
  return check("disk", () => {
    const fs = statfs(dataDir);
    if (fs.blocks <= 0) return { status: "unknown", message: `no block count for ${dataDir}` };
    const free = (fs.bavail / fs.blocks) * 100;
    return { status: judge(free, t.diskFreeWarnPct, t.diskFreeCritPct, false), message: `${pct(free)} free` };
  });
}

/** Memory in use (total minus what the kernel reports as available). */
export function memoryCheck(
  t: HealthThresholds,
  mem: () => { free: number; total: number } = () => ({ free: freemem(), total: totalmem() }),
): HealthCheck {
  return check("memory", () => {
    const { free, total } = mem();
    const used = (1 - free / total) * 100;
    return { status: judge(used, t.memoryUsedWarnPct, t.memoryUsedCritPct), message: `${pct(used)} used` };
  });
}

/** The 5-minute load average per core: the 1-minute one flaps on every cron job. */
export function loadCheck(
  t: HealthThresholds,
  load: () => { load5: number; cores: number } = () => ({ load5: loadavg()[1] ?? 0, cores: availableParallelism() }),
): HealthCheck {
  return check("load", () => {
    const { load5, cores } = load();
    const perCore = load5 / Math.max(1, cores);
    return {
      status: judge(perCore, t.loadPerCoreWarn, t.loadPerCoreCrit),
      message: `load ${load5.toFixed(2)} over 5 min on ${cores} cores (${perCore.toFixed(2)} per core)`,
    };
  });
}

/** The clock against the cloud's, from the latest `ClockSkew` measurement. */
export function clockSkewCheck(t: HealthThresholds, clock: ClockSkew, now: () => number = Date.now): HealthCheck {
  return check("clock", () => {
    const sample = clock.latest();
    if (!sample) {
      const error = clock.lastError();
      return { status: "unknown", message: error ? `not measured: ${error}` : "not measured yet" };
    }
    const abs = Math.abs(sample.skewMs);
    const ago = formatDuration(now() - sample.at);
    if (abs < CLOCK_SKEW_NOISE_MS) return { status: "ok", message: `in sync with the cloud (measured ${ago} ago)` };
    const direction = sample.skewMs > 0 ? "behind" : "ahead of";
    return {
      status: judge(abs / 1000, t.clockSkewWarnS, t.clockSkewCritS),
      message: `${formatDuration(abs)} ${direction} the cloud (measured ${ago} ago)`,
    };
  });
}

/** Days until the operational certificate expires; renewal is due at two thirds of its life. */
export function certificateCheck(
  t: HealthThresholds,
  notAfter: () => string | undefined,
  now: () => number = Date.now,
): HealthCheck {
  return check("certificate", () => {
    const end = notAfter();
    if (end === undefined) return { status: "ok", message: "no certificate yet (not enrolled)" };
    const ms = Date.parse(end) - now();
    if (Number.isNaN(ms)) return { status: "unknown", message: `unreadable notAfter ${JSON.stringify(end)}` };
    if (ms <= 0) return { status: "critical", message: `expired ${formatDuration(-ms)} ago (${end})` };
    const days = ms / 86_400_000;
    return {
      status: judge(days, t.certDaysWarn, t.certDaysCrit, false),
      message: `expires in ${Math.floor(days)} days (${end})`,
    };
  });
}

/** Readings waiting in the outbox. */
export function outboxBacklogCheck(t: HealthThresholds, backlog: () => Backlog): HealthCheck {
  return check("outbox.backlog", () => {
    const b = backlog();
    const dropped = b.droppedTotal > 0 ? `; ${b.droppedTotal} dropped by the cap so far` : "";
    return {
      status: judge(b.rows, t.outboxRowsWarn, t.outboxRowsCrit),
      message: `${b.rows} readings waiting${dropped}`,
    };
  });
}

/** Age of the oldest reading waiting (by its timestamp): how long the cloud has been behind. */
export function outboxAgeCheck(t: HealthThresholds, backlog: () => Backlog, now: () => number = Date.now): HealthCheck {
  return check("outbox.age", () => {
    const { oldestTs } = backlog();
    if (oldestTs === null) return { status: "ok", message: "nothing waiting" };
    const age = Math.max(0, now() - oldestTs);
    return {
      status: judge(age, t.outboxAgeWarnMs, t.outboxAgeCritMs),
      message: `oldest reading waiting is ${formatDuration(age)} old`,
    };
  });
}

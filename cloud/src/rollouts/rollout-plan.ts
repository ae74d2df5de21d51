import { FieldgateError, parseDuration } from "@fieldgate/shared";
import { Cron } from "croner";

/** A phase boundary: cumulative, either a share of the target set or a number of devices. */
export type PhaseMark = { percent: number } | { count: number };

/** When new installs may start: from each cron occurrence, for `durationMs`, in `timezone`. */
export interface MaintenanceWindow {
  cron: string;
  durationMs: number;
  timezone: string;
}

/**
 * Parses `1%,10%,50%,100%` or `5,50,500` (cumulative). Marks must grow; a percentage list must end
 * at 100%, and a count list covers at most the target set (the last phase takes the rest).
 */
export function parsePhases(text: string): PhaseMark[] {
  const parts = text.split(",").map((p) => p.trim());
  if (parts.length === 0 || parts.length > 20 || parts.some((p) => p === "")) {
    throw new FieldgateError("VALIDATION_FAILED", "phases must be 1 to 20 comma-separated marks", "phases");
  }
  const percent = parts.every((p) => p.endsWith("%"));
  if (!percent && parts.some((p) => p.endsWith("%"))) {
    throw new FieldgateError("VALIDATION_FAILED", "phases are all percentages or all counts, not a mix", "phases");
  }
  const marks: PhaseMark[] = [];
  let previous = 0;
  for (const part of parts) {
    const value = percent ? parsePercentText(part, "phases") : Number(part);
    if (!percent && (!Number.isInteger(value) || value < 1)) {
      throw new FieldgateError("VALIDATION_FAILED", `phase ${part} is not a device count of 1 or more`, "phases");
    }
    if (value <= previous) {
      throw new FieldgateError("VALIDATION_FAILED", `phases must grow; ${part} does not`, "phases");
    }
    previous = value;
    marks.push(percent ? { percent: value } : { count: value });
  }
  if (percent && previous !== 100) {
    throw new FieldgateError("VALIDATION_FAILED", "percentage phases must end at 100%", "phases");
  }
  return marks;
}

/** `95%` or `0.95`-free: only percentages are accepted, 0–100. Returns the fraction. */
export function parseThreshold(text: string, field: string): number {
  return parsePercentText(text.trim(), field) / 100;
}

function parsePercentText(text: string, field: string): number {
  const match = /^(\d+(?:\.\d+)?)%$/.exec(text);
  const value = match ? Number(match[1]) : Number.NaN;
  if (!(value >= 0 && value <= 100)) {
    throw new FieldgateError("VALIDATION_FAILED", `${text} is not a percentage from 0% to 100%`, field);
  }
  return value;
}

const RATE_UNITS: Record<string, number> = {
  s: 1000,
  sec: 1000,
  min: 60_000,
  m: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
};

/** At most `count` installs started in any interval of `unitMs`. */
export interface Rate {
  count: number;
  unitMs: number;
}

/** `100/min`, `2/s`, `500/h`. */
export function parseRate(text: string): Rate {
  const match = /^\s*(\d+)\s*\/\s*([a-z]+)\s*$/.exec(text);
  const unitMs = match ? RATE_UNITS[match[2] ?? ""] : undefined;
  const count = match ? Number(match[1]) : Number.NaN;
  if (unitMs === undefined || !(count >= 1)) {
    throw new FieldgateError("VALIDATION_FAILED", `rate ${text} is not like 100/min, 2/s or 500/h`, "rate");
  }
  return { count, unitMs };
}

export function formatRate(rate: Rate): string {
  const unit = rate.unitMs === 1000 ? "s" : rate.unitMs === 60_000 ? "min" : "h";
  return `${rate.count}/${unit}`;
}

/**
 * How many installs may start now. Starts are spread evenly (one per unit ÷ count since the last
 * batch), and never more than the count minus those already started in the last unit: the hard
 * bound, so that no interval of the unit ever holds more than the rate, even after a pause.
 */
export function startsAllowed(rate: Rate, now: number, lastStart: number | null, startedInLastUnit: number): number {
  const spacing = rate.unitMs / rate.count;
  const spread = lastStart === null ? 1 : Math.max(0, Math.floor((now - lastStart) / spacing));
  return Math.max(0, Math.min(spread, rate.count - startedInLastUnit));
}

/** `"0 2 * * *, 2h, Europe/Berlin"`: cron (5 or 6 fields), duration, IANA time zone (default UTC). */
export function parseMaintenanceWindow(text: string): MaintenanceWindow {
  const parts = text.split(",").map((p) => p.trim());
  const [cron, duration, timezone = "UTC"] = parts;
  if (parts.length < 2 || parts.length > 3 || !cron || !duration) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      'a maintenance window is "cron, duration[, time zone]", e.g. "0 2 * * *, 2h, Europe/Berlin"',
      "maintenanceWindow",
    );
  }
  const durationMs = parseDuration(duration);
  if (durationMs === undefined || durationMs <= 0) {
    throw new FieldgateError("VALIDATION_FAILED", `${duration} is not a duration like 2h`, "maintenanceWindow");
  }
  try {
    new Intl.DateTimeFormat("en", { timeZone: timezone });
  } catch {
    throw new FieldgateError("VALIDATION_FAILED", `${timezone} is not an IANA time zone`, "maintenanceWindow");
  }
  try {
    new Cron(cron, { timezone, paused: true });
  } catch (err) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `${cron} is not a cron expression: ${(err as Error).message}`,
      "maintenanceWindow",
    );
  }
  return { cron, durationMs, timezone };
}

/**
 * True when `now` is inside a window: some occurrence starts at or before `now` and its duration
 * has not run out, i.e. the first occurrence strictly after `now − duration` is not after `now`.
 */
export function windowOpen(window: MaintenanceWindow, now: number): boolean {
  const cron = new Cron(window.cron, { timezone: window.timezone, paused: true });
  const next = cron.nextRun(new Date(now - window.durationMs));
  return next !== null && next.getTime() <= now;
}

/** The next time a window opens, for display; null when the cron has no future occurrence. */
export function nextWindowOpening(window: MaintenanceWindow, now: number): number | null {
  const next = new Cron(window.cron, { timezone: window.timezone, paused: true }).nextRun(new Date(now));
  return next ? next.getTime() : null;
}

/**
 * The phase of each position in a target set of `total` devices: phase i holds the devices up to
 * its cumulative mark. Percentages round up, so 1% of 20 devices is one device, never none.
 */
export function phaseSizes(marks: readonly PhaseMark[], total: number): number[] {
  const sizes: number[] = [];
  let covered = 0;
  marks.forEach((mark, i) => {
    const last = i === marks.length - 1;
    const upTo = last
      ? total
      : Math.min(total, "percent" in mark ? Math.ceil((mark.percent / 100) * total) : mark.count);
    sizes.push(Math.max(0, upTo - covered));
    covered = Math.max(covered, upTo);
  });
  return sizes;
}

/** Where a phase stands, counted over its own devices. */
export interface PhaseCounts {
  total: number;
  succeeded: number;
  failed: number;
  /** Not counted either way: the device already had this version or a newer one. */
  skipped: number;
  /** Not yet finished (pending or in progress). */
  open: number;
}

/** The phase's verdict once every device in it has finished. */
export function phaseVerdict(counts: PhaseCounts, successThreshold: number): "open" | "advance" | "hold" {
  if (counts.open > 0) return "open";
  const judged = counts.total - counts.skipped;
  if (judged === 0) return "advance";
  return counts.succeeded / judged >= successThreshold ? "advance" : "hold";
}

/**
 * True when the failures cross the abort threshold: failed ÷ devices started so far (jobs
 * created, skipped ones excepted). Started, not finished, so one early failure in a large phase
 * does not read as 100 %. A threshold of 100% never aborts.
 */
export function failureThresholdCrossed(failed: number, started: number, threshold: number): boolean {
  if (failed === 0 || started === 0 || threshold >= 1) return false;
  return failed / started >= threshold;
}

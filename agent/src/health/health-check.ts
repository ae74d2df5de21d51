import type { HealthStatus } from "@fieldgate/shared";

/** The status of one check: the device colours plus Nagios's `unknown` (could not be judged). */
export type CheckStatus = HealthStatus | "unknown";

/** What one check says about the device. */
export interface CheckResult {
  name: string;
  status: CheckStatus;
  message: string;
}

/**
 * Where a check comes from: the agent's own resources (`builtin`), a configured program
 * (`command`), a status posted through the local API (`posted`), or a device link (`link`).
 * An update's confirmation gate selects checks by it (`updates.confirmGate`).
 */
export type CheckKind = "builtin" | "command" | "posted" | "link";

/** A check the monitor runs on a schedule; `intervalMs` overrides the monitor's `checkInterval`. */
export interface HealthCheck {
  readonly name: string;
  /** `builtin` when absent; only scheduled kinds. */
  readonly kind?: "builtin" | "command";
  readonly intervalMs?: number;
  run(): CheckResult | Promise<CheckResult>;
  /** Ends work in progress (a running command); called by `HealthMonitor.stop()`. */
  stop?(): void;
}

/** Check names as the shared `HealthReport` allows them (without `:` and `/`, which mean nothing here). */
export const CHECK_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

/** The longest message a `HealthReport` carries. */
export const MAX_MESSAGE_LENGTH = 1024;

const RANK: Record<CheckStatus, number> = { ok: 0, unknown: 1, warning: 1, critical: 2 };

/**
 * The device status: the worst of its checks. `unknown` counts as `warning`: Nagios keeps unknown
 * apart, but a device has three colours, and "cannot tell" deserves a look, not an alarm.
 */
export function aggregateStatus(checks: Iterable<{ status: CheckStatus }>): HealthStatus {
  let worst = 0;
  for (const c of checks) worst = Math.max(worst, RANK[c.status]);
  return worst === 2 ? "critical" : worst === 1 ? "warning" : "ok";
}

/** Judges a value against two thresholds where higher is worse (`higherIsWorse`) or better. */
export function judge(value: number, warn: number, crit: number, higherIsWorse = true): HealthStatus {
  if (higherIsWorse) return value >= crit ? "critical" : value >= warn ? "warning" : "ok";
  return value <= crit ? "critical" : value <= warn ? "warning" : "ok";
}

/** Cuts a message to what a report can carry. */
export function clampMessage(text: string): string {
  return text.length <= MAX_MESSAGE_LENGTH ? text : `${text.slice(0, MAX_MESSAGE_LENGTH - 1)}…`;
}

import { type JobStatusCheck, MAX_JOB_STATUS_CHECK_MESSAGE, MAX_JOB_STATUS_CHECKS } from "@fieldgate/shared";
import type { CheckKind } from "../health/health-check.js";

/**
 * Which health checks hold back an update's confirmation (`updates.confirmGate`): `"all"`, the
 * strict rule (every check must be ok), or selectors: a check name, a name prefix ending in `*`,
 * or a kind of check (`@commands`, `@posted`, `@links`, `@builtin`); one of those checks being
 * critical holds the confirmation back.
 */
export type ConfirmGate = "all" | readonly string[];

/** `"device"`, the default: the device's own program checks and its links, not the agent's resources. */
export const DEVICE_GATE: readonly string[] = ["@commands", "@posted", "@links"];

const KIND_SELECTORS: Record<string, CheckKind> = {
  "@commands": "command",
  "@posted": "posted",
  "@links": "link",
  "@builtin": "builtin",
};

/** Check names may not hold `@`, `*`, `:` or `,`: no name can be mistaken for a kind or a prefix. */
const SELECTOR = /^(@(commands|posted|links|builtin)|[A-Za-z0-9_.-]{1,128}\*?|\*)$/;

const SELECTOR_HELP =
  "must be a check name (such as command.plc-program), a name prefix ending in * (such as link.*), or one of @commands, @posted, @links, @builtin";

/**
 * Resolves `updates.confirmGate` as written: absent or `"device"` → the device selectors, `"all"`,
 * or a list; from the environment (`commaList`) also a comma-separated list. `invalid` builds the
 * error for an entry (its index) or for the whole value.
 */
export function parseConfirmGate(
  value: string | readonly string[] | undefined,
  invalid: (index: number | undefined, message: string) => Error,
  commaList = false,
): ConfirmGate {
  if (value === undefined || value === "device") return DEVICE_GATE;
  if (value === "all") return "all";
  if (typeof value === "string" && !commaList) {
    throw invalid(
      undefined,
      `must be "device", "all" or a list of checks (["command.plc", "link.*"]); got ${JSON.stringify(value)}`,
    );
  }
  const list = typeof value === "string" ? value.split(",").map((s) => s.trim()) : value;
  list.forEach((entry, i) => {
    if (!SELECTOR.test(entry)) {
      throw invalid(typeof value === "string" ? undefined : i, `${SELECTOR_HELP}; got ${JSON.stringify(entry)}`);
    }
  });
  return [...list];
}

/** One check as the health snapshot has it. */
export interface GateInput {
  name: string;
  status: string;
  message: string;
}

/** Whether `selector` picks the check `name` of `kind`. */
function selects(selector: string, name: string, kind: CheckKind | undefined): boolean {
  const wanted = KIND_SELECTORS[selector];
  if (wanted !== undefined) return kind === wanted;
  if (selector.endsWith("*")) return name.startsWith(selector.slice(0, -1));
  return name === selector;
}

/**
 * The checks that hold the confirmation back, by name: with `"all"` every check that is not ok
 * (warnings and unknown too, as before the gate existed); otherwise every gate check that is critical.
 */
export function holdingChecks(
  gate: ConfirmGate,
  checks: readonly GateInput[],
  kindOf: (name: string) => CheckKind | undefined,
): GateInput[] {
  const holding =
    gate === "all"
      ? checks.filter((c) => c.status !== "ok")
      : checks.filter((c) => c.status === "critical" && gate.some((s) => selects(s, c.name, kindOf(c.name))));
  return [...holding].sort((a, b) => a.name.localeCompare(b.name));
}

/** The holding checks as a job status carries them: at most 16, messages cut to 256 characters. */
export function statusChecks(holding: readonly GateInput[]): JobStatusCheck[] {
  return holding.slice(0, MAX_JOB_STATUS_CHECKS).map((c) => ({
    name: c.name,
    status: c.status as JobStatusCheck["status"],
    ...(c.message && { message: cut(c.message, MAX_JOB_STATUS_CHECK_MESSAGE) }),
  }));
}

/** `check "command.plc" critical: PLC stopped; check "link.meter" critical: …` (the reason's text). */
export function describeHolding(holding: readonly GateInput[]): string {
  const shown = holding.slice(0, MAX_JOB_STATUS_CHECKS).map((c) => {
    const message = c.message ? `: ${cut(c.message, MAX_JOB_STATUS_CHECK_MESSAGE)}` : "";
    return `check ${JSON.stringify(c.name)} ${c.status}${message}`;
  });
  const more = holding.length - shown.length;
  return more > 0 ? `${shown.join("; ")}; and ${more} more` : shown.join("; ");
}

/** Names and statuses: a report is sent again when this changes, not on every new message text. */
export function holdingKey(holding: readonly GateInput[]): string {
  return holding.map((c) => `${c.name}=${c.status}`).join(",");
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

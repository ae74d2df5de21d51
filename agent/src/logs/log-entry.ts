import type { LogLevelName } from "@fieldgate/shared";

/** One forwarded line, as the `LogBatch` schema carries it. */
export interface LogEntry {
  ts: number;
  level: LogLevelName;
  msg: string;
}

/** pino's numeric levels. */
export const LEVEL_VALUES: Readonly<Record<LogLevelName, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
};

/** The largest `msg` the cloud accepts (LogBatch schema). */
export const MAX_MSG_CHARS = 8192;

/** Cuts a message to the schema's limit, marking the cut with "…". */
export function truncateMsg(msg: string): string {
  return msg.length > MAX_MSG_CHARS ? `${msg.slice(0, MAX_MSG_CHARS - 1)}…` : msg;
}

/** The name of a pino numeric level (rounded down to a known one; above fatal is fatal). */
export function levelName(value: number): LogLevelName {
  let name: LogLevelName = "trace";
  for (const [n, v] of Object.entries(LEVEL_VALUES) as [LogLevelName, number][]) if (value >= v) name = n;
  return name;
}

// pino's own fields; everything else on a line is context worth forwarding.
const OWN_FIELDS = new Set(["level", "time", "msg", "pid", "hostname", "name", "v"]);

/**
 * Turns one serialized pino line into an entry. The line is taken after pino's redaction, so
 * secrets were already censored; context fields are kept as compact JSON after the message.
 */
export function entryFromPinoLine(line: string, now: () => number = Date.now): LogEntry | undefined {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || typeof parsed.level !== "number") return undefined;
  const time = typeof parsed.time === "string" ? Date.parse(parsed.time) : Number(parsed.time);
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(parsed)) if (!OWN_FIELDS.has(k)) extra[k] = v;
  const text = typeof parsed.msg === "string" ? parsed.msg : "";
  const context = Object.keys(extra).length > 0 ? JSON.stringify(extra) : "";
  return {
    ts: Number.isFinite(time) && time >= 0 ? time : now(),
    level: levelName(parsed.level),
    msg: truncateMsg(text && context ? `${text} ${context}` : text || context),
  };
}

/** A guess at the level of a plain text line from a file: error and warning words, else info. */
export function guessLevel(line: string): LogLevelName {
  if (/\b(fatal|panic|emerg|crit(ical)?)\b/i.test(line)) return "fatal";
  if (/\b(error|err|fail(ed|ure)?)\b/i.test(line)) return "error";
  if (/\bwarn(ing)?\b/i.test(line)) return "warn";
  if (/\bdebug\b/i.test(line)) return "debug";
  return "info";
}

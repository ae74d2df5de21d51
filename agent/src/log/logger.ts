import { type DestinationStream, type Logger, pino } from "pino";

/** pino paths that must never reach a log line, whatever a caller passes. */
export const REDACT_PATHS = [
  "token",
  "*.token",
  "enrollment.token",
  "*.enrollment.token",
  "key",
  "*.key",
  "privateKey",
  "*.privateKey",
  "factoryKey",
  "*.factoryKey",
  "password",
  "*.password",
];

export type { Logger };

/** The agent's logger: JSON lines to stdout (or the given stream), secrets redacted. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { name: "fieldgate-agent" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination(1),
  );
}

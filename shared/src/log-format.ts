import { FieldgateError } from "./errors.js";

/** `--log-format` of `serve` and `run`, and the agent's `log.format`. */
export const LOG_FORMATS = ["auto", "json", "pretty"] as const;
/** auto: human-readable lines when stdout is a terminal, JSON lines otherwise. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** A `--log-format` value, or CONFIG_INVALID naming the flag and the choices. */
export function parseLogFormat(value: string, flag = "--log-format"): LogFormat {
  if ((LOG_FORMATS as readonly string[]).includes(value)) return value as LogFormat;
  throw new FieldgateError(
    "CONFIG_INVALID",
    `${flag} ${JSON.stringify(value)} is not a log format: use ${LOG_FORMATS.join(", ")}`,
    flag,
  );
}

/** Whether `format` means human-readable lines on an output that is (or is not) a terminal. */
export function wantsPretty(format: LogFormat, isTTY: boolean): boolean {
  return format === "pretty" || (format === "auto" && isTTY);
}

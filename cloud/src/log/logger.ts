import { type LogFormat, parseLogFormat, wantsPretty } from "@fieldgate/shared";
import { type DestinationStream, type Logger, pino } from "pino";
import { prettyFactory } from "pino-pretty";

/** pino paths that must never reach a log line. */
export const REDACT_PATHS = ["req.headers.authorization", "*.secret", "*.token", "*.enrollmentToken"];

/** `--log-format`, else FIELDGATE_LOG_FORMAT, else auto; CONFIG_INVALID for anything else. */
export function resolveLogFormat(flag: string | undefined, env: NodeJS.ProcessEnv): LogFormat {
  if (flag !== undefined) return parseLogFormat(flag);
  const fromEnv = env.FIELDGATE_LOG_FORMAT;
  return fromEnv === undefined || fromEnv === "" ? "auto" : parseLogFormat(fromEnv, "FIELDGATE_LOG_FORMAT");
}

/**
 * The cloud's logger: JSON lines, or human-readable lines when `format` asks for them (auto: when
 * stdout is a terminal). The pretty lines are formatted from pino's serialized, redacted JSON, so
 * they hide exactly what the JSON hides; and they are written synchronously, unlike a transport
 * in a worker thread, so the last lines before `process.exit` are not lost.
 */
export function createCloudLogger(
  level: string,
  format: LogFormat,
  output: { destination: DestinationStream; isTTY: boolean } = {
    destination: pino.destination(1),
    isTTY: process.stdout.isTTY === true,
  },
): Logger {
  const pretty = wantsPretty(format, output.isTTY);
  const destination = pretty ? prettyLines(output.destination, output.isTTY) : output.destination;
  return pino(
    { level, base: { service: "fieldgate-cloud" }, redact: { paths: REDACT_PATHS, censor: "[redacted]" } },
    destination,
  );
}

function prettyLines(output: DestinationStream, colorize: boolean): DestinationStream {
  const format = prettyFactory({
    colorize,
    singleLine: true,
    translateTime: "SYS:yyyy-mm-dd HH:MM:ss.l",
    ignore: "pid,hostname,service",
  });
  return { write: (line: string) => output.write(format(line)) };
}

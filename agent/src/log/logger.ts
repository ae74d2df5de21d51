import { type LogFormat, wantsPretty } from "@fieldgate/shared";
import { type DestinationStream, type Logger, pino } from "pino";
import { prettyFactory } from "pino-pretty";

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

/**
 * The logger's destination: each serialized line (already redacted by pino) goes to the output
 * when at or above `outputLevel`, and to the tap (the log forwarder) whatever its level. pino's
 * own level is the lower of the two wishes, so forwarding debug lines does not flood stdout.
 */
export class LogTee implements DestinationStream {
  /** pino numeric level below which lines are not written to the output (0: all). */
  outputLevel = 0;
  private tap: ((line: string) => void) | undefined;

  constructor(private readonly output: DestinationStream) {}

  write(line: string): void {
    if (this.outputLevel <= 0 || levelOfLine(line) >= this.outputLevel) this.output.write(line);
    try {
      this.tap?.(line);
    } catch {
      // A failing forwarder must never break logging.
    }
  }

  /** Sets (or with `undefined` removes) the one listener of every line. */
  setTap(tap: ((line: string) => void) | undefined): void {
    this.tap = tap;
  }
}

function levelOfLine(line: string): number {
  const m = /"level":(\d+)/.exec(line);
  return m ? Number(m[1]) : Number.POSITIVE_INFINITY;
}

const tees = new WeakMap<Logger, LogTee>();

/** The tee behind a logger made by `createLogger`; `undefined` for other loggers (tests). */
export function logTeeOf(logger: Logger): LogTee | undefined {
  return tees.get(logger);
}

/**
 * Prints each serialized line human-readably. It formats what pino already redacted, so the
 * pretty output hides exactly what the JSON hides. Synchronous, unlike a pino transport in a
 * worker thread, so the last lines before an explicit exit are not lost.
 */
export function prettyDestination(output: DestinationStream, colorize: boolean): DestinationStream {
  const format = prettyFactory({
    colorize,
    singleLine: true,
    translateTime: "SYS:yyyy-mm-dd HH:MM:ss.l",
    ignore: "pid,hostname,name",
  });
  return { write: (line: string) => output.write(format(line)) };
}

/** The agent's stdout: human-readable lines when `format` asks for them (auto: on a terminal), JSON otherwise. */
export function stdoutDestination(
  format: LogFormat,
  output: { destination: DestinationStream; isTTY: boolean } = {
    destination: pino.destination(1),
    isTTY: process.stdout.isTTY === true,
  },
): DestinationStream {
  return wantsPretty(format, output.isTTY) ? prettyDestination(output.destination, output.isTTY) : output.destination;
}

/**
 * The agent's logger: JSON lines to stdout (or the given stream), secrets redacted. The log
 * forwarder's tap always gets the JSON line, whatever the output's format.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const tee = new LogTee(destination ?? pino.destination(1));
  const logger = pino(
    {
      level,
      base: { name: "fieldgate-agent" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    tee,
  );
  tees.set(logger, tee);
  return logger;
}

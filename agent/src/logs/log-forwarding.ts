import type { DesiredConfig, LogLevelName } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { AgentConfig, LogLevel } from "../config/config-schema.js";
import type { LogTee } from "../log/logger.js";
import type { MessageSink } from "../transport/mqtt-session.js";
import { FileTail } from "./file-tail.js";
import { JournalSource } from "./journal-source.js";
import { entryFromPinoLine, guessLevel, LEVEL_VALUES } from "./log-entry.js";
import { LogForwarder } from "./log-forwarder.js";
import type { LogBuffer } from "./sqlite-log-buffer.js";

/** The levels in force: what the agent writes locally, what it forwards, and how fast. */
export interface EffectiveLogLevels {
  /** The agent's own log level (stdout); may be `silent`. */
  local: LogLevel;
  /** The lowest level forwarded to the cloud. */
  forward: LogLevelName;
  maxLinesPerSecond: number;
}

/**
 * The rule, as documented in docs/logs.md: `logLevel` from the cloud sets the agent's level and,
 * unless `logForward.level` says otherwise, the forwarding level too (an operator who asks for
 * debug wants to see debug lines in the cloud). Without a desired value the file's `log.level`
 * and `logs.forwardLevel` apply. A pure function, so a desired config can be checked before use.
 */
export function effectiveLogLevels(
  config: Pick<AgentConfig, "log" | "logs">,
  desired: DesiredConfig | undefined,
): EffectiveLogLevels {
  return {
    local: desired?.logLevel ?? config.log.level,
    forward: desired?.logForward?.level ?? desired?.logLevel ?? config.logs.forwardLevel,
    maxLinesPerSecond: desired?.logForward?.maxLinesPerSecond ?? config.logs.maxLinesPerSecond,
  };
}

const numeric = (level: LogLevel): number =>
  level === "silent" ? Number.POSITIVE_INFINITY : LEVEL_VALUES[level as LogLevelName];

/** Dependencies of the log-forwarding capability. */
export interface LogForwardingOptions {
  uuid: string;
  config: Pick<AgentConfig, "log" | "logs">;
  logger: Logger;
  /** The tee behind `logger`; without it the agent's own lines are not forwarded (test loggers). */
  tee: LogTee | undefined;
  /** The durable buffer of forwarded lines (a `SqliteLogBuffer` on the agent database); the caller closes it. */
  store: LogBuffer;
  clock?: () => number;
}

/**
 * Forwards the agent's own log lines and the configured files and journal to the cloud. Owns
 * the forwarder, the sources, and the live levels (pino's level, the stdout filter, the
 * forwarding minimum), so a desired config changes them without a restart.
 */
export class LogForwarding {
  readonly forwarder: LogForwarder;
  private readonly tails: FileTail[] = [];
  private journal: JournalSource | undefined;
  private current: EffectiveLogLevels;
  private readonly problems = new Set<string>();

  constructor(private readonly options: LogForwardingOptions) {
    const { config } = options;
    this.current = effectiveLogLevels(config, undefined);
    this.forwarder = new LogForwarder({
      uuid: options.uuid,
      minLevel: this.current.forward,
      batchMax: config.logs.batchMax,
      flushIntervalMs: config.logs.flushIntervalMs,
      maxLinesPerSecond: config.logs.maxLinesPerSecond,
      bufferMax: config.logs.bufferMax,
      store: options.store,
      onStoreError: (message) => this.problem(`the log buffer failed; lines wait in memory: ${message}`),
      ...(options.clock && { clock: options.clock }),
    });
  }

  get levels(): EffectiveLogLevels {
    return { ...this.current };
  }

  start(): void {
    const { logger, tee, config } = this.options;
    const clock = this.options.clock ?? Date.now;
    this.apply(this.current);
    tee?.setTap((line) => {
      const entry = entryFromPinoLine(line, clock);
      if (entry) this.forwarder.accept(entry);
    });
    for (const path of config.logs.files) {
      const tail = new FileTail({
        path,
        onLine: (line) =>
          this.forwarder.accept({ ts: clock(), level: guessLevel(line), msg: `[file:${path}] ${line}` }),
        onProblem: (message) => this.problem(message),
      });
      this.tails.push(tail);
      void tail.start();
    }
    if (config.logs.journal) {
      this.journal = new JournalSource({
        onEntry: (entry) => this.forwarder.accept(entry),
        onProblem: (message) => this.problem(message),
      });
      this.journal.start();
    }
    this.forwarder.start();
    logger.debug(
      { forwardLevel: this.current.forward, files: config.logs.files.length, journal: config.logs.journal },
      "log forwarding started",
    );
  }

  /** Starts publishing through the session (buffered lines go first). */
  attach(sink: MessageSink): void {
    this.forwarder.attach(sink);
  }

  /** Applies levels live: pino's level is the lower of local and forward, stdout keeps the local one. */
  apply(levels: EffectiveLogLevels): void {
    const { logger, tee } = this.options;
    this.current = { ...levels };
    const lowest = numeric(levels.local) <= LEVEL_VALUES[levels.forward] ? levels.local : levels.forward;
    // Without a tee nothing is forwarded, so pino keeps the local level.
    logger.level = tee ? lowest : levels.local;
    if (tee) tee.outputLevel = numeric(levels.local);
    this.forwarder.setMinLevel(levels.forward);
    this.forwarder.setRateLimit(levels.maxLinesPerSecond);
    logger.debug({ ...levels }, `log level ${levels.local}, forwarding ${levels.forward} and above`);
  }

  async stop(timeoutMs = 1000): Promise<void> {
    for (const tail of this.tails) tail.stop();
    this.journal?.stop();
    await this.forwarder.stop(timeoutMs);
    this.options.tee?.setTap(undefined);
  }

  private problem(message: string): void {
    // First time at warn, repeats at debug: a missing file must not fill the log every second.
    if (this.problems.has(message)) this.options.logger.debug(message);
    else this.options.logger.warn(message);
    this.problems.add(message);
  }
}

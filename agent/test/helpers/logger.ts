import { Writable } from "node:stream";
import { pino } from "pino";
import { REDACT_PATHS } from "../../src/log/logger.js";

/** A logger that keeps its JSON lines in memory, with the agent's redaction. */
export function memoryLogger(level = "debug") {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  const logger = pino({ level, redact: { paths: REDACT_PATHS, censor: "[redacted]" } }, stream);
  return { logger, lines, raw };
}

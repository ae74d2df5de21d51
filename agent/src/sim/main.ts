#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { FieldgateError } from "@fieldgate/shared";
import { CommanderError } from "commander";
import { pino } from "pino";
import { exitQuietlyOnClosedOutput } from "../cli/closed-output.js";
import { Fleet } from "./fleet.js";
import { resolveSimOptions, type SimFlags } from "./sim-options.js";
import { buildSimProgram } from "./sim-program.js";

async function main(): Promise<void> {
  exitQuietlyOnClosedOutput();
  const program = buildSimProgram();
  program.parse(process.argv);
  const options = resolveSimOptions(program.opts<SimFlags>());
  const logger = pino({ level: options.logLevel, base: { service: "fieldgate-sim" } }, pino.destination(2));
  const interactive = process.stderr.isTTY === true;
  const started = performance.now();
  const fleet = new Fleet(options, {
    logger,
    agentVersion: agentVersion(),
    progress: (line) => {
      const text = `[sim ${((performance.now() - started) / 1000).toFixed(1)}s] ${line}`;
      // On a terminal the line redraws in place; piped, each is its own line for logs.
      process.stderr.write(interactive ? `\r\x1b[K${text}` : `${text}\n`);
    },
  });
  process.once("SIGINT", () => fleet.requestStop());
  process.once("SIGTERM", () => fleet.requestStop());
  const summary = await fleet.run();
  if (interactive) process.stderr.write("\n");
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  const failed = (summary.enrollment?.failed ?? 0) + summary.connect.failed;
  process.exitCode = failed > 0 ? 1 : 0;
}

function agentVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string })
      .version;
  } catch {
    return "0.0.0";
  }
}

main()
  .catch((err: unknown) => {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof FieldgateError) {
      process.stderr.write(`error ${err.code}: ${err.message}${err.field ? ` (field: ${err.field})` : ""}\n`);
      process.exitCode = err.code === "CONFIG_INVALID" ? 2 : 1;
      return;
    }
    // No stack trace for a user; the message says what failed.
    process.stderr.write(`error INTERNAL: ${(err as Error)?.message ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    // Sockets and timers closing late must not keep a finished simulation alive.
    setTimeout(() => process.exit(), 200).unref();
  });

#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { FieldgateError } from "@fieldgate/shared";
import { Command, CommanderError } from "commander";
import { pino } from "pino";
import { Fleet } from "./fleet.js";
import { resolveSimOptions, type SimFlags } from "./sim-options.js";

/** `fieldgate-sim`: N simulated gateways on the agent's own code paths; progress on stderr, JSON summary on stdout. */
function buildProgram(): Command {
  return new Command("fieldgate-sim")
    .description("simulate a fleet of fieldgate gateways against a cloud, with the agent's own code")
    .option("--url <url>", "cloud API URL (env FIELDGATE_URL; default: the cloud running on --cloud-data-dir)")
    .option("--ca-file <file>", "cloud CA certificate (env FIELDGATE_CA_FILE; default <cloud-data-dir>/pki/ca.crt)")
    .option("--credential <id:secret>", "operator API credential for --enroll (env FIELDGATE_CREDENTIAL)")
    .option("--cloud-data-dir <dir>", "data directory of a cloud on this host: URL, CA and admin credential")
    .option("--fleet-dir <dir>", "where the fleet's identities and outboxes live (default: a temporary one)")
    .option("--devices <n>", "number of simulated gateways", "10")
    .option("--rate <r>", "readings per second per device", "1")
    .option("--batch <b>", "readings per MQTT message at most", "100")
    .option("--max-in-flight <n>", "batches awaiting PUBACK per device", "8")
    .option("--enroll", "register the devices (one bulk import) and enroll them inside their windows")
    .option("--type <name>", "device type of the registered devices (for firmware jobs)")
    .option("--fail-updates <pct>", "share of devices whose update jobs fail at INSTALLING, like 10%", "0")
    .option("--kill-downloads <pct>", "share of devices whose image download is cut midway and resumed", "0")
    .option("--duration <d>", "how long to publish, like 30s", "10s")
    .option("--backlog <n>", "readings each device writes to its outbox offline, before connecting", "0")
    .option("--until-drained", "with --rate 0: end once every outbox is empty")
    .option("--expect-jobs <n>", "end once this many update jobs have finished", "0")
    .option("--concurrency <n>", "enrollment requests in flight at once", "64")
    .option("--drain-timeout <d>", "how long the end waits for unacknowledged readings", "10s")
    .option("--progress-interval <d>", "how often to print progress on stderr", "1s")
    .option("--log-level <level>", "agent log level of the simulated devices (stderr)", "silent")
    .exitOverride();
}

async function main(): Promise<void> {
  const program = buildProgram();
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
    process.stderr.write(`error INTERNAL: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    // Sockets and timers closing late must not keep a finished simulation alive.
    setTimeout(() => process.exit(), 200).unref();
  });

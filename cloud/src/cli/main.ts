#!/usr/bin/env node
import fs from "node:fs";
import { FieldgateError } from "@fieldgate/shared";
import { Command, CommanderError } from "commander";
import { resolveCloudConfig } from "../config/cloud-config.js";
import { createCloudLogger, resolveLogFormat } from "../log/logger.js";
import { ApiClient, type ConnectionOptions } from "./api-client.js";
import { withConnection } from "./cli-support.js";
import { credentialsCommand } from "./credentials-command.js";
import { deviceTypesCommand } from "./device-types-command.js";
import { devicesCommand } from "./devices-command.js";
import { firmwareCommand } from "./firmware-command.js";
import { groupsCommand } from "./groups-command.js";
import { organizationsCommand } from "./organizations-command.js";
import { rolloutsCommand } from "./rollouts-command.js";
import { sessionCommands, usersCommand } from "./users-command.js";

const version = (
  JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;
const print = (text: string) => process.stdout.write(`${text}\n`);

/** Exit codes: 0 done, 1 the operation failed, 2 usage or configuration error. */
function fail(err: unknown): never {
  if (err instanceof FieldgateError) {
    process.stderr.write(`error ${err.code}: ${err.message}${err.field ? ` (field: ${err.field})` : ""}\n`);
    process.exit(err.code === "CONFIG_INVALID" || err.code === "VALIDATION_FAILED" ? 2 : 1);
  }
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  process.stderr.write(`error INTERNAL: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
}

function buildProgram(): Command {
  const program = new Command("fieldgate-cloud")
    .description("fieldgate cloud: CA, device registry, enrollment, mTLS MQTT broker and REST API")
    .version(version)
    // Root options only before the subcommand: `firmware upload --version 1.2.3` is the image's version.
    .enablePositionalOptions()
    .exitOverride();

  program
    .command("serve")
    .description("run the cloud service")
    .option("--data-dir <dir>", "data directory (env FIELDGATE_DATA_DIR)", undefined)
    .option("--host <addr>", "listen address (env FIELDGATE_HOST, default 0.0.0.0)")
    .option("--http-port <port>", "HTTPS API port (env FIELDGATE_HTTP_PORT, default 8443)")
    .option("--mqtt-port <port>", "MQTT over TLS port (env FIELDGATE_MQTT_PORT, default 8883)")
    .option(
      "--hostname <name>",
      "name or IP for the server certificate (repeatable; env FIELDGATE_HOSTNAME, comma-separated)",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option("--enroll-window <duration>", "enrollment window length (env FIELDGATE_ENROLL_WINDOW, default 10m)")
    .option("--cert-lifetime <duration>", "device certificate lifetime (env FIELDGATE_CERT_LIFETIME, default 90d)")
    .option("--mqtt-url <url>", "MQTT URL handed to devices (env FIELDGATE_MQTT_URL; default from the request host)")
    .option("--log-level <level>", "log level (env FIELDGATE_LOG_LEVEL, default info)")
    .option(
      "--log-format <format>",
      "auto (pretty on a terminal), json or pretty (env FIELDGATE_LOG_FORMAT, default auto)",
    )
    .option(
      "--keepalive-unit <duration>",
      "how long one keep-alive minute lasts; for tests (env FIELDGATE_KEEPALIVE_UNIT, default 1m)",
    )
    .option(
      "--keepalive-check <duration>",
      "how often to look for silent devices (env FIELDGATE_KEEPALIVE_CHECK, default 30s)",
    )
    .option(
      "--log-retention <duration>",
      "how long device log lines are kept (env FIELDGATE_LOG_RETENTION, default 7d)",
    )
    .option(
      "--job-timeout <duration>",
      "time a device has to finish an update job (env FIELDGATE_JOB_TIMEOUT, default 60m)",
    )
    .option(
      "--rollout-tick <duration>",
      "how often rollouts start installs and time out jobs (env FIELDGATE_ROLLOUT_TICK, default 1s)",
    )
    .option("--firmware-dir <dir>", "firmware store (env FIELDGATE_FIRMWARE_DIR, default ./firmware-images)")
    .option("--firmware-max-size <size>", "largest firmware upload (env FIELDGATE_FIRMWARE_MAX_SIZE, default 1GiB)")
    .option(
      "--firmware-signing-key <file>",
      "Ed25519 firmware signing key, or its public key for offline signing (env FIELDGATE_FIRMWARE_SIGNING_KEY, default <data-dir>/firmware-signing.key)",
    )
    .action(async (opts) => {
      const config = resolveCloudConfig(opts);
      const logger = createCloudLogger(config.logLevel, resolveLogFormat(opts.logFormat, process.env));
      // Loaded here so that the operator commands start fast.
      const { Cloud } = await import("../cloud.js");
      const cloud = new Cloud(config, logger, version, (text) => process.stderr.write(text));
      await cloud.start();
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, "stopping");
        await cloud.stop();
        process.exit(0);
      };
      process.on("SIGINT", () => void stop("SIGINT"));
      process.on("SIGTERM", () => void stop("SIGTERM"));
    });

  program.addCommand(devicesCommand(print));
  program.addCommand(groupsCommand(print));
  program.addCommand(deviceTypesCommand(print));
  program.addCommand(credentialsCommand(print));
  program.addCommand(usersCommand(print));
  for (const command of sessionCommands(print)) program.addCommand(command);
  program.addCommand(organizationsCommand(print));
  program.addCommand(firmwareCommand(print));
  program.addCommand(rolloutsCommand(print));

  const org = new Command("org").description("organization settings");
  withConnection(org.command("show").description("show the organization's settings")).action(
    async (_o: unknown, cmd: Command) => {
      const result = await ApiClient.fromOptions(cmd.optsWithGlobals<ConnectionOptions>()).request<unknown>(
        "GET",
        "/api/v1/organization",
      );
      print(JSON.stringify(result, null, 2));
    },
  );
  withConnection(
    org
      .command("set")
      .description("change the organization's settings")
      .requiredOption(
        "--uuid-only-enrollment <on|off>",
        "allow enrollment by uuid alone (weaker; for Proficloud compatibility)",
      ),
  ).action(async (opts: { uuidOnlyEnrollment: string }, cmd: Command) => {
    if (opts.uuidOnlyEnrollment !== "on" && opts.uuidOnlyEnrollment !== "off") {
      throw new FieldgateError("VALIDATION_FAILED", "expected on or off", "uuid-only-enrollment");
    }
    const result = await ApiClient.fromOptions(cmd.optsWithGlobals<ConnectionOptions>()).request<unknown>(
      "PATCH",
      "/api/v1/organization",
      {
        uuidOnlyEnrollment: opts.uuidOnlyEnrollment === "on",
      },
    );
    print(JSON.stringify(result, null, 2));
  });
  program.addCommand(org);
  return program;
}

buildProgram().parseAsync(process.argv).catch(fail);

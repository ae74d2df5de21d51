import { Command } from "commander";
import { resolveCloudConfig } from "../config/cloud-config.js";
import { createCloudLogger, resolveLogFormat } from "../log/logger.js";
import type { CliIo } from "./cli-support.js";

/** `fieldgate-cloud serve`: the cloud service itself; runs until SIGINT or SIGTERM. */
export function serveCommand(io: CliIo, version: string): Command {
  return new Command("serve")
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
      "--telemetry-retention <duration>",
      "how long telemetry readings are kept; 0 keeps them for ever (env FIELDGATE_TELEMETRY_RETENTION, default 0)",
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
    .option(
      "--tls-handshake-timeout <duration>",
      "time from accept to a finished TLS handshake, both ports (env FIELDGATE_TLS_HANDSHAKE_TIMEOUT, default 10s)",
    )
    .option(
      "--max-pending-connections <n>",
      "unauthenticated connections each port holds at once (env FIELDGATE_MAX_PENDING_CONNECTIONS, default 1024)",
    )
    .option(
      "--mqtt-connect-timeout <duration>",
      "time from the TLS handshake to an MQTT CONNECT (env FIELDGATE_MQTT_CONNECT_TIMEOUT, default 10s)",
    )
    .option(
      "--mqtt-max-packet-size <size>",
      "largest MQTT packet; a bigger one closes the connection (env FIELDGATE_MQTT_MAX_PACKET_SIZE, default 2MiB)",
    )
    .option(
      "--http-headers-timeout <duration>",
      "time to receive a request's headers (env FIELDGATE_HTTP_HEADERS_TIMEOUT, default 10s)",
    )
    .option(
      "--http-request-timeout <duration>",
      "time to receive a whole request, uploads included (env FIELDGATE_HTTP_REQUEST_TIMEOUT, default 30m)",
    )
    .option(
      "--http-keepalive-timeout <duration>",
      "idle time between requests on one connection (env FIELDGATE_HTTP_KEEPALIVE_TIMEOUT, default 72s)",
    )
    .option(
      "--auth-failure-limit <n>",
      "wrong credentials one address may send per window before 429 (env FIELDGATE_AUTH_FAILURE_LIMIT, default 10)",
    )
    .option(
      "--auth-failure-window <duration>",
      "window of --auth-failure-limit (env FIELDGATE_AUTH_FAILURE_WINDOW, default 15m)",
    )
    .option(
      "--database <url>",
      "PostgreSQL to keep the cloud's state in, postgres://user@host:5432/db (env FIELDGATE_DATABASE; default: the embedded <data-dir>/fieldgate.db)",
    )
    .option(
      "--login-delay <duration>",
      "after five wrong passwords for one account, the wait before its next try, doubling up to 60s (env FIELDGATE_LOGIN_DELAY, default 1s)",
    )
    .action(async (flags, cmd: Command) => {
      // `--data-dir` may also stand in front of `serve`.
      const opts = { ...flags, dataDir: flags.dataDir ?? cmd.optsWithGlobals<{ dataDir?: string }>().dataDir };
      const config = resolveCloudConfig(opts, io.env);
      const logger = createCloudLogger(config.logLevel, resolveLogFormat(opts.logFormat, io.env));
      // Loaded here so that the operator commands start fast.
      const { Cloud } = await import("../cloud.js");
      const cloud = new Cloud(config, logger, version, (text) => io.stderr.write(text));
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
}

import path from "node:path";
import { FieldgateError, parseDuration } from "@fieldgate/shared";
import { type DatabaseTarget, parseDatabaseUrl } from "../storage/cloud-database.js";

/** The validated, frozen settings of `fieldgate-cloud serve`. */
export interface CloudConfig {
  readonly dataDir: string;
  /** PostgreSQL (`--database`), or the embedded SQLite file `<data-dir>/fieldgate.db` when undefined. */
  readonly database: DatabaseTarget | undefined;
  readonly host: string;
  readonly httpPort: number;
  readonly mqttPort: number;
  readonly hostnames: readonly string[];
  readonly enrollWindowMs: number;
  readonly certLifetimeDays: number;
  readonly mqttUrl: string | undefined;
  readonly logLevel: string;
  /** How long one keep-alive "minute" lasts, in ms: 60000 in service, shorter in tests. */
  readonly keepaliveUnitMs: number;
  /** How often the keep-alive monitor looks for silent devices. */
  readonly keepaliveCheckMs: number;
  /** How long forwarded device log lines are kept. */
  readonly logRetentionMs: number;
  /** How long telemetry readings are kept; undefined keeps them for ever (the default). */
  readonly telemetryRetentionMs: number | undefined;
  /** The firmware store: images and signed manifests (firmware-images/README.md). */
  readonly firmwareDir: string;
  /** The largest image an upload may bring, in bytes. */
  readonly firmwareMaxSize: number;
  /** The Ed25519 firmware signing key (or, for offline signing, its public key), PEM. */
  readonly firmwareSigningKey: string;
  /** How long a device has to finish an update job that names no timeout of its own. */
  readonly jobTimeoutMs: number;
  /** How often rollouts start installs and overdue jobs time out. */
  readonly rolloutTickMs: number;
  /** What connections may hold and for how long, on both listeners (docs/security.md, "Limits"). */
  readonly limits: ListenerLimits;
}

export interface ListenerLimits {
  readonly tlsHandshakeTimeoutMs: number;
  readonly maxPendingConnections: number;
  readonly mqttConnectTimeoutMs: number;
  readonly mqttMaxPacketSize: number;
  readonly httpHeadersTimeoutMs: number;
  readonly httpRequestTimeoutMs: number;
  readonly httpKeepAliveTimeoutMs: number;
  readonly authFailureLimit: number;
  readonly authFailureWindowMs: number;
  /** The first delay after five failed logins in a row for one account; it doubles with each further failure. */
  readonly loginDelayMs: number;
}

/** Raw option values, from flags with environment fallbacks already applied. */
export interface CloudConfigInput {
  dataDir?: string;
  database?: string;
  host?: string;
  httpPort?: string;
  mqttPort?: string;
  hostname?: string[];
  enrollWindow?: string;
  certLifetime?: string;
  mqttUrl?: string;
  logLevel?: string;
  keepaliveUnit?: string;
  keepaliveCheck?: string;
  logRetention?: string;
  telemetryRetention?: string;
  firmwareDir?: string;
  firmwareMaxSize?: string;
  firmwareSigningKey?: string;
  jobTimeout?: string;
  rolloutTick?: string;
  tlsHandshakeTimeout?: string;
  maxPendingConnections?: string;
  mqttConnectTimeout?: string;
  mqttMaxPacketSize?: string;
  httpHeadersTimeout?: string;
  httpRequestTimeout?: string;
  httpKeepaliveTimeout?: string;
  authFailureLimit?: string;
  authFailureWindow?: string;
  loginDelay?: string;
}

/** Every serve flag and the environment variable that sets it when the flag is absent. */
export const CLOUD_ENV = {
  dataDir: "FIELDGATE_DATA_DIR",
  database: "FIELDGATE_DATABASE",
  host: "FIELDGATE_HOST",
  httpPort: "FIELDGATE_HTTP_PORT",
  mqttPort: "FIELDGATE_MQTT_PORT",
  hostname: "FIELDGATE_HOSTNAME",
  enrollWindow: "FIELDGATE_ENROLL_WINDOW",
  certLifetime: "FIELDGATE_CERT_LIFETIME",
  mqttUrl: "FIELDGATE_MQTT_URL",
  logLevel: "FIELDGATE_LOG_LEVEL",
  keepaliveUnit: "FIELDGATE_KEEPALIVE_UNIT",
  keepaliveCheck: "FIELDGATE_KEEPALIVE_CHECK",
  logRetention: "FIELDGATE_LOG_RETENTION",
  telemetryRetention: "FIELDGATE_TELEMETRY_RETENTION",
  firmwareDir: "FIELDGATE_FIRMWARE_DIR",
  firmwareMaxSize: "FIELDGATE_FIRMWARE_MAX_SIZE",
  firmwareSigningKey: "FIELDGATE_FIRMWARE_SIGNING_KEY",
  jobTimeout: "FIELDGATE_JOB_TIMEOUT",
  rolloutTick: "FIELDGATE_ROLLOUT_TICK",
  tlsHandshakeTimeout: "FIELDGATE_TLS_HANDSHAKE_TIMEOUT",
  maxPendingConnections: "FIELDGATE_MAX_PENDING_CONNECTIONS",
  mqttConnectTimeout: "FIELDGATE_MQTT_CONNECT_TIMEOUT",
  mqttMaxPacketSize: "FIELDGATE_MQTT_MAX_PACKET_SIZE",
  httpHeadersTimeout: "FIELDGATE_HTTP_HEADERS_TIMEOUT",
  httpRequestTimeout: "FIELDGATE_HTTP_REQUEST_TIMEOUT",
  httpKeepaliveTimeout: "FIELDGATE_HTTP_KEEPALIVE_TIMEOUT",
  authFailureLimit: "FIELDGATE_AUTH_FAILURE_LIMIT",
  authFailureWindow: "FIELDGATE_AUTH_FAILURE_WINDOW",
  loginDelay: "FIELDGATE_LOGIN_DELAY",
} as const satisfies Record<keyof CloudConfigInput, string>;

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/** Merges flags over environment over defaults, validates once and freezes. Errors name the flag. */
export function resolveCloudConfig(flags: CloudConfigInput, env: NodeJS.ProcessEnv = process.env): CloudConfig {
  const pick = (key: keyof typeof CLOUD_ENV): string | undefined => {
    const flag = flags[key];
    if (Array.isArray(flag)) return flag.length > 0 ? flag.join(",") : env[CLOUD_ENV[key]];
    return flag ?? env[CLOUD_ENV[key]];
  };
  const windowText = pick("enrollWindow") ?? "10m";
  const enrollWindowMs = parseDuration(windowText);
  if (enrollWindowMs === undefined || enrollWindowMs < 1000) {
    throw invalid("enroll-window", windowText, "a duration of at least 1s, like 10m or 90s");
  }
  const lifetimeText = pick("certLifetime") ?? "90d";
  const lifetimeMs = parseDuration(lifetimeText);
  if (lifetimeMs === undefined || lifetimeMs < 5_000) {
    throw invalid("cert-lifetime", lifetimeText, "a duration of at least 5s (short ones are for tests), like 90d");
  }
  const unitText = pick("keepaliveUnit") ?? "1m";
  const keepaliveUnitMs = parseDuration(unitText);
  if (keepaliveUnitMs === undefined || keepaliveUnitMs < 10) {
    throw invalid("keepalive-unit", unitText, "a duration of at least 10ms, like 1m (tests shorten it)");
  }
  const checkText = pick("keepaliveCheck") ?? "30s";
  const keepaliveCheckMs = parseDuration(checkText);
  if (keepaliveCheckMs === undefined || keepaliveCheckMs < 10 || keepaliveCheckMs > 3_600_000) {
    throw invalid("keepalive-check", checkText, "a duration from 10ms to 1h, like 30s");
  }
  const retentionText = pick("logRetention") ?? "7d";
  const logRetentionMs = parseDuration(retentionText);
  if (logRetentionMs === undefined || logRetentionMs < 1000) {
    throw invalid("log-retention", retentionText, "a duration of at least 1s, like 7d or 12h");
  }
  const telemetryRetentionText = pick("telemetryRetention") ?? "0";
  // "0" keeps readings for ever; anything shorter than an hour is surely a typo for something longer.
  const telemetryRetentionMs = telemetryRetentionText === "0" ? 0 : parseDuration(telemetryRetentionText);
  if (telemetryRetentionMs === undefined || (telemetryRetentionText !== "0" && telemetryRetentionMs < 3_600_000)) {
    throw invalid(
      "telemetry-retention",
      telemetryRetentionText,
      "a duration of at least 1h, like 90d, or 0 to keep readings for ever",
    );
  }
  const maxSizeText = pick("firmwareMaxSize") ?? "1GiB";
  const firmwareMaxSize = parseSize(maxSizeText);
  if (firmwareMaxSize === undefined || firmwareMaxSize < 1) {
    throw invalid("firmware-max-size", maxSizeText, "a size in bytes, or with KiB, MiB or GiB, like 512MiB");
  }
  const jobTimeoutText = pick("jobTimeout") ?? "60m";
  const jobTimeoutMs = parseDuration(jobTimeoutText);
  if (jobTimeoutMs === undefined || jobTimeoutMs < 1000) {
    throw invalid("job-timeout", jobTimeoutText, "a duration of at least 1s, like 60m");
  }
  const tickText = pick("rolloutTick") ?? "1s";
  const rolloutTickMs = parseDuration(tickText);
  if (rolloutTickMs === undefined || rolloutTickMs < 10 || rolloutTickMs > 60_000) {
    throw invalid("rollout-tick", tickText, "a duration from 10ms to 1m, like 1s");
  }
  const logLevel = pick("logLevel") ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) throw invalid("log-level", logLevel, `one of ${LOG_LEVELS.join(", ")}`);
  const mqttUrl = pick("mqttUrl");
  if (mqttUrl !== undefined && !/^mqtts:\/\/[^/]+$/.test(mqttUrl)) {
    throw invalid("mqtt-url", mqttUrl, "an mqtts://host:port URL");
  }
  const hostnames = (pick("hostname") ?? "")
    .split(",")
    .map((h) => h.trim())
    .filter(Boolean);
  for (const h of hostnames) {
    if (!/^[A-Za-z0-9.:-]+$/.test(h)) throw invalid("hostname", h, "a DNS name or IP address");
  }
  const limits = resolveLimits(pick);
  const dataDir = path.resolve(pick("dataDir") ?? "./data");
  const databaseText = pick("database");
  return Object.freeze({
    dataDir,
    database: databaseText === undefined || databaseText === "" ? undefined : parseDatabaseUrl(databaseText),
    host: pick("host") ?? "0.0.0.0",
    httpPort: port("http-port", pick("httpPort") ?? "8443"),
    mqttPort: port("mqtt-port", pick("mqttPort") ?? "8883"),
    hostnames: Object.freeze(hostnames),
    enrollWindowMs,
    certLifetimeDays: lifetimeMs / 86_400_000,
    mqttUrl,
    logLevel,
    keepaliveUnitMs,
    keepaliveCheckMs,
    logRetentionMs,
    telemetryRetentionMs: telemetryRetentionMs === 0 ? undefined : telemetryRetentionMs,
    // "firmware-images/ by default": relative to the working directory, like the data dir.
    firmwareDir: path.resolve(pick("firmwareDir") ?? "./firmware-images"),
    firmwareMaxSize,
    firmwareSigningKey: path.resolve(pick("firmwareSigningKey") ?? path.join(dataDir, "firmware-signing.key")),
    jobTimeoutMs,
    rolloutTickMs,
    limits,
  });
}

/** The listeners' limits; each a flag, so a site can tighten or loosen them. */
function resolveLimits(pick: (key: keyof typeof CLOUD_ENV) => string | undefined): ListenerLimits {
  const duration = (key: keyof typeof CLOUD_ENV, flag: string, fallback: string, minMs: number, maxMs: number) => {
    const text = pick(key) ?? fallback;
    const ms = parseDuration(text);
    if (ms === undefined || ms < minMs || ms > maxMs) {
      throw invalid(flag, text, `a duration from ${formatMs(minMs)} to ${formatMs(maxMs)}, like ${fallback}`);
    }
    return ms;
  };
  const count = (key: keyof typeof CLOUD_ENV, flag: string, fallback: string, max: number) => {
    const text = pick(key) ?? fallback;
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1 || n > max)
      throw invalid(flag, text, `a whole number from 1 to ${max}, like ${fallback}`);
    return n;
  };
  const hour = 3_600_000;
  const packetText = pick("mqttMaxPacketSize") ?? "2MiB";
  const mqttMaxPacketSize = parseSize(packetText);
  // 1 KiB holds any CONNECT; MQTT itself cannot announce more than 256 MiB.
  if (mqttMaxPacketSize === undefined || mqttMaxPacketSize < 1024 || mqttMaxPacketSize > 256 * 1024 ** 2) {
    throw invalid("mqtt-max-packet-size", packetText, "a size from 1KiB to 256MiB, like 2MiB");
  }
  const httpHeadersTimeoutMs = duration("httpHeadersTimeout", "http-headers-timeout", "10s", 100, hour);
  const httpRequestTimeoutMs = duration("httpRequestTimeout", "http-request-timeout", "30m", 100, 24 * hour);
  if (httpHeadersTimeoutMs > httpRequestTimeoutMs) {
    throw invalid(
      "http-headers-timeout",
      pick("httpHeadersTimeout") ?? "10s",
      `a duration no longer than --http-request-timeout (${formatMs(httpRequestTimeoutMs)})`,
    );
  }
  return Object.freeze({
    tlsHandshakeTimeoutMs: duration("tlsHandshakeTimeout", "tls-handshake-timeout", "10s", 100, 10 * 60_000),
    maxPendingConnections: count("maxPendingConnections", "max-pending-connections", "1024", 1_000_000),
    mqttConnectTimeoutMs: duration("mqttConnectTimeout", "mqtt-connect-timeout", "10s", 100, 10 * 60_000),
    mqttMaxPacketSize,
    httpHeadersTimeoutMs,
    httpRequestTimeoutMs,
    httpKeepAliveTimeoutMs: duration("httpKeepaliveTimeout", "http-keepalive-timeout", "72s", 100, hour),
    authFailureLimit: count("authFailureLimit", "auth-failure-limit", "10", 10_000),
    authFailureWindowMs: duration("authFailureWindow", "auth-failure-window", "15m", 1000, 24 * hour),
    loginDelayMs: duration("loginDelay", "login-delay", "1s", 100, 60_000),
  });
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** `1073741824`, `512MiB`, `64KiB`, `1GiB` (binary units; a bare number is bytes). */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+)(B|KiB|MiB|GiB)?$/.exec(text.trim());
  if (!m) return undefined;
  const unit = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2] ?? "B"] ?? 1;
  return Number(m[1]) * unit;
}

function port(name: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw invalid(name, text, "a port number from 0 to 65535 (0 picks a free one)");
  return n;
}

function invalid(field: string, value: string, expected: string): FieldgateError {
  return new FieldgateError("CONFIG_INVALID", `--${field} ${JSON.stringify(value)}: expected ${expected}`, field);
}

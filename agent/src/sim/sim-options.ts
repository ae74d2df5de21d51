import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FieldgateError, parseDuration } from "@fieldgate/shared";

/** The validated, frozen settings of one `fieldgate-sim` run. */
export interface SimOptions {
  /** Base URL of the cloud API, `https://host:port`. */
  readonly cloudUrl: string;
  /** PEM of the cloud CA. */
  readonly caPem: string;
  /** `Basic …` header of an operator credential; needed only with `enroll`. */
  readonly operatorAuthorization: string | undefined;
  readonly devices: number;
  /** Readings per second per device (0: none). */
  readonly rate: number;
  /** Readings per MQTT message at most (the agent's `telemetry.batchMax`). */
  readonly batch: number;
  /** Batches awaiting their PUBACK per device at most (the agent's `telemetry.maxInFlight`). */
  readonly maxInFlight: number;
  /** Register the devices through the operator API and enroll them inside their windows. */
  readonly enroll: boolean;
  /** Device type the registered devices get (for firmware jobs). */
  readonly deviceType: string | undefined;
  /** Share of devices whose update jobs fail at INSTALLING, in percent. */
  readonly failUpdatesPct: number;
  /** Share of devices whose first image download is cut midway (then resumed with Range), in percent. */
  readonly killDownloadsPct: number;
  /** How long the publishing phase lasts at most. */
  readonly durationMs: number;
  /** Where the fleet's identities and outboxes live; reused by later runs without `enroll`. */
  readonly fleetDir: string | undefined;
  /** Readings written to each outbox before the device connects (an offline backlog). */
  readonly backlog: number;
  /** End as soon as every outbox is empty (with `rate` 0: once the backlog has drained). */
  readonly untilDrained: boolean;
  /** End as soon as this many update jobs have finished across the fleet. */
  readonly expectJobs: number;
  /** Enrollment requests in flight at once. */
  readonly concurrency: number;
  /** How long stopping waits for unacknowledged batches. */
  readonly drainTimeoutMs: number;
  readonly progressIntervalMs: number;
  readonly logLevel: string;
}

/** Raw flag values as commander gives them. */
export interface SimFlags {
  url?: string;
  caFile?: string;
  credential?: string;
  cloudDataDir?: string;
  devices?: string;
  rate?: string;
  batch?: string;
  maxInFlight?: string;
  enroll?: boolean;
  type?: string;
  failUpdates?: string;
  killDownloads?: string;
  duration?: string;
  fleetDir?: string;
  backlog?: string;
  untilDrained?: boolean;
  expectJobs?: string;
  concurrency?: string;
  drainTimeout?: string;
  progressInterval?: string;
  logLevel?: string;
}

/**
 * Flags over FIELDGATE_* variables over the local cloud's data directory (the operator CLI's
 * order): validated once, errors naming the flag.
 */
export function resolveSimOptions(
  flags: SimFlags,
  env: NodeJS.ProcessEnv = process.env,
  read: (file: string) => string = (file) => readFileSync(file, "utf8"),
): SimOptions {
  const cloudDir = flags.cloudDataDir ?? env.FIELDGATE_DATA_DIR;
  const fromCloudDir = <T>(file: string): T | undefined => {
    if (!cloudDir) return undefined;
    try {
      return JSON.parse(read(join(cloudDir, file))) as T;
    } catch {
      return undefined;
    }
  };
  const cloudUrl = flags.url ?? env.FIELDGATE_URL ?? fromCloudDir<{ url: string }>("runtime.json")?.url;
  if (!cloudUrl && flags.cloudDataDir !== undefined) {
    throw invalid("cloud-data-dir", flags.cloudDataDir, "the data directory of a running cloud (with runtime.json)");
  }
  if (!cloudUrl || !/^https:\/\/[^/]+\/?$/.test(cloudUrl)) {
    throw invalid("url", cloudUrl ?? "", "the cloud's https://host:port (or --cloud-data-dir of a running cloud)");
  }
  const caFile = flags.caFile ?? env.FIELDGATE_CA_FILE ?? (cloudDir ? join(cloudDir, "pki", "ca.crt") : undefined);
  if (!caFile) throw invalid("ca-file", "", "the cloud CA certificate (or --cloud-data-dir)");
  let caPem: string;
  try {
    caPem = read(caFile);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw invalid("ca-file", caFile, `a readable file with the cloud's CA certificate (reading it failed: ${reason})`);
  }
  if (!caPem.includes("-----BEGIN CERTIFICATE-----")) {
    throw invalid("ca-file", caFile, "a PEM file with the cloud's CA certificate (<cloud data-dir>/pki/ca.crt)");
  }
  const enroll = flags.enroll === true;
  const pair =
    flags.credential ??
    env.FIELDGATE_CREDENTIAL ??
    (() => {
      const admin = fromCloudDir<{ credentialId: string; secret: string }>("admin-credential.json");
      return admin ? `${admin.credentialId}:${admin.secret}` : undefined;
    })();
  if (pair !== undefined && !pair.includes(":")) throw invalid("credential", "[hidden]", "id:secret");
  if (enroll && pair === undefined) {
    throw new FieldgateError(
      "AUTH_REQUIRED",
      "--enroll registers devices as an operator: pass --credential id:secret, set FIELDGATE_CREDENTIAL, or --cloud-data-dir of a local cloud",
      "credential",
    );
  }
  const rate = number("rate", flags.rate ?? "1", 0, 100_000);
  const backlog = integer("backlog", flags.backlog ?? "0", 0, 100_000_000);
  return Object.freeze({
    cloudUrl: cloudUrl.replace(/\/+$/, ""),
    caPem,
    operatorAuthorization: pair === undefined ? undefined : `Basic ${Buffer.from(pair).toString("base64")}`,
    devices: integer("devices", flags.devices ?? "10", 1, 100_000),
    rate,
    batch: integer("batch", flags.batch ?? "100", 1, 10_000),
    maxInFlight: integer("max-in-flight", flags.maxInFlight ?? "8", 1, 1000),
    enroll,
    deviceType: flags.type === undefined ? undefined : nonEmpty("type", flags.type, "a device type name"),
    failUpdatesPct: percent("fail-updates", flags.failUpdates ?? "0"),
    killDownloadsPct: percent("kill-downloads", flags.killDownloads ?? "0"),
    durationMs: duration("duration", flags.duration ?? "10s"),
    fleetDir: flags.fleetDir === undefined ? undefined : directory("fleet-dir", flags.fleetDir),
    backlog,
    untilDrained: flags.untilDrained === true,
    expectJobs: integer("expect-jobs", flags.expectJobs ?? "0", 0, 10_000_000),
    concurrency: integer("concurrency", flags.concurrency ?? "64", 1, 10_000),
    drainTimeoutMs: duration("drain-timeout", flags.drainTimeout ?? "10s"),
    progressIntervalMs: Math.max(100, duration("progress-interval", flags.progressInterval ?? "1s")),
    logLevel: oneOf("log-level", flags.logLevel ?? "silent", LOG_LEVELS),
  });
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

function oneOf(field: string, text: string, allowed: readonly string[]): string {
  if (!allowed.includes(text)) throw invalid(field, text, `one of ${allowed.join(", ")}`);
  return text;
}

function nonEmpty(field: string, text: string, expected: string): string {
  if (text.trim() === "") throw invalid(field, text, expected);
  return text;
}

/** A directory that may not exist yet (the fleet creates it), but not a file. */
function directory(field: string, text: string): string {
  nonEmpty(field, text, "a directory");
  if (statSync(text, { throwIfNoEntry: false })?.isDirectory() === false) throw invalid(field, text, "a directory");
  return text;
}

function number(field: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw invalid(field, text, `a number from ${min} to ${max}`);
  }
  return n;
}

function integer(field: string, text: string, min: number, max: number): number {
  const n = number(field, text, min, max);
  if (!Number.isInteger(n)) throw invalid(field, text, `a whole number from ${min} to ${max}`);
  return n;
}

function percent(field: string, text: string): number {
  const n = Number(text.replace(/%$/, ""));
  if (text.trim() === "" || !Number.isFinite(n) || n < 0 || n > 100)
    throw invalid(field, text, "a share from 0% to 100%");
  return n;
}

function duration(field: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw invalid(field, text, "a duration like 30s, 2m or 500ms");
  return ms;
}

function invalid(field: string, value: string, expected: string): FieldgateError {
  return new FieldgateError("CONFIG_INVALID", `--${field} ${JSON.stringify(value)}: expected ${expected}`, field);
}

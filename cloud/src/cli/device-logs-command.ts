import fs from "node:fs";
import {
  type DesiredConfig,
  type DeviceConfigView,
  type DeviceLogEntry,
  type DeviceLogPage,
  FieldgateError,
  LOG_LEVELS,
  parseDuration,
  visibleText,
} from "@fieldgate/shared";
import type { Command } from "commander";
import { type CliIo, clientFor, wantsJson, withConnection } from "./cli-support.js";
import { renderFields } from "./table.js";

const FOLLOW_POLL_MS = 1000;

interface LogsOptions {
  level?: string;
  since?: string;
  until?: string;
  limit: string;
  follow?: boolean;
}

interface ConfigSetOptions {
  logLevel?: string;
  forwardLevel?: string;
  maxLinesPerSecond?: string;
  file?: string;
  wait?: boolean;
}

/** `devices logs` and `devices config show|set`: forwarded logs and the desired-config channel. */
export function addDeviceLogsCommands(devices: Command, io: CliIo): void {
  const print = io.out;
  const clientOf = clientFor(io);

  withConnection(
    devices
      .command("logs <uuid>")
      .description("show the log lines the device forwarded; --follow keeps printing new ones (Ctrl-C ends)")
      .option("--level <level>", `at least this level: ${LOG_LEVELS.join(", ")}`)
      .option("--since <time>", "from this time: ISO 8601, or a duration back from now such as 1h or 30m")
      .option("--until <time>", "before this time: ISO 8601, or a duration back from now")
      .option("--limit <n>", "at most this many lines (the newest, unless --since)", "100")
      .option("--follow", "poll every second for new lines until interrupted"),
  ).action(async (uuid: string, opts: LogsOptions, cmd: Command) => {
    const client = clientOf(cmd);
    const json = wantsJson(cmd);
    if (opts.level !== undefined && !(LOG_LEVELS as readonly string[]).includes(opts.level)) {
      throw new FieldgateError("VALIDATION_FAILED", `must be one of ${LOG_LEVELS.join(", ")}`, "level");
    }
    const base = new URLSearchParams({ limit: opts.limit });
    if (opts.level) base.set("level", opts.level);
    if (opts.since) base.set("since", timeArg(opts.since, "since"));
    if (opts.until) base.set("until", timeArg(opts.until, "until"));
    const path = (params: URLSearchParams) => `/api/v1/devices/${encodeURIComponent(uuid)}/logs?${params}`;
    const first = await client.request<DeviceLogPage>("GET", path(base));
    // Without --since the API answers newest first; people read logs oldest first.
    const items = opts.since ? first.items : [...first.items].reverse();
    if (!opts.follow) {
      if (json) return print(JSON.stringify({ ...first, items }, null, 2));
      for (const e of items) print(logLine(e, json));
      return;
    }
    for (const e of items) print(logLine(e, json));
    let cursor = first.nextAfter;
    let stopped = false;
    const stop = () => {
      stopped = true;
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
      while (!stopped) {
        await sleep(FOLLOW_POLL_MS);
        if (stopped) break;
        const params = new URLSearchParams(base);
        params.set("after", String(cursor));
        params.set("limit", "1000");
        params.delete("since");
        const page = await client.request<DeviceLogPage>("GET", path(params));
        for (const e of page.items) print(logLine(e, json));
        cursor = page.nextAfter;
      }
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
  });

  const config = devices.command("config").description("the device's desired configuration, sent over MQTT");

  withConnection(
    config.command("show <uuid>").description("show desired and reported config, and if they match"),
  ).action(async (uuid: string, _opts: unknown, cmd: Command) => {
    const view = await clientOf(cmd).request<DeviceConfigView>(
      "GET",
      `/api/v1/devices/${encodeURIComponent(uuid)}/config`,
    );
    print(wantsJson(cmd) ? JSON.stringify(view, null, 2) : configText(view));
  });

  withConnection(
    config
      .command("set <uuid>")
      .description("change the desired config; flags change those keys of the current one, --file replaces it whole")
      .option("--log-level <level>", `the agent's log level: ${LOG_LEVELS.join(", ")}`)
      .option("--forward-level <level>", "the lowest level forwarded to the cloud (default: follows --log-level)")
      .option("--max-lines-per-second <n>", "forwarding rate limit")
      .option("--file <desired.json>", "the whole desired config as JSON")
      .option("--wait", "wait up to 30s for the device to acknowledge"),
  ).action(async (uuid: string, opts: ConfigSetOptions, cmd: Command) => {
    const client = clientOf(cmd);
    const url = `/api/v1/devices/${encodeURIComponent(uuid)}/config`;
    let desired: DesiredConfig;
    if (opts.file) desired = readDesired(opts.file);
    else desired = (await client.request<DeviceConfigView>("GET", url)).desired;
    if (opts.logLevel === undefined && opts.forwardLevel === undefined && opts.maxLinesPerSecond === undefined) {
      if (!opts.file) {
        throw new FieldgateError(
          "VALIDATION_FAILED",
          "give --log-level, --forward-level, --max-lines-per-second or --file",
          "log-level",
        );
      }
    }
    // Names are checked by the server's schema, which names the field at fault.
    if (opts.logLevel !== undefined) desired.logLevel = opts.logLevel as DesiredConfig["logLevel"];
    if (opts.forwardLevel !== undefined || opts.maxLinesPerSecond !== undefined) {
      desired.logForward = {
        ...desired.logForward,
        ...(opts.forwardLevel !== undefined && {
          level: opts.forwardLevel as NonNullable<DesiredConfig["logForward"]>["level"],
        }),
        ...(opts.maxLinesPerSecond !== undefined && { maxLinesPerSecond: integerArg(opts.maxLinesPerSecond) }),
      };
    }
    let view = await client.request<DeviceConfigView>("PUT", url, desired);
    if (opts.wait) {
      const deadline = Date.now() + 30_000;
      while (view.state === "pending" && Date.now() < deadline) {
        await sleep(500);
        view = await client.request<DeviceConfigView>("GET", url);
      }
    }
    if (wantsJson(cmd)) return print(JSON.stringify(view, null, 2));
    print(configText(view));
    if (opts.wait && view.state === "pending") {
      throw new FieldgateError("CLOUD_UNREACHABLE", "the device did not acknowledge within 30s (is it online?)");
    }
    if (view.state === "rejected") {
      throw new FieldgateError("CONFIG_INVALID", `the device refused version ${view.version}: ${view.reported?.error}`);
    }
  });
}

function logLine(e: DeviceLogEntry, json: boolean): string {
  return json ? JSON.stringify(e) : `${e.ts} ${e.level.toUpperCase().padEnd(5)} ${visibleText(e.msg)}`;
}

/** The desired links by id and type, and which links the device reports in force (and from where). */
function linksText(view: DeviceConfigView): string {
  const desired = view.desired.links;
  const wanted =
    desired === undefined
      ? "not set (the device uses its own config file)"
      : desired.length === 0
        ? "none"
        : desired.map((l) => `${l.id} (${l.type}${l.enabled === false ? ", disabled" : ""})`).join(", ");
  const reported = view.reported as { links?: unknown; linksFrom?: unknown } | null;
  if (!reported || !Array.isArray(reported.links)) return wanted;
  const inForce = reported.links.length === 0 ? "none" : reported.links.join(", ");
  return `${wanted}; in force: ${inForce} (from ${String(reported.linksFrom ?? "?")})`;
}

function configText(view: DeviceConfigView): string {
  const r = view.reported;
  return renderFields([
    ["uuid", view.uuid],
    ["desired version", String(view.version)],
    ["desired", JSON.stringify(view.desired)],
    ["updated", view.updatedAt ?? "never"],
    ["reported version", r ? String(r.version) : "nothing reported"],
    ["reported at", r?.ts ?? "-"],
    ["in force", r ? `log level ${r.logLevel ?? "?"}, forwarding ${r.forwardLevel ?? "?"} and above` : "-"],
    ["links", linksText(view)],
    ["state", view.state + (r?.error ? ` (${r.error})` : "")],
  ]);
}

/** An ISO time, or a duration back from now ("1h"). */
function timeArg(text: string, field: string): string {
  const ms = parseDuration(text);
  if (ms !== undefined && !/^\d+$/.test(text.trim())) return new Date(Date.now() - ms).toISOString();
  const t = Date.parse(text);
  if (Number.isNaN(t)) {
    throw new FieldgateError("VALIDATION_FAILED", `expected an ISO time or a duration like 1h, not ${text}`, field);
  }
  return new Date(t).toISOString();
}

function integerArg(text: string): number {
  if (!/^\d+$/.test(text))
    throw new FieldgateError("VALIDATION_FAILED", "expected a whole number", "max-lines-per-second");
  return Number(text);
}

function readDesired(file: string): DesiredConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new FieldgateError("VALIDATION_FAILED", `cannot read ${file}: ${(err as Error).message}`, "file");
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
    return parsed as DesiredConfig;
  } catch (err) {
    throw new FieldgateError("VALIDATION_FAILED", `${file} is not a JSON object: ${(err as Error).message}`, "file");
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

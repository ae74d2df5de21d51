import fs from "node:fs";
import {
  DEVICE_SORT_COLUMNS,
  type Device,
  type DeviceEventPage,
  type DeviceList,
  type DeviceWithToken,
  FieldgateError,
  formatDuration,
  type TelemetryPage,
} from "@fieldgate/shared";
import { Command } from "commander";
import type { JobView } from "../jobs/device-jobs.js";
import {
  EXPORT_COLUMNS,
  type ExportColumn,
  MAX_EXPORT_COLUMNS,
  parseExportColumns,
} from "../registry/device-export.js";
import type { ApiClient } from "./api-client.js";
import { addBulkCommands } from "./bulk-commands.js";
import { type CliIo, clientFor, confirm, wantsJson, withConnection } from "./cli-support.js";
import { addDeviceJobsCommands, showLatestJob } from "./device-jobs-command.js";
import { addDeviceLogsCommands } from "./device-logs-command.js";
import { enrollInstructions } from "./enroll-instructions.js";
import { colourName, paintStatus, statusWord, useColour } from "./health-colours.js";
import { renderFields, renderTable } from "./table.js";

/** `fieldgate-cloud devices …`: the operator's view of the registry. */
export function devicesCommand(io: CliIo): Command {
  const print = io.out;
  const devices = new Command("devices").description("register, inspect and manage devices");
  const client = clientFor(io);
  const json = wantsJson;

  withConnection(
    withDeviceFields(
      devices
        .command("add <uuid>")
        .description("register a device and open its enrollment window; prints the one-time token"),
    ),
  ).action(async (uuid: string, opts: DeviceFieldOptions, cmd: Command) => {
    const api = client(cmd);
    const result = await api.request<DeviceWithToken>("POST", "/api/v1/devices", { uuid, ...deviceFields(opts) });
    if (json(cmd)) return print(JSON.stringify(result, null, 2));
    print(tokenText(result, `registered ${result.device.uuid}`, api));
  });

  withConnection(
    devices
      .command("list")
      .description("list devices with filters; --format csv|json exports every match, streamed")
      .option("--uuid <prefix>", "uuid or its beginning")
      .option("--name <text>", "part of the name, any case")
      .option("--location <text>", "part of the location, any case")
      .option("--tag <tag...>", "carries every tag given (repeatable)")
      .option("--type <type>", "device type name or id")
      .option("--group <group>", "group id or name path, like plant-a/line-1: that group only")
      .option("--include-subgroups", "with --group: the group and every group below it")
      .option("--status <status>", "health status: ok, warning or critical")
      .option("--online", "only online devices")
      .option("--offline", "only offline devices")
      .option("--last-seen-from <iso>", "last seen at or after this time")
      .option("--last-seen-to <iso>", "last seen before this time")
      .option("--firmware <version>", "firmware version, exactly")
      .option("--retired", "only devices retired by a replace (default: only active ones)")
      .option("-q, --query <text>", "text in uuid, name, location, comment or tags")
      .option("--sort <column>", `sort column, - prefix for descending: ${DEVICE_SORT_COLUMNS.join(", ")}`)
      .option("--limit <n>", "page size (table)", "100")
      .option("--offset <n>", "page offset (table)", "0")
      .option("--columns <list>", `comma-separated, at most ${MAX_EXPORT_COLUMNS}: ${EXPORT_COLUMNS.join(", ")}`)
      .option("--format <format>", "table, csv or json (csv and json list every match); --json means json"),
  ).action(async (opts: ListOptions, cmd: Command) => {
    const format = opts.format ?? (json(cmd) ? "json" : "table");
    if (format !== "table" && format !== "csv" && format !== "json") {
      throw new FieldgateError("VALIDATION_FAILED", `format must be table, csv or json, not ${format}`, "format");
    }
    const columns = opts.columns === undefined ? undefined : parseExportColumns(opts.columns);
    const filters = listFilters(opts);
    if (format !== "table") {
      if (columns) filters.set("columns", columns.join(","));
      filters.set("format", format);
      return client(cmd).download(`/api/v1/devices/export?${filters}`, io.stdout);
    }
    filters.set("limit", opts.limit);
    filters.set("offset", opts.offset);
    const page = await client(cmd).request<DeviceList>("GET", `/api/v1/devices?${filters}`);
    if (columns) {
      print(
        renderTable(
          columns.map((c) => c.toUpperCase()),
          page.items.map((d) => columns.map((c) => tableCell(d, c))),
        ),
      );
    } else {
      print(
        renderTable(
          ["UUID", "NAME", "STATUS", "LAST SEEN", "CERTIFICATE", "WINDOW", "READINGS"],
          page.items.map((d) => [
            d.uuid,
            d.name || "-",
            statusWord(d),
            d.lastSeen ?? "never",
            d.certificate ? `until ${d.certificate.notAfter.slice(0, 10)}` : "none",
            windowText(d),
            String(d.telemetryCount),
          ]),
          (row, column, padded) => {
            const d = page.items[row];
            return column === 2 && d && useColour(io.stdout, io.env) ? paintStatus(d, padded) : padded;
          },
        ),
      );
    }
    print(`${page.items.length} of ${page.total} device(s)`);
  });

  withConnection(
    devices
      .command("show <uuid>")
      .description("show one device and its latest firmware update, step by step")
      .option("--follow", "keep printing the latest update's steps as the device reports them, until it ends"),
  ).action(async (uuid: string, opts: { follow?: boolean }, cmd: Command) => {
    const api = client(cmd);
    const d = await api.request<Device>("GET", `/api/v1/devices/${encodeURIComponent(uuid)}`);
    if (json(cmd)) return print(JSON.stringify({ ...d, latestJob: await latestJob(api, d.uuid) }, null, 2));
    const colour = useColour(io.stdout, io.env);
    print(
      renderFields([
        ["uuid", d.uuid],
        ["name", d.name || "-"],
        ["organization", d.organization],
        ["group", d.group.fullName],
        ["type", d.type?.name ?? "-"],
        ["location", d.location || "-"],
        ["comment", d.comment || "-"],
        ["tags", d.tags.join(", ") || "-"],
        ["status", { own: `${colour ? paintStatus(d, statusWord(d)) : statusWord(d)} (${colourName(d)})` }],
        ["offline reason", d.online ? "-" : (d.offlineReason ?? "-")],
        ["last seen", d.lastSeen ?? "never"],
        ["certificate", d.certificate ? `serial ${d.certificate.serial}` : "none (not enrolled)"],
        ["cert expires", d.certificate ? d.certificate.notAfter : "-"],
        ["window", windowText(d)],
        ["factory key", d.hasFactoryKey ? "registered" : "none"],
        ["readings", String(d.telemetryCount)],
        ["firmware", d.firmwareVersion ?? "unknown"],
      ]),
    );
    await showLatestJob(api, d.uuid, print, opts.follow === true);
  });

  withConnection(
    withDeviceFields(devices.command("edit <uuid>").description("edit a device's fields; the uuid cannot change"))
      .option("--add-tag <tag...>", "add these tags to the current ones (repeatable)")
      .option("--remove-tag <tag...>", "take these tags off (repeatable)"),
  ).action(
    async (uuid: string, opts: DeviceFieldOptions & { addTag?: string[]; removeTag?: string[] }, cmd: Command) => {
      if (opts.tag && (opts.addTag || opts.removeTag)) {
        throw new FieldgateError(
          "VALIDATION_FAILED",
          "give --tag (replaces every tag) or --add-tag/--remove-tag, not both",
          "tag",
        );
      }
      // One request: the cloud adds and removes in one transaction, so concurrent edits lose nothing.
      const body = { ...deviceFields(opts), addTags: opts.addTag, removeTags: opts.removeTag };
      const d = await client(cmd).request<Device>("PATCH", `/api/v1/devices/${encodeURIComponent(uuid)}`, body);
      print(json(cmd) ? JSON.stringify(d, null, 2) : `updated ${d.uuid}`);
    },
  );

  withConnection(
    devices
      .command("delete <uuid>")
      .description("delete a device and all its data, irretrievably")
      .option("-y, --yes", "do not ask for confirmation"),
  ).action(async (uuid: string, opts: { yes?: boolean }, cmd: Command) => {
    if (!opts.yes)
      await confirm(
        io,
        `Delete ${uuid} with all its telemetry, events and certificates? Type the uuid to confirm: `,
        uuid,
      );
    await client(cmd).request<void>("DELETE", `/api/v1/devices/${encodeURIComponent(uuid)}`);
    print(json(cmd) ? JSON.stringify({ deleted: uuid }) : `deleted ${uuid}`);
  });

  withConnection(
    devices
      .command("reset-token <uuid>")
      .description("revoke the device's certificates, if any, and open a new enrollment window"),
  ).action(async (uuid: string, _opts: unknown, cmd: Command) => {
    const api = client(cmd);
    const result = await api.request<DeviceWithToken>(
      "POST",
      `/api/v1/devices/${encodeURIComponent(uuid)}/reset-token`,
    );
    if (json(cmd)) return print(JSON.stringify(result, null, 2));
    const revoked = result.revokedCertificates ?? 0;
    const what =
      revoked > 0
        ? `revoked ${revoked} certificate(s) of ${result.device.uuid} and dropped its session; new window opened`
        : `new window opened for ${result.device.uuid} (it had no valid certificate to revoke)`;
    print(tokenText(result, what, api));
  });

  withConnection(
    devices
      .command("telemetry <uuid>")
      .description("show stored readings, newest first; --format csv streams the whole range, oldest first")
      .option("--from <iso>", "from this time (inclusive)")
      .option("--to <iso>", "to this time (exclusive)")
      .option("--name <reading>", "only this reading name")
      .option("--source <link>", "only readings of this device link (its id)")
      .option("--limit <n>", "at most this many (table and json)", "50")
      .option("--format <format>", "table, json or csv (csv holds every reading in the range); --json means json"),
  ).action(async (uuid: string, opts: TelemetryOptions, cmd: Command) => {
    const format = opts.format ?? (json(cmd) ? "json" : "table");
    if (format !== "table" && format !== "csv" && format !== "json") {
      throw new FieldgateError("VALIDATION_FAILED", `format must be table, json or csv, not ${format}`, "format");
    }
    const filters = new URLSearchParams();
    for (const key of ["from", "to", "name", "source"] as const) if (opts[key]) filters.set(key, opts[key] ?? "");
    if (format === "csv") {
      filters.set("format", "csv");
      return client(cmd).download(`/api/v1/devices/${encodeURIComponent(uuid)}/telemetry?${filters}`, io.stdout);
    }
    const params = new URLSearchParams({ limit: opts.limit, ...Object.fromEntries(filters) });
    const page = await client(cmd).request<TelemetryPage>(
      "GET",
      `/api/v1/devices/${encodeURIComponent(uuid)}/telemetry?${params}`,
    );
    if (format === "json") return print(JSON.stringify(page, null, 2));
    print(
      renderTable(
        ["TIME", "SOURCE", "NAME", "VALUE", "UNIT"],
        page.items.map((r) => [r.ts, r.source ?? "", r.name, String(r.value), r.unit ?? ""]),
      ),
    );
    print(`${page.items.length} shown, ${page.count} stored`);
  });

  withConnection(
    devices
      .command("events <uuid>")
      .description("show the device's event history, newest first")
      .option("--limit <n>", "at most this many", "50"),
  ).action(async (uuid: string, opts: { limit: string }, cmd: Command) => {
    const page = await client(cmd).request<DeviceEventPage>(
      "GET",
      `/api/v1/devices/${encodeURIComponent(uuid)}/events?limit=${encodeURIComponent(opts.limit)}`,
    );
    if (json(cmd)) return print(JSON.stringify(page, null, 2));
    print(
      renderTable(
        ["TIME", "SEVERITY", "CODE", "FIELD", "MESSAGE"],
        page.items.map((e) => [e.ts, e.severity, e.code, e.field ?? "", e.message]),
      ),
    );
  });

  addBulkCommands(devices, io);
  addDeviceLogsCommands(devices, io);
  addDeviceJobsCommands(devices, io);
  return devices;
}

interface TelemetryOptions {
  from?: string;
  to?: string;
  name?: string;
  source?: string;
  limit: string;
  format?: string;
}

interface DeviceFieldOptions {
  group?: string;
  type?: string;
  name?: string;
  location?: string;
  comment?: string;
  tag?: string[];
  factoryKeyFile?: string;
}

/** The editable device fields, shared by `add` and `edit`. */
function withDeviceFields(command: Command): Command {
  return command
    .option("--group <group>", "group id or name path, like plant-a/line-1 (default: your own group)")
    .option("--type <type>", "device type name or id")
    .option("--name <name>")
    .option("--location <text>")
    .option("--comment <text>")
    .option("--tag <tag...>", "tags (repeatable); on edit, replaces all of them")
    .option("--factory-key-file <file>", "the device's factory identity public key (PEM)");
}

function deviceFields(opts: DeviceFieldOptions) {
  return {
    group: opts.group,
    type: opts.type,
    name: opts.name,
    location: opts.location,
    comment: opts.comment,
    tags: opts.tag,
    factoryPublicKey: opts.factoryKeyFile ? readFile(opts.factoryKeyFile, "factory-key-file") : undefined,
  };
}

interface ListOptions {
  uuid?: string;
  name?: string;
  location?: string;
  tag?: string[];
  type?: string;
  group?: string;
  includeSubgroups?: boolean;
  status?: string;
  online?: boolean;
  offline?: boolean;
  lastSeenFrom?: string;
  lastSeenTo?: string;
  firmware?: string;
  retired?: boolean;
  query?: string;
  sort?: string;
  limit: string;
  offset: string;
  columns?: string;
  format?: string;
}

/** The list filters as API query parameters; the server validates each and names the one at fault. */
function listFilters(opts: ListOptions): URLSearchParams {
  if (opts.online && opts.offline) {
    throw new FieldgateError("VALIDATION_FAILED", "give --online or --offline, not both", "online");
  }
  const params = new URLSearchParams();
  const set = (key: string, value: string | undefined) => {
    if (value !== undefined) params.set(key, value);
  };
  set("uuid", opts.uuid);
  set("name", opts.name);
  set("location", opts.location);
  for (const tag of opts.tag ?? []) params.append("tag", tag);
  set("type", opts.type);
  set("group", opts.group);
  if (opts.includeSubgroups) params.set("includeSubgroups", "true");
  set("status", opts.status);
  if (opts.online || opts.offline) params.set("online", String(opts.online === true));
  set("lastSeenFrom", opts.lastSeenFrom);
  set("lastSeenTo", opts.lastSeenTo);
  set("firmwareVersion", opts.firmware);
  if (opts.retired) params.set("retired", "true");
  set("q", opts.query);
  set("sort", opts.sort);
  return params;
}

/** A device's value in an export column, as a table shows it. */
function tableCell(d: Device, column: ExportColumn): string {
  switch (column) {
    case "tags":
      return d.tags.join(" ");
    case "group":
      return d.group.fullName;
    case "type":
      return d.type?.name ?? "";
    case "status":
      return d.health ?? "";
    case "online":
      return d.online ? "online" : "offline";
    case "lastSeen":
      return d.lastSeen ?? "never";
    case "firmwareVersion":
      return d.firmwareVersion ?? "";
    case "certificateExpires":
      return d.certificate?.notAfter ?? "";
    default:
      return d[column];
  }
}

function tokenText(result: DeviceWithToken, headline: string, api: ApiClient): string {
  const left = Date.parse(result.windowExpiresAt) - Date.now();
  return [
    headline,
    `enrollment token (shown once): ${result.enrollmentToken}`,
    `window open until ${result.windowExpiresAt} (${formatDuration(left)} from now)`,
    ...enrollInstructions(result, api),
  ].join("\n");
}

/** The device's newest update job with its steps, or null: what `devices show --json` adds to the device. */
async function latestJob(api: ApiClient, uuid: string): Promise<JobView | null> {
  const base = `/api/v1/devices/${encodeURIComponent(uuid)}/jobs`;
  const newest = (await api.request<{ items: JobView[] }>("GET", base)).items[0];
  return newest ? api.request<JobView>("GET", `${base}/${encodeURIComponent(newest.id)}`) : null;
}

function windowText(d: Device): string {
  if (!d.window.open || !d.window.expiresAt) return "closed";
  return `open, ${formatDuration(Date.parse(d.window.expiresAt) - Date.now())} left`;
}

function readFile(file: string, field: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new FieldgateError("CONFIG_INVALID", `cannot read ${file}: ${(err as Error).message}`, field);
  }
}

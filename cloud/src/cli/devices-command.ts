import fs from "node:fs";
import {
  type Device,
  type DeviceEventPage,
  type DeviceList,
  type DeviceWithToken,
  FieldgateError,
  formatDuration,
  type TelemetryPage,
} from "@fieldgate/shared";
import { Command } from "commander";
import { ApiClient } from "./api-client.js";
import { confirm, type OutputOptions, withConnection } from "./cli-support.js";
import { renderFields, renderTable } from "./table.js";

/** `fieldgate-cloud devices …`: the operator's view of the registry. */
export function devicesCommand(print: (text: string) => void): Command {
  const devices = new Command("devices").description("register, inspect and manage devices");
  const client = (cmd: Command) => ApiClient.fromOptions(cmd.optsWithGlobals<OutputOptions>());
  const json = (cmd: Command) => cmd.optsWithGlobals<OutputOptions>().json === true;

  withConnection(
    withDeviceFields(
      devices
        .command("add <uuid>")
        .description("register a device and open its enrollment window; prints the one-time token"),
    ),
  ).action(async (uuid: string, opts: DeviceFieldOptions, cmd: Command) => {
    const result = await client(cmd).request<DeviceWithToken>("POST", "/api/v1/devices", {
      uuid,
      ...deviceFields(opts),
    });
    if (json(cmd)) return print(JSON.stringify(result, null, 2));
    print(tokenText(result, "registered"));
  });

  withConnection(
    devices
      .command("list")
      .description("list devices")
      .option("-q, --query <text>", "filter by uuid, name, location, comment or tag")
      .option("--limit <n>", "page size", "100")
      .option("--offset <n>", "page offset", "0"),
  ).action(async (opts: { query?: string; limit: string; offset: string }, cmd: Command) => {
    const params = new URLSearchParams({ limit: opts.limit, offset: opts.offset });
    if (opts.query) params.set("q", opts.query);
    const page = await client(cmd).request<DeviceList>("GET", `/api/v1/devices?${params}`);
    if (json(cmd)) return print(JSON.stringify(page, null, 2));
    print(
      renderTable(
        ["UUID", "NAME", "STATUS", "LAST SEEN", "CERTIFICATE", "WINDOW", "READINGS"],
        page.items.map((d) => [
          d.uuid,
          d.name || "-",
          d.online ? "online" : "offline",
          d.lastSeen ?? "never",
          d.certificate ? `until ${d.certificate.notAfter.slice(0, 10)}` : "none",
          windowText(d),
          String(d.telemetryCount),
        ]),
      ),
    );
    print(`${page.items.length} of ${page.total} device(s)`);
  });

  withConnection(devices.command("show <uuid>").description("show one device")).action(
    async (uuid: string, _opts: unknown, cmd: Command) => {
      const d = await client(cmd).request<Device>("GET", `/api/v1/devices/${encodeURIComponent(uuid)}`);
      if (json(cmd)) return print(JSON.stringify(d, null, 2));
      print(
        renderFields([
          ["uuid", d.uuid],
          ["name", d.name || "-"],
          ["organization", d.organization],
          ["location", d.location || "-"],
          ["tags", d.tags.join(", ") || "-"],
          ["status", d.online ? "online" : "offline"],
          ["last seen", d.lastSeen ?? "never"],
          ["certificate", d.certificate ? `serial ${d.certificate.serial}` : "none (not enrolled)"],
          ["cert expires", d.certificate ? d.certificate.notAfter : "-"],
          ["window", windowText(d)],
          ["factory key", d.hasFactoryKey ? "registered" : "none"],
          ["readings", String(d.telemetryCount)],
        ]),
      );
    },
  );

  withConnection(
    withDeviceFields(devices.command("edit <uuid>").description("edit a device's fields; the uuid cannot change")),
  ).action(async (uuid: string, opts: DeviceFieldOptions, cmd: Command) => {
    const d = await client(cmd).request<Device>(
      "PATCH",
      `/api/v1/devices/${encodeURIComponent(uuid)}`,
      deviceFields(opts),
    );
    print(json(cmd) ? JSON.stringify(d, null, 2) : `updated ${d.uuid}`);
  });

  withConnection(
    devices
      .command("delete <uuid>")
      .description("delete a device and all its data, irretrievably")
      .option("-y, --yes", "do not ask for confirmation"),
  ).action(async (uuid: string, opts: { yes?: boolean }, cmd: Command) => {
    if (!opts.yes)
      await confirm(`Delete ${uuid} with all its telemetry, events and certificates? Type the uuid to confirm: `, uuid);
    await client(cmd).request<void>("DELETE", `/api/v1/devices/${encodeURIComponent(uuid)}`);
    print(json(cmd) ? JSON.stringify({ deleted: uuid }) : `deleted ${uuid}`);
  });

  withConnection(
    devices.command("reset-token <uuid>").description("revoke the certificate and open a new enrollment window"),
  ).action(async (uuid: string, _opts: unknown, cmd: Command) => {
    const result = await client(cmd).request<DeviceWithToken>(
      "POST",
      `/api/v1/devices/${encodeURIComponent(uuid)}/reset-token`,
    );
    if (json(cmd)) return print(JSON.stringify(result, null, 2));
    print(tokenText(result, "certificate revoked; new window opened for"));
  });

  withConnection(
    devices
      .command("telemetry <uuid>")
      .description("show stored readings, newest first")
      .option("--from <iso>", "from this time (inclusive)")
      .option("--to <iso>", "to this time (exclusive)")
      .option("--name <reading>", "only this reading name")
      .option("--limit <n>", "at most this many", "50"),
  ).action(async (uuid: string, opts: { from?: string; to?: string; name?: string; limit: string }, cmd: Command) => {
    const params = new URLSearchParams({ limit: opts.limit });
    for (const key of ["from", "to", "name"] as const) if (opts[key]) params.set(key, opts[key] ?? "");
    const page = await client(cmd).request<TelemetryPage>(
      "GET",
      `/api/v1/devices/${encodeURIComponent(uuid)}/telemetry?${params}`,
    );
    if (json(cmd)) return print(JSON.stringify(page, null, 2));
    print(
      renderTable(
        ["TIME", "NAME", "VALUE", "UNIT"],
        page.items.map((r) => [r.ts, r.name, String(r.value), r.unit ?? ""]),
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

  return devices;
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
    .option("--tag <tag...>", "tags (repeatable); on edit, replaces the tags")
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

function tokenText(result: DeviceWithToken, verb: string): string {
  const left = Date.parse(result.windowExpiresAt) - Date.now();
  return [
    `${verb} ${result.device.uuid}`,
    `enrollment token (shown once): ${result.enrollmentToken}`,
    `window open until ${result.windowExpiresAt} (${formatDuration(left)} from now)`,
    `on the gateway: fieldgate-agent enroll --cloud <url> --uuid ${result.device.uuid} --token <token> --ca-file <ca.crt>`,
  ].join("\n");
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

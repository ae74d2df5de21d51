import { type DeviceType, FieldgateError } from "@fieldgate/shared";
import { Command } from "commander";
import type { ApiClient } from "./api-client.js";
import { type CliIo, clientFor, wantsJson, withConnection } from "./cli-support.js";
import { renderFields, renderTable } from "./table.js";

interface TypeOptions {
  group?: string;
  description?: string;
  keepalive?: string;
  firmwareCompat?: string;
}

/** `fieldgate-cloud device-types …`: kinds of devices, with keep-alive and firmware compatibility. */
export function deviceTypesCommand(io: CliIo): Command {
  const print = io.out;
  const clientOf = clientFor(io);
  const types = new Command("device-types").description("define device types: keep-alive, firmware compatibility");
  const resolve = async (client: ApiClient, ref: string): Promise<number> => {
    if (/^\d+$/.test(ref)) return Number(ref);
    const { items } = await client.request<{ items: DeviceType[] }>("GET", "/api/v1/device-types");
    const hit = items.find((t) => t.name === ref);
    if (!hit) throw new FieldgateError("TYPE_NOT_FOUND", `no device type ${JSON.stringify(ref)} in your scope`, "type");
    return hit.id;
  };
  const keepalive = (text: string | undefined): number | null | undefined => {
    if (text === undefined) return undefined;
    if (text === "off") return null;
    if (!/^\d+$/.test(text))
      throw new FieldgateError("VALIDATION_FAILED", "expected whole minutes, or off", "keepalive");
    return Number(text);
  };
  const withFields = (c: Command) =>
    c
      .option("--description <text>")
      .option("--keepalive <minutes>", "minutes without a message before KEEPALIVE_MISSED (off to disable)")
      .option("--firmware-compat <id>", "firmware compatibility id used by rollouts (default: the name)");

  withConnection(
    withFields(types.command("create <name>").description("create a device type")).option(
      "--group <group>",
      "the group it belongs to (default: your own group); its sub-groups can use it too",
    ),
  ).action(async (name: string, opts: TypeOptions, cmd: Command) => {
    const body = {
      name,
      group: opts.group,
      description: opts.description,
      keepaliveMinutes: keepalive(opts.keepalive) ?? undefined,
      firmwareCompat: opts.firmwareCompat,
    };
    const t = await clientOf(cmd).request<DeviceType>("POST", "/api/v1/device-types", body);
    print(
      wantsJson(cmd) ? JSON.stringify(t, null, 2) : `created device type ${t.name} (id ${t.id}) in ${t.group.fullName}`,
    );
  });

  withConnection(types.command("list").description("list device types")).action(async (_o: unknown, cmd: Command) => {
    const { items } = await clientOf(cmd).request<{ items: DeviceType[] }>("GET", "/api/v1/device-types");
    if (wantsJson(cmd)) return print(JSON.stringify(items, null, 2));
    print(
      renderTable(
        ["ID", "NAME", "GROUP", "KEEP-ALIVE", "FIRMWARE COMPAT", "DEVICES"],
        items.map((t) => [
          String(t.id),
          t.name,
          t.group.fullName,
          t.keepaliveMinutes === null ? "off" : `${t.keepaliveMinutes} min`,
          t.firmwareCompat,
          String(t.devices),
        ]),
      ),
    );
  });

  withConnection(types.command("show <type>").description("show a device type")).action(
    async (ref: string, _o: unknown, cmd: Command) => {
      const client = clientOf(cmd);
      const t = await client.request<DeviceType>("GET", `/api/v1/device-types/${await resolve(client, ref)}`);
      if (wantsJson(cmd)) return print(JSON.stringify(t, null, 2));
      print(
        renderFields([
          ["id", String(t.id)],
          ["name", t.name],
          ["group", t.group.fullName],
          ["description", t.description || "-"],
          ["keep-alive", t.keepaliveMinutes === null ? "off" : `${t.keepaliveMinutes} min`],
          ["firmware compat", t.firmwareCompat],
          ["devices", String(t.devices)],
        ]),
      );
    },
  );

  withConnection(
    withFields(types.command("edit <type>").description("edit a device type")).option("--name <name>"),
  ).action(async (ref: string, opts: TypeOptions & { name?: string }, cmd: Command) => {
    const client = clientOf(cmd);
    const body = {
      name: opts.name,
      description: opts.description,
      keepaliveMinutes: keepalive(opts.keepalive),
      firmwareCompat: opts.firmwareCompat,
    };
    const t = await client.request<DeviceType>("PATCH", `/api/v1/device-types/${await resolve(client, ref)}`, body);
    print(wantsJson(cmd) ? JSON.stringify(t, null, 2) : `updated ${t.name}`);
  });

  withConnection(types.command("delete <type>").description("delete a device type no device uses")).action(
    async (ref: string, _o: unknown, cmd: Command) => {
      const client = clientOf(cmd);
      await client.request<void>("DELETE", `/api/v1/device-types/${await resolve(client, ref)}`);
      print(wantsJson(cmd) ? JSON.stringify({ deleted: ref }) : `deleted ${ref}`);
    },
  );
  return types;
}

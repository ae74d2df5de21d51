import type { Group } from "@fieldgate/shared";
import { Command } from "commander";
import { type CliIo, clientFor, confirm, groupId, wantsJson, withConnection } from "./cli-support.js";
import { renderFields, renderTable } from "./table.js";

/** `fieldgate-cloud groups …`: the group tree. */
export function groupsCommand(io: CliIo): Command {
  const print = io.out;
  const clientOf = clientFor(io);
  const groups = new Command("groups").description("organize devices in a tree of groups");
  const show = (g: Group) =>
    renderFields([
      ["id", String(g.id)],
      ["name", g.fullName],
      ["description", g.description || "-"],
      ["timezone", g.timezone],
      ["devices", String(g.devices)],
      ["sub-groups", String(g.subgroups)],
    ]);

  withConnection(
    groups
      .command("create <name>")
      .description("create a group")
      .option("--parent <group>", "parent group id or name path (default: your own group)")
      .option("--description <text>")
      .option("--timezone <tz>", "IANA time zone, like Europe/Berlin (default: the parent's)"),
  ).action(async (name: string, opts: { parent?: string; description?: string; timezone?: string }, cmd: Command) => {
    const client = clientOf(cmd);
    const body = { name, description: opts.description, timezone: opts.timezone, parent: opts.parent };
    const g = await client.request<Group>("POST", "/api/v1/groups", body);
    print(wantsJson(cmd) ? JSON.stringify(g, null, 2) : `created group ${g.fullName} (id ${g.id})`);
  });

  withConnection(groups.command("list").description("list the groups you can see, as a tree")).action(
    async (_o: unknown, cmd: Command) => {
      const { items } = await clientOf(cmd).request<{ items: Group[] }>("GET", "/api/v1/groups");
      if (wantsJson(cmd)) return print(JSON.stringify(items, null, 2));
      print(
        renderTable(
          ["ID", "GROUP", "TIMEZONE", "DEVICES", "SUB-GROUPS"],
          items.map((g) => [String(g.id), g.fullName, g.timezone, String(g.devices), String(g.subgroups)]),
        ),
      );
    },
  );

  withConnection(groups.command("show <group>").description("show a group")).action(
    async (ref: string, _o: unknown, cmd: Command) => {
      const client = clientOf(cmd);
      const g = await client.request<Group>("GET", `/api/v1/groups/${await groupId(client, ref)}`);
      print(wantsJson(cmd) ? JSON.stringify(g, null, 2) : show(g));
    },
  );

  withConnection(
    groups
      .command("edit <group>")
      .description("rename a group or change its description or time zone")
      .option("--name <name>")
      .option("--description <text>")
      .option("--timezone <tz>"),
  ).action(async (ref: string, opts: { name?: string; description?: string; timezone?: string }, cmd: Command) => {
    const client = clientOf(cmd);
    const body = { name: opts.name, description: opts.description, timezone: opts.timezone };
    const g = await client.request<Group>("PATCH", `/api/v1/groups/${await groupId(client, ref)}`, body);
    print(wantsJson(cmd) ? JSON.stringify(g, null, 2) : `updated ${g.fullName}`);
  });

  withConnection(
    groups
      .command("move <group>")
      .description("move a group and its subtree")
      .requiredOption("--to <parent>", "new parent group"),
  ).action(async (ref: string, opts: { to: string }, cmd: Command) => {
    const client = clientOf(cmd);
    const id = await groupId(client, ref);
    const g = await client.request<Group>("POST", `/api/v1/groups/${id}/move`, {
      parent: await groupId(client, opts.to),
    });
    print(wantsJson(cmd) ? JSON.stringify(g, null, 2) : `moved to ${g.fullName}`);
  });

  withConnection(
    groups
      .command("delete <group>")
      .description("delete an empty group; --recursive also deletes its sub-groups and every device in them")
      .option("--recursive", "delete sub-groups and devices too")
      .option("-y, --yes", "do not ask for confirmation"),
  ).action(async (ref: string, opts: { recursive?: boolean; yes?: boolean }, cmd: Command) => {
    const client = clientOf(cmd);
    const id = await groupId(client, ref);
    if (opts.recursive && !opts.yes) {
      const g = await client.request<Group>("GET", `/api/v1/groups/${id}`);
      await confirm(
        io,
        `Delete ${g.fullName} with every sub-group and device below it? Type the group's name to confirm: `,
        g.name,
      );
    }
    const result = await client.request<{ groups: number; devices: number }>(
      "DELETE",
      `/api/v1/groups/${id}${opts.recursive ? "?recursive=true" : ""}`,
    );
    print(
      wantsJson(cmd) ? JSON.stringify(result) : `deleted ${result.groups} group(s) and ${result.devices} device(s)`,
    );
  });

  return groups;
}

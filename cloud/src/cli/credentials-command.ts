import type { Credential, CredentialWithSecret } from "@fieldgate/shared";
import { Command } from "commander";
import { type CliIo, clientFor, confirm, wantsJson, withConnection } from "./cli-support.js";
import { renderTable } from "./table.js";

/** `fieldgate-cloud credentials …`: API access scoped to a group with a role. */
export function credentialsCommand(io: CliIo): Command {
  const print = io.out;
  const clientOf = clientFor(io);
  const credentials = new Command("credentials").description("API credentials scoped to a group with a role");
  const secretText = (r: CredentialWithSecret, verb: string) =>
    [
      `${verb} ${r.credential.id} (${r.credential.role} on ${r.credential.group.fullName})`,
      `secret (shown once): ${r.secret}`,
      `use it as: --credential ${r.credential.id}:<secret>, or FIELDGATE_CREDENTIAL`,
    ].join("\n");

  withConnection(
    credentials
      .command("create")
      .description("create a credential; the secret is shown once")
      .requiredOption("--name <name>", "what it is for")
      .requiredOption("--role <role>", "viewer, device-manager, firmware-manager or admin")
      .option("--group <group>", "the group it may act on, with its sub-groups (default: your own group)"),
  ).action(async (opts: { name: string; role: string; group?: string }, cmd: Command) => {
    const body = { name: opts.name, role: opts.role, group: opts.group };
    const r = await clientOf(cmd).request<CredentialWithSecret>("POST", "/api/v1/credentials", body);
    print(wantsJson(cmd) ? JSON.stringify(r, null, 2) : secretText(r, "created"));
  });

  withConnection(credentials.command("list").description("list credentials with their last use")).action(
    async (_o: unknown, cmd: Command) => {
      const { items } = await clientOf(cmd).request<{ items: Credential[] }>("GET", "/api/v1/credentials");
      if (wantsJson(cmd)) return print(JSON.stringify(items, null, 2));
      print(
        renderTable(
          ["ID", "NAME", "ROLE", "GROUP", "CREATED", "LAST USED"],
          items.map((c) => [c.id, c.name, c.role, c.group.fullName, c.createdAt, c.lastUsedAt ?? "never"]),
        ),
      );
    },
  );

  withConnection(
    credentials.command("regenerate <id>").description("a new secret; the old one stops working at once"),
  ).action(async (id: string, _o: unknown, cmd: Command) => {
    const r = await clientOf(cmd).request<CredentialWithSecret>(
      "POST",
      `/api/v1/credentials/${encodeURIComponent(id)}/regenerate`,
    );
    print(wantsJson(cmd) ? JSON.stringify(r, null, 2) : secretText(r, "regenerated"));
  });

  withConnection(
    credentials
      .command("delete <id>")
      .description("delete a credential")
      .option("-y, --yes", "do not ask for confirmation"),
  ).action(async (id: string, opts: { yes?: boolean }, cmd: Command) => {
    if (!opts.yes) await confirm(io, `Delete credential ${id}? Type its id to confirm: `, id);
    await clientOf(cmd).request<void>("DELETE", `/api/v1/credentials/${encodeURIComponent(id)}`);
    print(wantsJson(cmd) ? JSON.stringify({ deleted: id }) : `deleted ${id}`);
  });
  return credentials;
}

import fs from "node:fs";
import { FieldgateError, type User } from "@fieldgate/shared";
import { Command } from "commander";
import { dataFiles, type RuntimeInfo } from "../config/data-files.js";
import { writeSecretFile } from "../pki/secret-files.js";
import { ApiClient, type ConnectionOptions, type SavedSession, sessionFile } from "./api-client.js";
import { type CliIo, clientFor, confirm, readSecret, wantsJson, withConnection } from "./cli-support.js";
import { renderFields, renderTable } from "./table.js";

/** Parses repeatable `--role GROUP=ROLE`. */
function roleBindings(values: string[] | undefined): { group: string; role: string }[] | undefined {
  return values?.map((v) => {
    const eq = v.lastIndexOf("=");
    if (eq <= 0)
      throw new FieldgateError(
        "VALIDATION_FAILED",
        `--role ${JSON.stringify(v)}: expected GROUP=ROLE, like plant-a=viewer`,
        "role",
      );
    return { group: v.slice(0, eq), role: v.slice(eq + 1) };
  });
}

async function userId(client: ApiClient, ref: string): Promise<number> {
  if (/^\d+$/.test(ref)) return Number(ref);
  const { items } = await client.request<{ items: User[] }>("GET", "/api/v1/users");
  const hit = items.find((u) => u.email === ref.toLowerCase());
  if (!hit) throw new FieldgateError("USER_NOT_FOUND", `no user ${ref}`, "user");
  return hit.id;
}

const roleText = (u: User) => u.roles.map((r) => `${r.role} on ${r.group.fullName}`).join(", ") || "-";

/** `fieldgate-cloud users …`: people with roles on groups. */
export function usersCommand(io: CliIo): Command {
  const print = io.out;
  const clientOf = clientFor(io);
  const users = new Command("users").description("people of the organization and their roles on groups");

  withConnection(
    users
      .command("create <email>")
      .description("create a user; the password is read from stdin or asked for")
      .option("--name <name>")
      .option("--role <group=role...>", "a role on a group and its subtree, like plant-a=device-manager (repeatable)"),
  ).action(async (email: string, opts: { name?: string; role?: string[] }, cmd: Command) => {
    const password = await readSecret(io, `password for ${email}: `);
    const u = await clientOf(cmd).request<User>("POST", "/api/v1/users", {
      email,
      name: opts.name,
      password,
      roles: roleBindings(opts.role) ?? [],
    });
    print(wantsJson(cmd) ? JSON.stringify(u, null, 2) : `created user ${u.email} (id ${u.id}): ${roleText(u)}`);
  });

  withConnection(users.command("list").description("list users")).action(async (_o: unknown, cmd: Command) => {
    const { items } = await clientOf(cmd).request<{ items: User[] }>("GET", "/api/v1/users");
    if (wantsJson(cmd)) return print(JSON.stringify(items, null, 2));
    print(
      renderTable(
        ["ID", "EMAIL", "NAME", "ROLES", "LAST LOGIN"],
        items.map((u) => [String(u.id), u.email, u.name || "-", roleText(u), u.lastLoginAt ?? "never"]),
      ),
    );
  });

  withConnection(users.command("show <user>").description("show a user (id or email)")).action(
    async (ref: string, _o: unknown, cmd: Command) => {
      const client = clientOf(cmd);
      const u = await client.request<User>("GET", `/api/v1/users/${await userId(client, ref)}`);
      if (wantsJson(cmd)) return print(JSON.stringify(u, null, 2));
      print(
        renderFields([
          ["id", String(u.id)],
          ["email", u.email],
          ["name", u.name || "-"],
          ["roles", roleText(u)],
          ["last login", u.lastLoginAt ?? "never"],
        ]),
      );
    },
  );

  withConnection(
    users
      .command("edit <user>")
      .description("change a user's name, roles (replaces them) or password")
      .option("--name <name>")
      .option("--role <group=role...>", "the new roles (replace the old ones)")
      .option("--password", "set a new password (read from stdin or asked for); ends the user's sessions"),
  ).action(async (ref: string, opts: { name?: string; role?: string[]; password?: boolean }, cmd: Command) => {
    const client = clientOf(cmd);
    const password = opts.password ? await readSecret(io, "new password: ") : undefined;
    const u = await client.request<User>("PATCH", `/api/v1/users/${await userId(client, ref)}`, {
      name: opts.name,
      roles: roleBindings(opts.role),
      password,
    });
    print(wantsJson(cmd) ? JSON.stringify(u, null, 2) : `updated ${u.email}: ${roleText(u)}`);
  });

  withConnection(
    users.command("delete <user>").description("delete a user").option("-y, --yes", "do not ask for confirmation"),
  ).action(async (ref: string, opts: { yes?: boolean }, cmd: Command) => {
    if (!opts.yes) await confirm(io, `Delete user ${ref}? Type it again to confirm: `, ref);
    const client = clientOf(cmd);
    await client.request<void>("DELETE", `/api/v1/users/${await userId(client, ref)}`);
    print(wantsJson(cmd) ? JSON.stringify({ deleted: ref }) : `deleted ${ref}`);
  });
  return users;
}

/** `fieldgate-cloud login|logout|whoami`: a user's session for the CLI, saved 0600 in the config dir. */
export function sessionCommands(io: CliIo): Command[] {
  const print = io.out;
  const clientOf = clientFor(io);
  const login = withConnection(
    new Command("login")
      .description("log in as a user; the session (12 h) is saved for later commands")
      .requiredOption("--email <email>"),
  ).action(async (_o: unknown, cmd: Command) => {
    const opts = cmd.optsWithGlobals<ConnectionOptions & { email: string; json?: boolean }>();
    const files = dataFiles(opts.dataDir ?? io.env.FIELDGATE_DATA_DIR ?? "./data");
    let runtime: RuntimeInfo | undefined;
    try {
      runtime = JSON.parse(fs.readFileSync(files.runtime, "utf8")) as RuntimeInfo;
    } catch {
      runtime = undefined;
    }
    const url = opts.url ?? io.env.FIELDGATE_URL ?? runtime?.url;
    if (!url) throw new FieldgateError("CONFIG_INVALID", "pass --url or set FIELDGATE_URL", "url");
    const caFile = opts.caFile ?? io.env.FIELDGATE_CA_FILE ?? (fs.existsSync(files.caCert) ? files.caCert : undefined);
    // Checked before the password is asked for.
    const source =
      opts.url !== undefined ? "--url" : io.env.FIELDGATE_URL !== undefined ? "FIELDGATE_URL" : files.runtime;
    const anonymous = ApiClient.anonymous(url, caFile, source);
    const password = await readSecret(io, `password for ${opts.email}: `);
    const result = await anonymous.request<{ token: string; expiresAt: string; user: User }>(
      "POST",
      "/api/v1/auth/login",
      { email: opts.email, password },
    );
    const session: SavedSession = {
      url,
      token: result.token,
      expiresAt: result.expiresAt,
      email: result.user.email,
      ...(caFile && { caFile }),
    };
    writeSecretFile(sessionFile(io.env), `${JSON.stringify(session, null, 2)}\n`);
    print(
      opts.json
        ? JSON.stringify({ email: result.user.email, expiresAt: result.expiresAt })
        : `logged in as ${result.user.email} until ${result.expiresAt}`,
    );
  });

  const logout = new Command("logout")
    .description("end the saved session")
    .action(async (_o: unknown, cmd: Command) => {
      const file = sessionFile(io.env);
      if (fs.existsSync(file)) {
        try {
          // The connection options given in front (`--ca-file`, `--url`) still apply.
          await clientOf(cmd).request<void>("POST", "/api/v1/auth/logout");
        } finally {
          fs.rmSync(file, { force: true });
        }
      }
      print("logged out");
    });

  const whoami = withConnection(new Command("whoami").description("show who the CLI acts as, and its roles")).action(
    async (_o: unknown, cmd: Command) => {
      const me = await clientOf(cmd).request<{
        kind: string;
        id: string;
        organization: string;
        grants: { group: { fullName: string }; role: string }[];
      }>("GET", "/api/v1/auth/whoami");
      if (wantsJson(cmd)) return print(JSON.stringify(me, null, 2));
      print(
        renderFields([
          ["who", `${me.kind} ${me.id}`],
          ["organization", me.organization],
          ["roles", me.grants.map((g) => `${g.role} on ${g.group.fullName}`).join(", ")],
        ]),
      );
    },
  );
  return [login, logout, whoami];
}

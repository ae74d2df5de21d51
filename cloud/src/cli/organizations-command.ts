import { FieldgateError } from "@fieldgate/shared";
import { Command } from "commander";
import { ApiClient } from "./api-client.js";
import { type CliIo, clientFor, type OutputOptions, withConnection } from "./cli-support.js";

interface CreatedOrganization {
  organization: { name: string };
  credential: { id: string; secret: string };
}

/**
 * `fieldgate-cloud organizations …`: tenants, managed by whoever runs the cloud. Over the API like
 * every command, with the host credential (rights `organizations:*` only, in no organization):
 * by default the one `serve` saved in `--data-dir`'s host-credential.json, so it runs on the
 * cloud's host; no tenant credential or user can create or see other tenants.
 */
export function organizationsCommand(io: CliIo): Command {
  const print = io.out;
  const orgs = new Command("organizations").description(
    "tenants (with the host credential: run on the cloud host, or pass it with --credential)",
  );
  const hostClient = (cmd: Command) => ApiClient.fromOptions(cmd.optsWithGlobals<OutputOptions>(), io.env, "host");

  hostConnection(
    orgs
      .command("create <name>")
      .description("create an organization with its root group and an admin credential (secret shown once)"),
  ).action(async (name: string, _o: unknown, cmd: Command) => {
    const opts = cmd.optsWithGlobals<OutputOptions>();
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
      throw new FieldgateError("VALIDATION_FAILED", "name: 1 to 64 letters, digits, _ . -", "name");
    }
    const created = await hostClient(cmd).request<CreatedOrganization>("POST", "/api/v1/organizations", { name });
    const admin = created.credential;
    if (opts.json)
      return print(
        JSON.stringify({ organization: created.organization.name, credentialId: admin.id, secret: admin.secret }),
      );
    print(
      [
        `created organization ${created.organization.name}`,
        `admin credential (shown once): ${admin.id}:${admin.secret}`,
        "use it as --credential id:secret or FIELDGATE_CREDENTIAL",
      ].join("\n"),
    );
  });

  hostConnection(orgs.command("list").description("list organizations with their device counts")).action(
    async (_o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<OutputOptions>();
      const { items } = await hostClient(cmd).request<{ items: { name: string; devices: number }[] }>(
        "GET",
        "/api/v1/organizations",
      );
      if (opts.json) return print(JSON.stringify(items, null, 2));
      for (const r of items) print(`${r.name}\t${r.devices} device(s)`);
    },
  );
  return orgs;
}

/** The connection flags of `withConnection` without `--token`: host rights come with a credential only. */
function hostConnection(command: Command): Command {
  return command
    .option("--url <url>", "cloud API URL (env FIELDGATE_URL; default: the cloud on this host, from --data-dir)")
    .option(
      "--credential <id:secret>",
      "the host credential (env FIELDGATE_CREDENTIAL; default: <data-dir>/host-credential.json)",
    )
    .option("--ca-file <file>", "CA certificate to trust (env FIELDGATE_CA_FILE; default: <data-dir>/pki/ca.crt)")
    .option("--data-dir <dir>", "the cloud's data directory on this host (env FIELDGATE_DATA_DIR; default ./data)")
    .option("--json", "print JSON");
}

/** `fieldgate-cloud org show|set`: the caller's organization settings, over the API. */
export function orgCommand(io: CliIo): Command {
  const print = io.out;
  const clientOf = clientFor(io);
  const org = new Command("org").description("organization settings");
  withConnection(org.command("show").description("show the organization's settings")).action(
    async (_o: unknown, cmd: Command) => {
      print(JSON.stringify(await clientOf(cmd).request<unknown>("GET", "/api/v1/organization"), null, 2));
    },
  );
  withConnection(
    org
      .command("set")
      .description("change the organization's settings")
      .requiredOption(
        "--uuid-only-enrollment <on|off>",
        "allow enrollment by uuid alone (weaker; for Proficloud compatibility)",
      ),
  ).action(async (opts: { uuidOnlyEnrollment: string }, cmd: Command) => {
    if (opts.uuidOnlyEnrollment !== "on" && opts.uuidOnlyEnrollment !== "off") {
      throw new FieldgateError(
        "VALIDATION_FAILED",
        `--uuid-only-enrollment ${JSON.stringify(opts.uuidOnlyEnrollment)}: expected on or off`,
        "uuid-only-enrollment",
      );
    }
    const body = { uuidOnlyEnrollment: opts.uuidOnlyEnrollment === "on" };
    print(JSON.stringify(await clientOf(cmd).request<unknown>("PATCH", "/api/v1/organization", body), null, 2));
  });
  return org;
}

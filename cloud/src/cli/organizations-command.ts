import { FieldgateError } from "@fieldgate/shared";
import { Command } from "commander";
import { dataFiles } from "../config/data-files.js";
import { ApiCredentials } from "../credentials/api-credentials.js";
import { GroupTree } from "../groups/group-tree.js";
import { DeviceRegistry } from "../registry/device-registry.js";
import { openDatabase } from "../storage/database.js";
import { type CliIo, clientFor, withConnection } from "./cli-support.js";

/**
 * `fieldgate-cloud organizations …`: tenants, managed by whoever runs the cloud, on its host. It
 * works on the data directory directly (SQLite WAL lets it run beside `serve`), so no API
 * credential of any tenant can create or see other tenants.
 */
export function organizationsCommand(io: CliIo): Command {
  const print = io.out;
  const orgs = new Command("organizations").description("tenants (run on the cloud host; works on --data-dir)");
  const open = (dataDir: string | undefined) => {
    const db = openDatabase(dataFiles(dataDir ?? io.env.FIELDGATE_DATA_DIR ?? "./data").database);
    const groups = new GroupTree(db);
    return { db, groups, registry: new DeviceRegistry(db, groups, 0), credentials: new ApiCredentials(db) };
  };

  orgs
    .command("create <name>")
    .description("create an organization with its root group and an admin credential (secret shown once)")
    .option("--data-dir <dir>", "the cloud's data directory (env FIELDGATE_DATA_DIR; default ./data)")
    .option("--json", "print JSON")
    .action((name: string, _o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<{ dataDir?: string; json?: boolean }>();
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
        throw new FieldgateError("VALIDATION_FAILED", "name: 1 to 64 letters, digits, _ . -", "name");
      }
      const { db, groups, registry, credentials } = open(opts.dataDir);
      try {
        if (registry.organizationNamed(name)) {
          throw new FieldgateError("VALIDATION_FAILED", `an organization named ${name} exists`, "name");
        }
        const orgId = registry.createOrganization(name);
        const admin = credentials.create(orgId, groups.root(orgId).id, "admin", "admin");
        if (opts.json)
          return print(JSON.stringify({ organization: name, credentialId: admin.id, secret: admin.secret }));
        print(
          [
            `created organization ${name}`,
            `admin credential (shown once): ${admin.id}:${admin.secret}`,
            "use it as --credential id:secret or FIELDGATE_CREDENTIAL",
          ].join("\n"),
        );
      } finally {
        db.close();
      }
    });

  orgs
    .command("list")
    .description("list organizations")
    .option("--data-dir <dir>", "the cloud's data directory")
    .action((_o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<{ dataDir?: string }>();
      const { db, registry } = open(opts.dataDir);
      try {
        for (const r of registry.organizations()) print(`${r.name}\t${r.devices} device(s)`);
      } finally {
        db.close();
      }
    });
  return orgs;
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

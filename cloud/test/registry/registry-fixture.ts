import { FieldgateError } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import { type Generated, Kysely, SqliteDialect } from "kysely";
import { openTestDatabase } from "../../../test/support/test-database.js";
import type { GroupRow } from "../../src/groups/group-tree.js";
import type { IssuedCertificate } from "../../src/pki/certificate-authority.js";
import { DeviceRegistry, type RegistryGroups } from "../../src/registry/device-registry.js";
import type { CloudDatabase, Executor } from "../../src/storage/cloud-database.js";

type GroupTables = {
  groups: Omit<GroupRow, "id" | "description" | "timezone"> & {
    id: Generated<number>;
    description: Generated<string>;
    timezone: Generated<string>;
  };
};

/**
 * The group rows the registry reads, written straight through `database.kysely` so the registry
 * can be tested on either backend before the group tree is async. Only what these tests need.
 */
export class TestGroups implements RegistryGroups {
  private readonly db: Kysely<GroupTables>;

  constructor(database: CloudDatabase) {
    this.db = database.kysely.withTables<GroupTables>();
  }

  async createRoot(orgId: number, name: string, executor?: Executor): Promise<GroupRow> {
    return this.insert(executor ?? this.db, orgId, null, name, "/");
  }

  async create(orgId: number, parentId: number, fields: { name: string }): Promise<GroupRow> {
    const parent = await this.get(orgId, parentId);
    return this.insert(this.db, orgId, parent.id, fields.name, parent.path);
  }

  private async insert(
    db: Kysely<GroupTables>,
    orgId: number,
    parentId: number | null,
    name: string,
    parentPath: string,
  ): Promise<GroupRow> {
    const { id } = await db
      .insertInto("groups")
      .values({ org_id: orgId, parent_id: parentId, name, path: "", created_at: 0 })
      .returning("id")
      .executeTakeFirstOrThrow();
    await db
      .updateTable("groups")
      .set({ path: `${parentPath}${id}/` })
      .where("id", "=", id)
      .execute();
    return db.selectFrom("groups").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
  }

  async root(orgId: number): Promise<GroupRow> {
    return this.db
      .selectFrom("groups")
      .selectAll()
      .where("org_id", "=", orgId)
      .where("parent_id", "is", null)
      .executeTakeFirstOrThrow();
  }

  async get(orgId: number, id: number): Promise<GroupRow> {
    const row = await this.db
      .selectFrom("groups")
      .selectAll()
      .where("id", "=", id)
      .where("org_id", "=", orgId)
      .executeTakeFirst();
    if (!row) throw new FieldgateError("GROUP_NOT_FOUND", `no group ${id}`);
    return row;
  }

  async resolve(orgId: number, ref: string | number): Promise<GroupRow> {
    return this.get(orgId, Number(ref));
  }

  async fullName(orgId: number, path: string): Promise<string> {
    const rows: { id: number; name: string }[] = await this.db
      .selectFrom("groups")
      .select(["id", "name"])
      .where("org_id", "=", orgId)
      .execute();
    const names = new Map(rows.map((r) => [r.id, r.name]));
    return path
      .split("/")
      .filter(Boolean)
      .map((id) => names.get(Number(id)) ?? id)
      .join("/");
  }
}

export interface RegistryFixture {
  database: CloudDatabase;
  registry: DeviceRegistry;
  groups: TestGroups;
  orgId: number;
  root: GroupRow;
  dispose(): Promise<void>;
}

/** A registry on a fresh database of the suite's backend, or of `server` (null: SQLite), with its default organization. */
export async function openRegistry(
  options: { server?: string | null; windowMs?: number; clock?: () => number } = {},
): Promise<RegistryFixture> {
  const { database, dispose } = await openTestDatabase(options.server);
  const groups = new TestGroups(database);
  const registry = new DeviceRegistry(database, groups, options.windowMs ?? 600_000, options.clock ?? Date.now);
  const orgId = await registry.ensureDefaultOrganization();
  return { database, registry, groups, orgId, root: await groups.root(orgId), dispose };
}

/** A certificate as the CA would issue it, for tests that never sign anything. */
export function issued(serial: string): IssuedCertificate {
  const at = new Date(1_700_000_000_000);
  return { pem: `pem-${serial}`, serial, notBefore: at, notAfter: new Date(at.getTime() + 86_400_000), renewAfter: at };
}

/** The FieldgateError code a promise rejects with, or undefined when it resolves. */
export async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof FieldgateError) return err.code;
    throw err;
  }
  return undefined;
}

/**
 * A CloudDatabase over a SQLite handle a test opened itself, for suites of stores that are still
 * synchronous on that handle and need the async registry beside them.
 */
export function overEmbedded(db: Database.Database): CloudDatabase {
  const kysely = new Kysely<object>({ dialect: new SqliteDialect({ database: db }) });
  return { dialect: "sqlite", kysely, embedded: db, description: db.name, close: () => kysely.destroy() };
}

import { FieldgateError } from "@fieldgate/shared";
import { type Expression, type Generated, type Kysely, type SqlBool, sql } from "kysely";
import { subtreeEnd } from "../access/access-policy.js";
import { type CloudDatabase, type Executor, isUniqueViolation } from "../storage/cloud-database.js";

/** The `groups` table; only this module issues SQL on it. */
export type GroupsTable = {
  id: Generated<number>;
  org_id: number;
  parent_id: number | null;
  name: string;
  description: Generated<string>;
  timezone: Generated<string>;
  path: string;
  created_at: number;
};

type GroupTables = {
  groups: GroupsTable;
};

/** A group row as stored. `path` is the chain of ids, "/1/4/9/". */
export interface GroupRow {
  id: number;
  org_id: number;
  parent_id: number | null;
  name: string;
  description: string;
  timezone: string;
  path: string;
  created_at: number;
}

/** A group as the API shows it. `fullName` is the chain of names, "default/plant-a/line-1". */
export interface GroupView {
  id: number;
  name: string;
  fullName: string;
  description: string;
  timezone: string;
  parentId: number | null;
  createdAt: string;
  devices: number;
  subgroups: number;
}

export interface GroupFields {
  name?: string;
  description?: string;
  timezone?: string;
}

/** What a recursive delete removed, so the caller can revoke sessions and say what happened. */
export interface DeletedSubtree {
  groups: number;
  devices: string[];
}

/** The devices filed in groups (the registry owns them): counted for views, removed with a deleted subtree. */
export interface GroupMembers {
  /** Per group id given, how many devices it holds directly; groups holding none may be left out. */
  countByGroups(groupIds: readonly number[], executor?: Executor): Promise<Map<number, number>>;
  /** Deletes the devices of these groups (with all their data) in `executor`'s transaction; their uuids. */
  removeInGroups(groupIds: readonly number[], executor: Executor): Promise<string[]>;
}

/** Another capability's rows filed under groups (device types): removed with a deleted subtree, in its transaction. */
export interface GroupDependent {
  removeInGroups(groupIds: readonly number[], executor: Executor): Promise<unknown>;
}

/**
 * The group tree of each organization: create, edit, move and delete, with materialized paths so
 * that "this group and everything under it" is one range query.
 */
export class GroupTree {
  private readonly db: Kysely<GroupTables>;

  constructor(
    private readonly database: CloudDatabase,
    private readonly members: GroupMembers,
    private readonly clock: () => number = Date.now,
    /** Filled after construction where the dependents need the tree themselves (device types). */
    private readonly dependents: readonly GroupDependent[] = [],
  ) {
    this.db = database.kysely.withTables<GroupTables>();
  }

  /** Creates the root group of a new organization, in `executor`'s transaction when given (the organization's). */
  async createRoot(orgId: number, name: string, executor?: Executor): Promise<GroupRow> {
    return this.transaction(executor, async (trx) => {
      const { id } = await trx
        .insertInto("groups")
        .values({ org_id: orgId, parent_id: null, name, path: "", created_at: this.clock() })
        .returning("id")
        .executeTakeFirstOrThrow();
      await trx
        .updateTable("groups")
        .set({ path: `/${id}/` })
        .where("id", "=", id)
        .execute();
      return this.getIn(trx, orgId, id);
    });
  }

  async root(orgId: number, executor?: Executor): Promise<GroupRow> {
    const row = await this.on(executor)
      .selectFrom("groups")
      .selectAll()
      .where("org_id", "=", orgId)
      .where("parent_id", "is", null)
      .executeTakeFirst();
    if (!row) throw new Error(`organization ${orgId} has no root group`);
    return row;
  }

  /** The group, or GROUP_NOT_FOUND; a group of another organization is reported the same way. */
  async get(orgId: number, id: number, executor?: Executor): Promise<GroupRow> {
    return this.getIn(this.on(executor), orgId, id);
  }

  /** Resolves "plant-a/line-1" (below the root) or "default/plant-a/line-1" (from the root) to a group. */
  async byName(orgId: number, fullName: string, executor?: Executor): Promise<GroupRow> {
    const parts = fullName.split("/").filter(Boolean);
    let current = await this.root(orgId, executor);
    if (parts[0] === current.name) parts.shift();
    for (const part of parts) {
      const child = await this.on(executor)
        .selectFrom("groups")
        .selectAll()
        .where("parent_id", "=", current.id)
        .where("name", "=", part)
        .executeTakeFirst();
      if (!child) throw groupNotFound(fullName);
      current = child;
    }
    return current;
  }

  /** Resolves a reference that is either a numeric id or a name path. */
  async resolve(orgId: number, ref: string | number, executor?: Executor): Promise<GroupRow> {
    return typeof ref === "number" || /^\d+$/.test(ref)
      ? this.get(orgId, Number(ref), executor)
      : this.byName(orgId, ref, executor);
  }

  async create(
    orgId: number,
    parentId: number,
    fields: Required<Pick<GroupFields, "name">> & GroupFields,
  ): Promise<GroupRow> {
    return this.transaction(undefined, async (trx) => {
      await this.lockTree(trx, orgId);
      const parent = await this.getIn(trx, orgId, parentId);
      if (fields.timezone !== undefined) assertTimezone(fields.timezone);
      await this.assertFreeName(trx, parent.id, fields.name);
      const { id } = await trx
        .insertInto("groups")
        .values({
          org_id: orgId,
          parent_id: parent.id,
          name: fields.name,
          description: fields.description ?? "",
          timezone: fields.timezone ?? parent.timezone,
          path: "",
          created_at: this.clock(),
        })
        .returning("id")
        .executeTakeFirstOrThrow();
      await trx
        .updateTable("groups")
        .set({ path: `${parent.path}${id}/` })
        .where("id", "=", id)
        .execute();
      return this.getIn(trx, orgId, id);
    }).catch((err) => {
      throw isUniqueViolation(err) ? nameTaken(fields.name) : err;
    });
  }

  async edit(orgId: number, id: number, fields: GroupFields): Promise<GroupRow> {
    const row = await this.get(orgId, id);
    if (fields.timezone !== undefined) assertTimezone(fields.timezone);
    if (fields.name !== undefined && fields.name !== row.name && row.parent_id !== null)
      await this.assertFreeName(this.db, row.parent_id, fields.name);
    const changes: GroupFields = {};
    if (fields.name !== undefined) changes.name = fields.name;
    if (fields.description !== undefined) changes.description = fields.description;
    if (fields.timezone !== undefined) changes.timezone = fields.timezone;
    if (Object.keys(changes).length > 0) {
      try {
        await this.db.updateTable("groups").set(changes).where("id", "=", id).execute();
      } catch (err) {
        // Another edit took the name between the check and the update.
        throw isUniqueViolation(err) ? nameTaken(fields.name ?? row.name) : err;
      }
    }
    return this.get(orgId, id);
  }

  /** Moves a group and its subtree under a new parent; every descendant's path follows. */
  async move(orgId: number, id: number, newParentId: number): Promise<GroupRow> {
    let name = String(id);
    return this.transaction(undefined, async (trx) => {
      // Checked under the tree's lock: two moves racing could otherwise each put a group under the other.
      await this.lockTree(trx, orgId);
      const row = await this.getIn(trx, orgId, id);
      name = row.name;
      const parent = await this.getIn(trx, orgId, newParentId);
      if (row.parent_id === null) throw new FieldgateError("GROUP_MOVE_INVALID", "the root group cannot move", "group");
      if (parent.path.startsWith(row.path)) {
        throw new FieldgateError(
          "GROUP_MOVE_INVALID",
          "a group cannot move under itself or its own sub-groups",
          "parent",
        );
      }
      if (parent.id === row.parent_id) return row;
      await this.assertFreeName(trx, parent.id, row.name);
      const newPath = `${parent.path}${row.id}/`;
      await trx
        .updateTable("groups")
        .set({ path: sql<string>`cast(${newPath} as text) || substr(path, ${row.path.length + 1})` })
        .where((eb) => inSubtree(eb.ref("path"), row.path))
        .execute();
      await trx.updateTable("groups").set({ parent_id: parent.id }).where("id", "=", row.id).execute();
      return this.getIn(trx, orgId, id);
    }).catch((err) => {
      throw isUniqueViolation(err) ? nameTaken(name) : err;
    });
  }

  /**
   * Deletes a group. Refused while it holds devices or sub-groups unless `recursive`, which removes
   * the subtree with its devices (and all their data), device types and credentials scoped there.
   */
  async delete(orgId: number, id: number, recursive: boolean): Promise<DeletedSubtree> {
    return this.transaction(undefined, async (trx) => {
      // Under the tree's lock: a group created or moved into the subtree meanwhile would be left orphaned.
      await this.lockTree(trx, orgId);
      const row = await this.getIn(trx, orgId, id);
      if (row.parent_id === null)
        throw new FieldgateError("GROUP_MOVE_INVALID", "the root group cannot be deleted", "group");
      // Deepest first: a group goes only after the groups below it.
      const groupIds = (
        await trx
          .selectFrom("groups")
          .select("id")
          .where((eb) => inSubtree(eb.ref("path"), row.path))
          .orderBy(sql`length(path)`, "desc")
          .execute()
      ).map((g) => g.id);
      if (!recursive) {
        const counts = await this.members.countByGroups(groupIds, trx);
        const devices = [...counts.values()].reduce((sum, n) => sum + n, 0);
        if (devices > 0 || groupIds.length > 1) {
          throw new FieldgateError(
            "GROUP_NOT_EMPTY",
            `the group holds ${devices} device(s) and ${groupIds.length - 1} sub-group(s); delete them first or use --recursive`,
          );
        }
      }
      const devices = await this.members.removeInGroups(groupIds, trx);
      for (const dependent of this.dependents) await dependent.removeInGroups(groupIds, trx);
      await removeScopedCredentials(trx, groupIds);
      for (const g of groupIds) await trx.deleteFrom("groups").where("id", "=", g).execute();
      return { groups: groupIds.length, devices };
    });
  }

  /** Groups of the organization inside the given subtrees (`AccessPolicy.scopes`), as the API shows them. */
  async list(orgId: number, scopes: readonly string[]): Promise<GroupView[]> {
    if (scopes.length === 0) return [];
    const rows = await this.db
      .selectFrom("groups as g")
      .selectAll("g")
      .select((eb) =>
        eb
          .selectFrom("groups as c")
          .select(eb.fn.countAll<number>().as("n"))
          .whereRef("c.parent_id", "=", "g.id")
          .as("subgroups"),
      )
      .where("g.org_id", "=", orgId)
      .where((eb) => eb.or(scopes.map((scope) => inSubtree(eb.ref("g.path"), scope))))
      .orderBy("g.path")
      .execute();
    const devices = await this.members.countByGroups(rows.map((r) => r.id));
    const names = await this.names(orgId);
    return rows.map((r) => this.toView(r, names, devices.get(r.id) ?? 0, Number(r.subgroups ?? 0)));
  }

  async view(orgId: number, id: number): Promise<GroupView> {
    const row = await this.get(orgId, id);
    const devices = await this.members.countByGroups([id]);
    const { n: subgroups } = await this.db
      .selectFrom("groups")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("parent_id", "=", id)
      .executeTakeFirstOrThrow();
    return this.toView(row, await this.names(orgId), devices.get(id) ?? 0, Number(subgroups));
  }

  /** "default/plant-a/line-1" for a path "/1/4/9/". */
  async fullName(orgId: number, path: string, executor?: Executor): Promise<string> {
    const names = await this.names(orgId, executor);
    return pathIds(path)
      .map((id) => names.get(id) ?? String(id))
      .join("/");
  }

  /** Every group's path in the organization, by id (device types show and scope by their group's path). */
  async paths(orgId: number, executor?: Executor): Promise<Map<number, string>> {
    const rows = await this.on(executor)
      .selectFrom("groups")
      .select(["id", "path"])
      .where("org_id", "=", orgId)
      .execute();
    return new Map(rows.map((r) => [r.id, r.path]));
  }

  private async names(orgId: number, executor?: Executor): Promise<Map<number, string>> {
    const rows = await this.on(executor)
      .selectFrom("groups")
      .select(["id", "name"])
      .where("org_id", "=", orgId)
      .execute();
    return new Map(rows.map((r) => [r.id, r.name]));
  }

  private toView(row: GroupRow, names: Map<number, string>, devices: number, subgroups: number): GroupView {
    return {
      id: row.id,
      name: row.name,
      fullName: pathIds(row.path)
        .map((id) => names.get(id) ?? String(id))
        .join("/"),
      description: row.description,
      timezone: row.timezone,
      parentId: row.parent_id,
      createdAt: new Date(row.created_at).toISOString(),
      devices,
      subgroups,
    };
  }

  private async getIn(db: Kysely<GroupTables>, orgId: number, id: number): Promise<GroupRow> {
    const row = await db
      .selectFrom("groups")
      .selectAll()
      .where("id", "=", id)
      .where("org_id", "=", orgId)
      .executeTakeFirst();
    if (!row) throw groupNotFound(id);
    return row;
  }

  private async assertFreeName(db: Kysely<GroupTables>, parentId: number, name: string): Promise<void> {
    const taken = await db
      .selectFrom("groups")
      .select("id")
      .where("parent_id", "=", parentId)
      .where("name", "=", name)
      .executeTakeFirst();
    if (taken) throw nameTaken(name);
  }

  /**
   * Serializes changes to one organization's tree on PostgreSQL (its root row, locked until the
   * commit). SQLite has one writer at a time, and no FOR UPDATE.
   */
  private async lockTree(trx: Kysely<GroupTables>, orgId: number): Promise<void> {
    if (this.database.dialect !== "postgres") return;
    await trx
      .selectFrom("groups")
      .select("id")
      .where("org_id", "=", orgId)
      .where("parent_id", "is", null)
      .forUpdate()
      .execute();
  }

  private on(executor: Executor | undefined): Kysely<GroupTables> {
    return executor ? (executor as Kysely<GroupTables>) : this.db;
  }

  /** Runs `work` in `executor`'s transaction when given (another store's), else in a new one. */
  private transaction<T>(executor: Executor | undefined, work: (trx: Kysely<GroupTables>) => Promise<T>): Promise<T> {
    return executor ? work(executor as Kysely<GroupTables>) : this.db.transaction().execute(work);
  }
}

/**
 * The paths of the subtree at `prefix` ("/1/4/"): the range ["/1/4/", "/1/40"), since '0' follows
 * '/'. A range rather than LIKE, so no character of a path can act as a wildcard; the column's
 * bytewise order (COLLATE "C" on PostgreSQL) lets the unique index on `path` serve it.
 */
function inSubtree(path: Expression<string>, prefix: string) {
  return sql<SqlBool>`(${path} >= ${prefix} AND ${path} < ${subtreeEnd(prefix)})`;
}

/**
 * `api_credentials` belongs to credentials/; until that store offers `removeInGroups(groupIds, executor)`
 * (issue #14), the subtree delete removes the credentials scoped there itself, in its transaction.
 */
async function removeScopedCredentials(trx: Executor, groupIds: readonly number[]): Promise<void> {
  for (let start = 0; start < groupIds.length; start += 500) {
    await trx
      .deleteFrom("api_credentials")
      .where("group_id", "in", groupIds.slice(start, start + 500))
      .execute();
  }
}

function pathIds(path: string): number[] {
  return path.split("/").filter(Boolean).map(Number);
}

function nameTaken(name: string): FieldgateError {
  return new FieldgateError("GROUP_EXISTS", `a sibling group is already named ${JSON.stringify(name)}`, "name");
}

function assertTimezone(tz: string): void {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
  } catch {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `timezone ${JSON.stringify(tz)} is not an IANA time zone like Europe/Berlin`,
      "timezone",
    );
  }
}

/** What an unknown group reference gets (by id or by name); also a group outside the caller's scope. */
export function groupNotFound(ref: string | number): FieldgateError {
  const shown = typeof ref === "number" || /^\d+$/.test(ref) ? String(Number(ref)) : JSON.stringify(ref);
  return new FieldgateError("GROUP_NOT_FOUND", `no group ${shown}`, "group");
}

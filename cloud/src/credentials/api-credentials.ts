import { randomBytes } from "node:crypto";
import { FieldgateError } from "@fieldgate/shared";
import { type Expression, type Kysely, type RawBuilder, type SqlBool, sql } from "kysely";
import { subtreeEnd } from "../access/access-policy.js";
import type { Role } from "../access/roles.js";
import { affectedRows, type CloudDatabase, type Executor } from "../storage/cloud-database.js";
import { hashSecret, newSecret, secretMatches } from "./secrets.js";

/** An API credential as stored, joined with its group's path. */
export interface CredentialRecord {
  id: string;
  orgId: number;
  groupId: number;
  groupPath: string;
  name: string;
  role: Role;
  createdAt: number;
  lastUsedAt: number | null;
}

/** The table this module owns. */
export type ApiCredentialTables = {
  api_credentials: {
    id: string;
    org_id: number;
    group_id: number;
    name: string;
    role: Role;
    secret_hash: Buffer;
    created_at: number;
    last_used_at: number | null;
  };
};

/** The groups columns a credential is shown with: read in the same query, never written here. */
type GroupPaths = { groups: { id: number; path: string } };

type CredentialDb = Kysely<ApiCredentialTables & GroupPaths>;

type CredentialRow = ApiCredentialTables["api_credentials"] & { path: string };

/**
 * API credentials, each scoped to one group with one role (as Sigfox's per-group "API access").
 * The secret is shown once, stored as a hash, and compared in constant time.
 */
export class ApiCredentials {
  private readonly db: CredentialDb;

  constructor(
    database: CloudDatabase,
    private readonly clock: () => number = Date.now,
  ) {
    this.db = database.kysely.withTables<ApiCredentialTables & GroupPaths>();
  }

  /** A new credential; in `executor`'s transaction when given (a new organization's admin). */
  async create(
    orgId: number,
    groupId: number,
    name: string,
    role: Role,
    executor?: Executor,
  ): Promise<{ id: string; secret: string }> {
    const id = `fgc_${randomBytes(8).toString("hex")}`;
    const secret = newSecret("fgs_");
    const db: CredentialDb = executor ?? this.db;
    await db
      .insertInto("api_credentials")
      .values({
        id,
        org_id: orgId,
        group_id: groupId,
        name,
        role,
        secret_hash: hashSecret(secret),
        created_at: this.clock(),
      })
      .execute();
    return { id, secret };
  }

  async count(): Promise<number> {
    const row = await this.db
      .selectFrom("api_credentials")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Returns the credential for a matching id and secret. Unknown ids cost the same as wrong secrets. */
  async authenticate(id: string, secret: string): Promise<CredentialRecord | undefined> {
    // One row of one shape comes back for a known id and an unknown one alike, and one hash is
    // compared: a wrong secret costs the same either way. The full row is read after a match.
    const stored = await sql<{ secret_hash: Buffer | null }>`
      SELECT c.secret_hash FROM (SELECT CAST(${id} AS TEXT) AS id) AS q LEFT JOIN api_credentials c ON c.id = q.id`
      .execute(this.db)
      .then((r) => r.rows[0]);
    if (!stored || !secretMatches(secret, stored.secret_hash)) return undefined;
    const row = await this.row(id);
    if (!row) return undefined;
    const now = this.clock();
    // Last use is for audits; a minute's precision spares a write per request.
    if (row.last_used_at === null || now - row.last_used_at > 60_000) {
      await this.db.updateTable("api_credentials").set({ last_used_at: now }).where("id", "=", row.id).execute();
    }
    return toRecord(row);
  }

  /** The credential, or CREDENTIAL_NOT_FOUND (also for another organization's). */
  async get(orgId: number, id: string): Promise<CredentialRecord> {
    const row = await this.row(id);
    if (!row || row.org_id !== orgId) throw credentialNotFound(id);
    return toRecord(row);
  }

  /** The organization's credentials scoped to groups inside the given subtrees (`AccessPolicy.scopes`). */
  async list(orgId: number, scopes: readonly string[]): Promise<CredentialRecord[]> {
    if (scopes.length === 0) return [];
    const rows = await this.withPath(this.db)
      .where("c.org_id", "=", orgId)
      .where((eb) => eb.or(scopes.map((scope) => inSubtree(eb.ref("g.path"), scope))))
      .orderBy("c.created_at")
      .orderBy("c.id")
      .execute();
    return rows.map(toRecord);
  }

  /** A new secret; the old one stops working at once. */
  async regenerate(orgId: number, id: string): Promise<{ id: string; secret: string }> {
    await this.get(orgId, id);
    const secret = newSecret("fgs_");
    await this.db
      .updateTable("api_credentials")
      .set({ secret_hash: hashSecret(secret) })
      .where("id", "=", id)
      .execute();
    return { id, secret };
  }

  async delete(orgId: number, id: string): Promise<void> {
    await this.get(orgId, id);
    await this.db.deleteFrom("api_credentials").where("id", "=", id).execute();
  }

  /** Deletes the credentials scoped to these groups in `executor`'s transaction (a recursive group delete); how many. */
  async removeInGroups(groupIds: readonly number[], executor: Executor): Promise<number> {
    const db: CredentialDb = executor;
    let removed = 0;
    // In slices, so a large subtree stays within either backend's bound-parameter limit.
    for (let start = 0; start < groupIds.length; start += 500) {
      const slice = groupIds.slice(start, start + 500);
      removed += affectedRows(await db.deleteFrom("api_credentials").where("group_id", "in", slice).execute());
    }
    return removed;
  }

  private withPath(db: CredentialDb) {
    return db
      .selectFrom("api_credentials as c")
      .innerJoin("groups as g", "g.id", "c.group_id")
      .selectAll("c")
      .select("g.path");
  }

  private row(id: string): Promise<CredentialRow | undefined> {
    return this.withPath(this.db).where("c.id", "=", id).executeTakeFirst();
  }
}

/** `path` inside the subtree `prefix` ("/1/4/"): a range an index on the path serves. */
function inSubtree(path: Expression<string>, prefix: string): RawBuilder<SqlBool> {
  return sql<SqlBool>`(${path} >= ${prefix} AND ${path} < ${subtreeEnd(prefix)})`;
}

function toRecord(row: CredentialRow): CredentialRecord {
  return {
    id: row.id,
    orgId: row.org_id,
    groupId: row.group_id,
    groupPath: row.path,
    name: row.name,
    role: row.role,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}

/** What an unknown credential id gets; also a credential outside the caller's scope. */
export function credentialNotFound(id: string): FieldgateError {
  return new FieldgateError("CREDENTIAL_NOT_FOUND", `no credential ${id}`, "id");
}

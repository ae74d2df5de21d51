import { randomBytes } from "node:crypto";
import { type Kysely, sql } from "kysely";
import type { HostPrincipal } from "../access/access-policy.js";
import { HOST_PERMISSIONS } from "../access/roles.js";
import type { CloudDatabase } from "../storage/cloud-database.js";
import { hashSecret, newSecret, secretMatches } from "./secrets.js";

/** What every host credential id starts with; tenant credentials start with `fgc_`. */
export const HOST_CREDENTIAL_PREFIX = "fgh_";

/** The table this module owns. */
export type HostCredentialTables = {
  host_credentials: { id: string; secret_hash: Buffer; created_at: number; last_used_at: number | null };
};

/**
 * Host credentials: held by whoever runs the cloud, in no organization and with no group or role,
 * holding only the `organizations:*` rights (create and list tenants). Only this module touches
 * the `host_credentials` table. The secret is shown once, stored as a hash, compared in constant time.
 */
export class HostCredentials {
  private readonly db: Kysely<HostCredentialTables>;

  constructor(
    database: CloudDatabase,
    private readonly clock: () => number = Date.now,
  ) {
    this.db = database.kysely.withTables<HostCredentialTables>();
  }

  async create(): Promise<{ id: string; secret: string }> {
    const id = `${HOST_CREDENTIAL_PREFIX}${randomBytes(8).toString("hex")}`;
    const secret = newSecret("fgs_");
    await this.db
      .insertInto("host_credentials")
      .values({ id, secret_hash: hashSecret(secret), created_at: this.clock() })
      .execute();
    return { id, secret };
  }

  async count(): Promise<number> {
    const row = await this.db
      .selectFrom("host_credentials")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** The host principal for a matching id and secret; unknown ids cost the same as wrong secrets. */
  async authenticate(id: string, secret: string): Promise<HostPrincipal | undefined> {
    // One row of one shape for a known and an unknown id alike, so one hash is always compared.
    const stored = await sql<{ secret_hash: Buffer | null; last_used_at: number | null }>`
      SELECT c.secret_hash, c.last_used_at FROM (SELECT CAST(${id} AS TEXT) AS id) AS q LEFT JOIN host_credentials c ON c.id = q.id`
      .execute(this.db)
      .then((r) => r.rows[0]);
    if (!stored || !secretMatches(secret, stored.secret_hash)) return undefined;
    const now = this.clock();
    // Last use is for audits; a minute's precision spares a write per request.
    if (stored.last_used_at === null || now - Number(stored.last_used_at) > 60_000) {
      await this.db.updateTable("host_credentials").set({ last_used_at: now }).where("id", "=", id).execute();
    }
    return { kind: "host", id, permissions: HOST_PERMISSIONS };
  }
}

import { randomBytes } from "node:crypto";
import type Database from "better-sqlite3";
import type { HostPrincipal } from "../access/access-policy.js";
import { HOST_PERMISSIONS } from "../access/roles.js";
import { hashSecret, newSecret, secretMatches } from "./secrets.js";

/** What every host credential id starts with; tenant credentials start with `fgc_`. */
export const HOST_CREDENTIAL_PREFIX = "fgh_";

/**
 * Host credentials: held by whoever runs the cloud, in no organization and with no group or role,
 * holding only the `organizations:*` rights (create and list tenants). Only this module touches
 * the `host_credentials` table. The secret is shown once, stored as a hash, compared in constant time.
 */
export class HostCredentials {
  private secretLookup: Database.Statement | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly clock: () => number = Date.now,
  ) {}

  create(): { id: string; secret: string } {
    const id = `${HOST_CREDENTIAL_PREFIX}${randomBytes(8).toString("hex")}`;
    const secret = newSecret("fgs_");
    this.db
      .prepare("INSERT INTO host_credentials (id, secret_hash, created_at) VALUES (?, ?, ?)")
      .run(id, hashSecret(secret), this.clock());
    return { id, secret };
  }

  count(): number {
    return (this.db.prepare("SELECT count(*) AS n FROM host_credentials").get() as { n: number }).n;
  }

  /** The host principal for a matching id and secret; unknown ids cost the same as wrong secrets. */
  authenticate(id: string, secret: string): HostPrincipal | undefined {
    this.secretLookup ??= this.db.prepare(
      "SELECT c.secret_hash FROM (SELECT ? AS id) AS q LEFT JOIN host_credentials c ON c.id = q.id",
    );
    const stored = this.secretLookup.get(id) as { secret_hash: Buffer | null };
    if (!secretMatches(secret, stored.secret_hash)) return undefined;
    const row = this.db.prepare("SELECT last_used_at FROM host_credentials WHERE id = ?").get(id) as
      | { last_used_at: number | null }
      | undefined;
    if (!row) return undefined;
    const now = this.clock();
    if (row.last_used_at === null || now - row.last_used_at > 60_000) {
      this.db.prepare("UPDATE host_credentials SET last_used_at = ? WHERE id = ?").run(now, id);
    }
    return { kind: "host", id, permissions: HOST_PERMISSIONS };
  }
}

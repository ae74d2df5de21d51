import { randomBytes } from "node:crypto";
import type Database from "better-sqlite3";
import { hashSecret, newSecret, secretMatches } from "./secrets.js";

export type Role = "admin" | "viewer";

/** The identity behind an authenticated API request. */
export interface Principal {
  credentialId: string;
  orgId: number;
  role: Role;
}

interface CredentialRow {
  id: string;
  org_id: number;
  role: Role;
  secret_hash: Buffer;
  last_used_at: number | null;
}

/** API credentials: an id and a secret shown once, stored as a hash and compared in constant time. */
export class ApiCredentials {
  constructor(private readonly db: Database.Database) {}

  create(orgId: number, name: string, role: Role): { id: string; secret: string } {
    const id = `fgc_${randomBytes(8).toString("hex")}`;
    const secret = newSecret("fgs_");
    this.db
      .prepare(
        "INSERT INTO api_credentials (id, org_id, name, role, secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
      )
      .run(id, orgId, name, role, hashSecret(secret), Date.now());
    return { id, secret };
  }

  count(): number {
    return (this.db.prepare("SELECT count(*) AS n FROM api_credentials").get() as { n: number }).n;
  }

  /** Returns the principal for a matching id and secret, or undefined. Unknown ids cost the same as wrong secrets. */
  authenticate(id: string, secret: string, now = Date.now()): Principal | undefined {
    const row = this.db
      .prepare("SELECT id, org_id, role, secret_hash, last_used_at FROM api_credentials WHERE id = ?")
      .get(id) as CredentialRow | undefined;
    if (!secretMatches(secret, row?.secret_hash) || !row) return undefined;
    // Last use is for audits; a minute's precision spares a write per request.
    if (row.last_used_at === null || now - row.last_used_at > 60_000) {
      this.db.prepare("UPDATE api_credentials SET last_used_at = ? WHERE id = ?").run(now, row.id);
    }
    return { credentialId: row.id, orgId: row.org_id, role: row.role };
  }
}

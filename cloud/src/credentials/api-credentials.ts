import { randomBytes } from "node:crypto";
import { FieldgateError } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import type { Role } from "../access/roles.js";
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

interface CredentialRow {
  id: string;
  org_id: number;
  group_id: number;
  path: string;
  name: string;
  role: Role;
  secret_hash: Buffer;
  created_at: number;
  last_used_at: number | null;
}

/**
 * API credentials, each scoped to one group with one role (as Sigfox's per-group "API access").
 * The secret is shown once, stored as a hash, and compared in constant time.
 */
export class ApiCredentials {
  private secretLookup: Database.Statement | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly clock: () => number = Date.now,
  ) {}

  create(orgId: number, groupId: number, name: string, role: Role): { id: string; secret: string } {
    const id = `fgc_${randomBytes(8).toString("hex")}`;
    const secret = newSecret("fgs_");
    this.db
      .prepare(
        "INSERT INTO api_credentials (id, org_id, group_id, name, role, secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      )
      .run(id, orgId, groupId, name, role, hashSecret(secret), this.clock());
    return { id, secret };
  }

  count(): number {
    return (this.db.prepare("SELECT count(*) AS n FROM api_credentials").get() as { n: number }).n;
  }

  /** Returns the credential for a matching id and secret. Unknown ids cost the same as wrong secrets. */
  authenticate(id: string, secret: string): CredentialRecord | undefined {
    // One row of one shape comes back for a known id and an unknown one alike, and one hash is
    // compared: a wrong secret costs the same either way. The full row is read after a match.
    this.secretLookup ??= this.db.prepare(
      "SELECT c.secret_hash FROM (SELECT ? AS id) AS q LEFT JOIN api_credentials c ON c.id = q.id",
    );
    const stored = this.secretLookup.get(id) as { secret_hash: Buffer | null };
    if (!secretMatches(secret, stored.secret_hash)) return undefined;
    const row = this.row(id);
    if (!row) return undefined;
    const now = this.clock();
    // Last use is for audits; a minute's precision spares a write per request.
    if (row.last_used_at === null || now - row.last_used_at > 60_000) {
      this.db.prepare("UPDATE api_credentials SET last_used_at = ? WHERE id = ?").run(now, row.id);
    }
    return toRecord(row);
  }

  /** The credential, or CREDENTIAL_NOT_FOUND (also for another organization's). */
  get(orgId: number, id: string): CredentialRecord {
    const row = this.row(id);
    if (!row || row.org_id !== orgId) throw credentialNotFound(id);
    return toRecord(row);
  }

  list(orgId: number, scope: { clause: string; params: string[] }): CredentialRecord[] {
    return (
      this.db
        .prepare(
          `SELECT c.*, g.path FROM api_credentials c JOIN groups g ON g.id = c.group_id
           WHERE c.org_id = ? AND ${scope.clause} ORDER BY c.created_at, c.id`,
        )
        .all(orgId, ...scope.params) as CredentialRow[]
    ).map(toRecord);
  }

  /** A new secret; the old one stops working at once. */
  regenerate(orgId: number, id: string): { id: string; secret: string } {
    this.get(orgId, id);
    const secret = newSecret("fgs_");
    this.db.prepare("UPDATE api_credentials SET secret_hash = ? WHERE id = ?").run(hashSecret(secret), id);
    return { id, secret };
  }

  delete(orgId: number, id: string): void {
    this.get(orgId, id);
    this.db.prepare("DELETE FROM api_credentials WHERE id = ?").run(id);
  }

  private row(id: string): CredentialRow | undefined {
    return this.db
      .prepare("SELECT c.*, g.path FROM api_credentials c JOIN groups g ON g.id = c.group_id WHERE c.id = ?")
      .get(id) as CredentialRow | undefined;
  }
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

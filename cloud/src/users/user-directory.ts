import { FieldgateError } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import type { Grant, Principal } from "../access/access-policy.js";
import type { Role } from "../access/roles.js";
import { hashSecret, newSecret } from "../credentials/secrets.js";
import { LoginThrottle } from "./login-throttle.js";
import { hashPassword, verifyPassword } from "./password-hash.js";

export const SESSION_TTL_MS = 12 * 3600_000;
export const MIN_PASSWORD_LENGTH = 12;

export interface UserRecord {
  id: number;
  orgId: number;
  email: string;
  name: string;
  roles: { groupId: number; groupPath: string; role: Role }[];
  createdAt: number;
  lastLoginAt: number | null;
}

interface UserRow {
  id: number;
  org_id: number;
  email: string;
  name: string;
  password_hash: string;
  created_at: number;
  last_login_at: number | null;
}

/** A login tried inside the account's delay: 429 LOGIN_THROTTLED, with the seconds to wait. */
export class LoginThrottledError extends FieldgateError {
  constructor(readonly retryAfterSeconds: number) {
    super("LOGIN_THROTTLED", `too many failed logins for this account; retry in ${retryAfterSeconds} s`);
  }
}

/**
 * People: users of an organization with roles on groups, a scrypt password, and short-lived
 * session tokens for the CLI and the console. Session tokens are stored hashed.
 */
export class UserDirectory {
  constructor(
    private readonly db: Database.Database,
    private readonly clock: () => number = Date.now,
    private readonly throttle: LoginThrottle = new LoginThrottle(clock),
  ) {}

  async create(
    orgId: number,
    fields: { email: string; name?: string; password: string; roles: { groupId: number; role: Role }[] },
  ): Promise<UserRecord> {
    assertPassword(fields.password);
    const hash = await hashPassword(fields.password);
    const email = fields.email.toLowerCase();
    const id = this.db.transaction(() => {
      if (this.db.prepare("SELECT 1 FROM users WHERE email = ?").get(email)) {
        throw new FieldgateError("USER_EXISTS", `a user with email ${email} already exists`, "email");
      }
      const userId = Number(
        this.db
          .prepare("INSERT INTO users (org_id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)")
          .run(orgId, email, fields.name ?? "", hash, this.clock()).lastInsertRowid,
      );
      this.writeRoles(userId, fields.roles);
      return userId;
    })();
    return this.get(orgId, id);
  }

  get(orgId: number, id: number): UserRecord {
    const row = this.db.prepare("SELECT * FROM users WHERE id = ? AND org_id = ?").get(id, orgId) as
      | UserRow
      | undefined;
    if (!row) throw new FieldgateError("USER_NOT_FOUND", `no user ${id}`, "id");
    return this.toRecord(row);
  }

  list(orgId: number): UserRecord[] {
    return (this.db.prepare("SELECT * FROM users WHERE org_id = ? ORDER BY email").all(orgId) as UserRow[]).map((r) =>
      this.toRecord(r),
    );
  }

  async edit(
    orgId: number,
    id: number,
    fields: { name?: string; password?: string; roles?: { groupId: number; role: Role }[] },
  ): Promise<UserRecord> {
    const user = this.get(orgId, id);
    if (fields.password !== undefined) assertPassword(fields.password);
    const hash = fields.password === undefined ? undefined : await hashPassword(fields.password);
    this.db.transaction(() => {
      if (fields.name !== undefined) this.db.prepare("UPDATE users SET name = ? WHERE id = ?").run(fields.name, id);
      if (hash !== undefined) {
        this.db.prepare("UPDATE users SET password_hash = ? WHERE id = ?").run(hash, id);
        // A new password ends every session made with the old one.
        this.db.prepare("DELETE FROM sessions WHERE user_id = ?").run(id);
      }
      if (fields.roles !== undefined) {
        this.db.prepare("DELETE FROM user_roles WHERE user_id = ?").run(id);
        this.writeRoles(id, fields.roles);
      }
    })();
    // A password an admin set is tried without the old one's delay.
    if (hash !== undefined) this.throttle.succeeded(user.email);
    return this.get(orgId, id);
  }

  delete(orgId: number, id: number): void {
    this.get(orgId, id);
    this.db.prepare("DELETE FROM users WHERE id = ?").run(id);
  }

  /**
   * Checks the password and opens a session. Unknown emails and wrong passwords answer alike,
   * and both are slowed alike after five failures in a row (LoginThrottle): a try inside the
   * delay is refused with LoginThrottledError before any password is checked.
   */
  async login(email: string, password: string): Promise<{ token: string; expiresAt: number; user: UserRecord }> {
    const key = email.toLowerCase();
    const waitMs = this.throttle.waitMs(key);
    if (waitMs > 0) throw new LoginThrottledError(Math.ceil(waitMs / 1000));
    // Counted as a failure before the (slow) check, so tries sent in parallel are slowed too.
    this.throttle.failed(key);
    const row = this.db.prepare("SELECT * FROM users WHERE email = ?").get(key) as UserRow | undefined;
    const ok = await verifyPassword(password, row?.password_hash);
    if (!row || !ok) throw new FieldgateError("LOGIN_FAILED");
    this.throttle.succeeded(key);
    const now = this.clock();
    const token = newSecret("fgu_");
    const expiresAt = now + SESSION_TTL_MS;
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM sessions WHERE expires_at <= ?").run(now);
      this.db
        .prepare("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
        .run(hashSecret(token), row.id, now, expiresAt);
      this.db.prepare("UPDATE users SET last_login_at = ? WHERE id = ?").run(now, row.id);
    })();
    return { token, expiresAt, user: this.get(row.org_id, row.id) };
  }

  logout(token: string): void {
    this.db.prepare("DELETE FROM sessions WHERE token_hash = ?").run(hashSecret(token));
  }

  /** The principal behind a session token, or undefined when unknown or expired. */
  principalForSession(token: string): Principal | undefined {
    // The token is a 256-bit random secret, so looking up its hash leaks nothing useful by timing.
    const row = this.db
      .prepare(
        "SELECT u.id, u.org_id FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
      )
      .get(hashSecret(token), this.clock()) as { id: number; org_id: number } | undefined;
    if (!row) return undefined;
    const grants: Grant[] = this.roleRows(row.id).map((r) => ({ groupId: r.group_id, path: r.path, role: r.role }));
    return { kind: "user", id: `user:${row.id}`, orgId: row.org_id, grants };
  }

  private writeRoles(userId: number, roles: { groupId: number; role: Role }[]): void {
    const insert = this.db.prepare("INSERT OR REPLACE INTO user_roles (user_id, group_id, role) VALUES (?, ?, ?)");
    for (const r of roles) insert.run(userId, r.groupId, r.role);
  }

  private roleRows(userId: number): { group_id: number; path: string; role: Role }[] {
    return this.db
      .prepare(
        "SELECT r.group_id, g.path, r.role FROM user_roles r JOIN groups g ON g.id = r.group_id WHERE r.user_id = ? ORDER BY g.path",
      )
      .all(userId) as { group_id: number; path: string; role: Role }[];
  }

  private toRecord(row: UserRow): UserRecord {
    return {
      id: row.id,
      orgId: row.org_id,
      email: row.email,
      name: row.name,
      roles: this.roleRows(row.id).map((r) => ({ groupId: r.group_id, groupPath: r.path, role: r.role })),
      createdAt: row.created_at,
      lastLoginAt: row.last_login_at,
    };
  }
}

function assertPassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `password must have at least ${MIN_PASSWORD_LENGTH} characters`,
      "password",
    );
  }
}

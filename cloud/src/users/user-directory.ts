import { FieldgateError } from "@fieldgate/shared";
import type { Generated, Kysely, Selectable } from "kysely";
import type { Grant, Principal } from "../access/access-policy.js";
import type { Role } from "../access/roles.js";
import { hashSecret, newSecret } from "../credentials/secrets.js";
import { type CloudDatabase, isUniqueViolation } from "../storage/cloud-database.js";
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

/** A login tried inside the account's delay: 429 LOGIN_THROTTLED, with the seconds to wait. */
export class LoginThrottledError extends FieldgateError {
  constructor(readonly retryAfterSeconds: number) {
    super("LOGIN_THROTTLED", `too many failed logins for this account; retry in ${retryAfterSeconds} s`);
  }
}

/** The tables this module owns. */
export type UserTables = {
  users: {
    id: Generated<number>;
    org_id: number;
    email: string;
    name: string;
    password_hash: string;
    created_at: number;
    last_login_at: number | null;
  };
  user_roles: { user_id: number; group_id: number; role: Role };
  sessions: { token_hash: Buffer; user_id: number; created_at: number; expires_at: number };
};

/** The groups columns a role is shown with: read in the same query, never written here. */
type GroupPaths = {
  groups: { id: number; path: string };
};

type UserDb = Kysely<UserTables & GroupPaths>;

/**
 * People: users of an organization with roles on groups, a scrypt password, and short-lived
 * session tokens for the CLI and the console. Session tokens are stored hashed.
 */
export class UserDirectory {
  private readonly db: UserDb;

  constructor(
    database: CloudDatabase,
    private readonly clock: () => number = Date.now,
    private readonly throttle: LoginThrottle = new LoginThrottle(clock),
  ) {
    this.db = database.kysely.withTables<UserTables & GroupPaths>();
  }

  async create(
    orgId: number,
    fields: { email: string; name?: string; password: string; roles: { groupId: number; role: Role }[] },
  ): Promise<UserRecord> {
    assertPassword(fields.password);
    const hash = await hashPassword(fields.password);
    const email = fields.email.toLowerCase();
    let id: number;
    try {
      id = await this.db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto("users")
          .values({ org_id: orgId, email, name: fields.name ?? "", password_hash: hash, created_at: this.clock() })
          .returning("id")
          .executeTakeFirstOrThrow();
        await writeRoles(trx, inserted.id, fields.roles);
        return inserted.id;
      });
    } catch (err) {
      // The unique email decides, so two creates racing for one address cannot both win.
      if (isUniqueViolation(err)) {
        throw new FieldgateError("USER_EXISTS", `a user with email ${email} already exists`, "email");
      }
      throw err;
    }
    return this.get(orgId, id);
  }

  async get(orgId: number, id: number): Promise<UserRecord> {
    const row = await this.db
      .selectFrom("users")
      .selectAll()
      .where("id", "=", id)
      .where("org_id", "=", orgId)
      .executeTakeFirst();
    if (!row) throw new FieldgateError("USER_NOT_FOUND", `no user ${id}`, "id");
    return this.toRecord(row);
  }

  async list(orgId: number): Promise<UserRecord[]> {
    const rows = await this.db.selectFrom("users").selectAll().where("org_id", "=", orgId).orderBy("email").execute();
    return Promise.all(rows.map((r) => this.toRecord(r)));
  }

  async edit(
    orgId: number,
    id: number,
    fields: { name?: string; password?: string; roles?: { groupId: number; role: Role }[] },
  ): Promise<UserRecord> {
    const user = await this.get(orgId, id);
    if (fields.password !== undefined) assertPassword(fields.password);
    const hash = fields.password === undefined ? undefined : await hashPassword(fields.password);
    await this.db.transaction().execute(async (trx) => {
      if (fields.name !== undefined)
        await trx.updateTable("users").set({ name: fields.name }).where("id", "=", id).execute();
      if (hash !== undefined) {
        await trx.updateTable("users").set({ password_hash: hash }).where("id", "=", id).execute();
        // A new password ends every session made with the old one.
        await trx.deleteFrom("sessions").where("user_id", "=", id).execute();
      }
      if (fields.roles !== undefined) {
        await trx.deleteFrom("user_roles").where("user_id", "=", id).execute();
        await writeRoles(trx, id, fields.roles);
      }
    });
    // A password an admin set is tried without the old one's delay.
    if (hash !== undefined) this.throttle.succeeded(user.email);
    return this.get(orgId, id);
  }

  async delete(orgId: number, id: number): Promise<void> {
    await this.get(orgId, id);
    await this.db.deleteFrom("users").where("id", "=", id).execute();
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
    const row = await this.db.selectFrom("users").selectAll().where("email", "=", key).executeTakeFirst();
    const ok = await verifyPassword(password, row?.password_hash);
    if (!row || !ok) throw new FieldgateError("LOGIN_FAILED");
    this.throttle.succeeded(key);
    const now = this.clock();
    const token = newSecret("fgu_");
    const expiresAt = now + SESSION_TTL_MS;
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom("sessions").where("expires_at", "<=", now).execute();
      await trx
        .insertInto("sessions")
        .values({ token_hash: hashSecret(token), user_id: row.id, created_at: now, expires_at: expiresAt })
        .execute();
      await trx.updateTable("users").set({ last_login_at: now }).where("id", "=", row.id).execute();
    });
    return { token, expiresAt, user: await this.get(row.org_id, row.id) };
  }

  async logout(token: string): Promise<void> {
    await this.db.deleteFrom("sessions").where("token_hash", "=", hashSecret(token)).execute();
  }

  /** The principal behind a session token, or undefined when unknown or expired. */
  async principalForSession(token: string): Promise<Principal | undefined> {
    // The token is a 256-bit random secret, so looking up its hash leaks nothing useful by timing.
    const row = await this.db
      .selectFrom("sessions as s")
      .innerJoin("users as u", "u.id", "s.user_id")
      .select(["u.id", "u.org_id"])
      .where("s.token_hash", "=", hashSecret(token))
      .where("s.expires_at", ">", this.clock())
      .executeTakeFirst();
    if (!row) return undefined;
    const grants: Grant[] = (await this.roleRows(row.id)).map((r) => ({
      groupId: r.group_id,
      path: r.path,
      role: r.role,
    }));
    return { kind: "user", id: `user:${row.id}`, orgId: row.org_id, grants };
  }

  private roleRows(userId: number): Promise<{ group_id: number; path: string; role: Role }[]> {
    return this.db
      .selectFrom("user_roles as r")
      .innerJoin("groups as g", "g.id", "r.group_id")
      .select(["r.group_id", "g.path", "r.role"])
      .where("r.user_id", "=", userId)
      .orderBy("g.path")
      .execute();
  }

  private async toRecord(row: Selectable<UserTables["users"]>): Promise<UserRecord> {
    return {
      id: row.id,
      orgId: row.org_id,
      email: row.email,
      name: row.name,
      roles: (await this.roleRows(row.id)).map((r) => ({ groupId: r.group_id, groupPath: r.path, role: r.role })),
      createdAt: row.created_at,
      lastLoginAt: row.last_login_at,
    };
  }
}

/** A role granted again replaces the one held on that group. */
async function writeRoles(trx: UserDb, userId: number, roles: { groupId: number; role: Role }[]): Promise<void> {
  for (const r of roles) {
    await trx
      .insertInto("user_roles")
      .values({ user_id: userId, group_id: r.groupId, role: r.role })
      .onConflict((oc) => oc.columns(["user_id", "group_id"]).doUpdateSet({ role: r.role }))
      .execute();
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

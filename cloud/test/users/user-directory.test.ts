import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BACKENDS, openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { hashSecret } from "../../src/credentials/secrets.js";
import { SESSION_TTL_MS, UserDirectory } from "../../src/users/user-directory.js";
import { seedTenants } from "../credentials/tenant-fixture.js";

describe.each(BACKENDS)("UserDirectory on $name", ({ server }) => {
  let testDatabase: TestDatabase;
  let now: number;
  let users: UserDirectory;
  const password = "a long enough password";

  beforeEach(async () => {
    now = Date.parse("2026-03-01T10:00:00Z");
    testDatabase = await openTestDatabase(server);
    await seedTenants(testDatabase.database, now);
    users = new UserDirectory(testDatabase.database, () => now);
  });
  afterEach(() => testDatabase.dispose());

  const tables = () =>
    testDatabase.database.kysely.withTables<{
      users: { email: string; password_hash: string };
      sessions: { token_hash: Buffer };
    }>();

  it("stores a scrypt hash and hashed session tokens, never the secrets themselves", async () => {
    await users.create(1, { email: "Op@Example.test", password, roles: [] });
    const stored = await tables().selectFrom("users").select(["email", "password_hash"]).execute();
    expect(stored).toHaveLength(1);
    expect(stored[0]?.email).toBe("op@example.test");
    expect(stored[0]?.password_hash.startsWith("scrypt$")).toBe(true);
    expect(stored[0]?.password_hash).not.toContain(password);
    const { token } = await users.login("OP@example.test", password);
    const sessions = await tables().selectFrom("sessions").select("token_hash").execute();
    expect(sessions.map((s) => Buffer.from(s.token_hash))).toEqual([hashSecret(token)]);
  });

  it("refuses a second user with the same email, also when both are created at once", async () => {
    await users.create(1, { email: "a@example.test", password, roles: [] });
    await expect(users.create(2, { email: "A@example.test", password, roles: [] })).rejects.toMatchObject({
      code: "USER_EXISTS",
    });
    const racing = await Promise.allSettled(
      [1, 2].map(() => users.create(1, { email: "b@example.test", password, roles: [] })),
    );
    expect(racing.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect(racing.find((r) => r.status === "rejected")).toMatchObject({ reason: { code: "USER_EXISTS" } });
  });

  it("gives a session exactly the user's grants, until it expires", async () => {
    const user = await users.create(1, {
      email: "op@example.test",
      password,
      roles: [
        { groupId: 3, role: "viewer" },
        { groupId: 2, role: "device-manager" },
      ],
    });
    expect(user.roles).toEqual([
      { groupId: 2, groupPath: "/1/2/", role: "device-manager" },
      { groupId: 3, groupPath: "/1/3/", role: "viewer" },
    ]);
    const { token, expiresAt } = await users.login("op@example.test", password);
    expect(expiresAt).toBe(now + SESSION_TTL_MS);
    expect(await users.principalForSession(token)).toEqual({
      kind: "user",
      id: `user:${user.id}`,
      orgId: 1,
      grants: [
        { groupId: 2, path: "/1/2/", role: "device-manager" },
        { groupId: 3, path: "/1/3/", role: "viewer" },
      ],
    });
    expect((await users.get(1, user.id)).lastLoginAt).toBe(now);
    now = expiresAt - 1;
    expect(await users.principalForSession(token)).toBeDefined();
    now = expiresAt;
    expect(await users.principalForSession(token)).toBeUndefined();
    expect(await users.principalForSession("fgu_unknown")).toBeUndefined();
  });

  it("answers a wrong password and an unknown email alike", async () => {
    await users.create(1, { email: "op@example.test", password, roles: [] });
    await expect(users.login("op@example.test", "wrong password!")).rejects.toMatchObject({ code: "LOGIN_FAILED" });
    await expect(users.login("ghost@example.test", password)).rejects.toMatchObject({ code: "LOGIN_FAILED" });
  });

  it("ends sessions at logout, at a password change and when the user is deleted", async () => {
    const user = await users.create(1, { email: "op@example.test", password, roles: [{ groupId: 1, role: "admin" }] });
    const first = await users.login("op@example.test", password);
    const second = await users.login("op@example.test", password);
    await users.logout(first.token);
    expect(await users.principalForSession(first.token)).toBeUndefined();
    expect(await users.principalForSession(second.token)).toBeDefined();

    await users.edit(1, user.id, { password: "another long password" });
    expect(await users.principalForSession(second.token)).toBeUndefined();
    await expect(users.login("op@example.test", password)).rejects.toMatchObject({ code: "LOGIN_FAILED" });
    const third = await users.login("op@example.test", "another long password");

    await users.delete(1, user.id);
    expect(await users.principalForSession(third.token)).toBeUndefined();
    await expect(users.get(1, user.id)).rejects.toMatchObject({ code: "USER_NOT_FOUND" });
  });

  it("replaces roles and names on edit, and keeps other organizations' users out of reach", async () => {
    const user = await users.create(1, { email: "op@example.test", password, roles: [{ groupId: 2, role: "viewer" }] });
    const edited = await users.edit(1, user.id, { name: "Operator", roles: [{ groupId: 3, role: "device-manager" }] });
    expect(edited).toMatchObject({
      name: "Operator",
      roles: [{ groupId: 3, groupPath: "/1/3/", role: "device-manager" }],
    });
    await expect(users.get(2, user.id)).rejects.toMatchObject({ code: "USER_NOT_FOUND" });
    await expect(users.edit(2, user.id, { name: "x" })).rejects.toMatchObject({ code: "USER_NOT_FOUND" });
    await expect(users.delete(2, user.id)).rejects.toMatchObject({ code: "USER_NOT_FOUND" });
    expect(await users.list(2)).toEqual([]);
    expect((await users.list(1)).map((u) => u.email)).toEqual(["op@example.test"]);
  });

  it("refuses a short password", async () => {
    await expect(users.create(1, { email: "op@example.test", password: "short", roles: [] })).rejects.toMatchObject({
      code: "VALIDATION_FAILED",
    });
  });
});

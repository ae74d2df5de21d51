import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BACKENDS, openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { ApiCredentials } from "../../src/credentials/api-credentials.js";
import { HostCredentials } from "../../src/credentials/host-credentials.js";
import { hashSecret } from "../../src/credentials/secrets.js";
import { seedTenants } from "./tenant-fixture.js";

describe.each(BACKENDS)("API and host credentials on $name", ({ server }) => {
  let testDatabase: TestDatabase;
  let now: number;
  let credentials: ApiCredentials;
  let hosts: HostCredentials;

  beforeEach(async () => {
    now = Date.parse("2026-03-01T10:00:00Z");
    testDatabase = await openTestDatabase(server);
    await seedTenants(testDatabase.database, now);
    credentials = new ApiCredentials(testDatabase.database, () => now);
    hosts = new HostCredentials(testDatabase.database, () => now);
  });
  afterEach(() => testDatabase.dispose());

  const storedHashes = async (table: "api_credentials" | "host_credentials") =>
    (
      await testDatabase.database.kysely
        .withTables<Record<typeof table, { id: string; secret_hash: Buffer }>>()
        .selectFrom(table)
        .select(["id", "secret_hash"])
        .execute()
    ).map((r) => Buffer.from(r.secret_hash));

  it("stores only the secret's hash and authenticates the matching secret alone", async () => {
    const { id, secret } = await credentials.create(1, 2, "ci", "device-manager");
    expect(await storedHashes("api_credentials")).toEqual([hashSecret(secret)]);
    const found = await credentials.authenticate(id, secret);
    expect(found).toMatchObject({ id, orgId: 1, groupId: 2, groupPath: "/1/2/", role: "device-manager" });
    expect((await credentials.get(1, id)).lastUsedAt).toBe(now);
    expect(await credentials.authenticate(id, `${secret}x`)).toBeUndefined();
    expect(await credentials.authenticate("fgc_0000000000000000", secret)).toBeUndefined();
    expect(await credentials.count()).toBe(1);
  });

  it("records last use at most once a minute", async () => {
    const { id, secret } = await credentials.create(1, 1, "ci", "viewer");
    await credentials.authenticate(id, secret);
    const first = now;
    now += 30_000;
    await credentials.authenticate(id, secret);
    expect((await credentials.get(1, id)).lastUsedAt).toBe(first);
    now += 31_000;
    await credentials.authenticate(id, secret);
    expect((await credentials.get(1, id)).lastUsedAt).toBe(now);
  });

  it("regenerates a secret, the old one failing at once, and deletes", async () => {
    const { id, secret } = await credentials.create(1, 1, "ci", "admin");
    const renewed = await credentials.regenerate(1, id);
    expect(await credentials.authenticate(id, secret)).toBeUndefined();
    expect(await credentials.authenticate(id, renewed.secret)).toBeDefined();
    await credentials.delete(1, id);
    expect(await credentials.authenticate(id, renewed.secret)).toBeUndefined();
    await expect(credentials.get(1, id)).rejects.toMatchObject({ code: "CREDENTIAL_NOT_FOUND" });
  });

  it("keeps each organization's credentials to itself", async () => {
    const { id } = await credentials.create(2, 4, "theirs", "admin");
    await expect(credentials.get(1, id)).rejects.toMatchObject({ code: "CREDENTIAL_NOT_FOUND" });
    await expect(credentials.regenerate(1, id)).rejects.toMatchObject({ code: "CREDENTIAL_NOT_FOUND" });
    await expect(credentials.delete(1, id)).rejects.toMatchObject({ code: "CREDENTIAL_NOT_FOUND" });
    expect(await credentials.list(1, ["/"])).toEqual([]);
  });

  it("lists only the credentials inside the given subtrees, oldest first", async () => {
    const root = await credentials.create(1, 1, "root", "admin");
    now += 1;
    const a = await credentials.create(1, 2, "a", "device-manager");
    now += 1;
    const b = await credentials.create(1, 3, "b", "viewer");
    const ids = async (scopes: string[]) => (await credentials.list(1, scopes)).map((c) => c.id);
    expect(await ids(["/1/"])).toEqual([root.id, a.id, b.id]);
    expect(await ids(["/1/2/"])).toEqual([a.id]);
    expect(await ids(["/1/2/", "/1/3/"])).toEqual([a.id, b.id]);
    expect(await ids([])).toEqual([]);
  });

  it("removes the credentials of deleted groups inside the caller's transaction", async () => {
    const keep = await credentials.create(1, 1, "root", "admin");
    const drop = await credentials.create(1, 2, "a", "device-manager");
    const removed = await testDatabase.database.kysely
      .transaction()
      .execute((trx) => credentials.removeInGroups([2, 3], trx));
    expect(removed).toBe(1);
    expect((await credentials.list(1, ["/1/"])).map((c) => c.id)).toEqual([keep.id]);
    expect(await credentials.authenticate(drop.id, drop.secret)).toBeUndefined();
  });

  it("creates a credential inside the caller's transaction, gone when that rolls back", async () => {
    const failed = testDatabase.database.kysely.transaction().execute(async (trx) => {
      await credentials.create(1, 1, "admin", "admin", trx);
      throw new Error("the organization failed");
    });
    await expect(failed).rejects.toThrow("the organization failed");
    expect(await credentials.count()).toBe(0);
    const made = await testDatabase.database.kysely
      .transaction()
      .execute((trx) => credentials.create(1, 1, "admin", "admin", trx));
    expect(await credentials.authenticate(made.id, made.secret)).toMatchObject({ groupPath: "/1/" });
  });

  it("host credentials: hashed, matched by id and secret only, with the organizations rights", async () => {
    expect(await hosts.count()).toBe(0);
    const { id, secret } = await hosts.create();
    expect(id.startsWith("fgh_")).toBe(true);
    expect(await storedHashes("host_credentials")).toEqual([hashSecret(secret)]);
    expect(await hosts.authenticate(id, secret)).toMatchObject({ kind: "host", id });
    expect(await hosts.authenticate(id, "fgs_wrong")).toBeUndefined();
    expect(await hosts.authenticate("fgh_0000000000000000", secret)).toBeUndefined();
    expect(await hosts.count()).toBe(1);
  });
});

import type { FieldgateError } from "@fieldgate/shared";
import type { Generated } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { LoginThrottle, MAX_LOGIN_DELAY_MS } from "../../src/users/login-throttle.js";
import { LoginThrottledError, UserDirectory } from "../../src/users/user-directory.js";

describe("LoginThrottle", () => {
  it("starts from the configured first delay (serve --login-delay) and doubles it", () => {
    let now = 0;
    const throttle = new LoginThrottle(() => now, 100, 5000);
    for (let i = 0; i < 5; i++) throttle.failed("a@example.test");
    expect(throttle.waitMs("a@example.test")).toBe(5000);
    now = 5000;
    expect(throttle.waitMs("a@example.test")).toBe(0);
    throttle.failed("a@example.test");
    expect(throttle.waitMs("a@example.test")).toBe(10_000);
  });

  let now = 0;
  const clock = () => now;

  it("lets five failures through, then waits 1 s, 2 s, 4 s … capped, and forgets on success", () => {
    now = 1_000_000;
    const throttle = new LoginThrottle(clock);
    for (let i = 0; i < 5; i++) {
      expect(throttle.waitMs("a@x.test")).toBe(0);
      throttle.failed("a@x.test");
    }
    expect(throttle.waitMs("A@X.test")).toBe(1_000);
    now += 1_000;
    expect(throttle.waitMs("a@x.test")).toBe(0);
    throttle.failed("a@x.test");
    expect(throttle.waitMs("a@x.test")).toBe(2_000);
    now += 2_000;
    throttle.failed("a@x.test");
    expect(throttle.waitMs("a@x.test")).toBe(4_000);
    for (let i = 0; i < 10; i++) {
      now += MAX_LOGIN_DELAY_MS;
      throttle.failed("a@x.test");
    }
    expect(throttle.waitMs("a@x.test")).toBe(MAX_LOGIN_DELAY_MS);
    expect(throttle.waitMs("b@x.test")).toBe(0);
    throttle.succeeded("a@x.test");
    expect(throttle.waitMs("a@x.test")).toBe(0);
  });

  it("remembers a bounded number of emails and forgets an idle count after an hour", () => {
    now = 0;
    const throttle = new LoginThrottle(clock, 3);
    for (const email of ["a", "b", "c", "d"]) throttle.failed(email);
    expect(throttle.size).toBe(3);
    for (let i = 0; i < 5; i++) throttle.failed("e");
    expect(throttle.waitMs("e")).toBeGreaterThan(0);
    now += 60 * 60_000;
    expect(throttle.waitMs("e")).toBe(0);
  });
});

describe("UserDirectory login delay", () => {
  let testDatabase: TestDatabase;
  let now: number;
  let users: UserDirectory;
  const email = "op@example.test";
  const password = "a long enough password";

  beforeEach(async () => {
    now = Date.parse("2026-02-01T08:00:00Z");
    testDatabase = await openTestDatabase();
    const { database } = testDatabase;
    // The organization is the registry's; a bare row is all a user needs here.
    const { id: orgId } = await database.kysely
      .withTables<{ organizations: { id: Generated<number>; name: string; created_at: number } }>()
      .insertInto("organizations")
      .values({ name: "default", created_at: now })
      .returning("id")
      .executeTakeFirstOrThrow();
    users = new UserDirectory(database, () => now);
    await users.create(orgId, { email, password, roles: [] });
  });
  afterEach(async () => {
    await testDatabase.dispose();
  });

  const codeOf = (promise: Promise<unknown>) =>
    promise.then(
      () => "OK",
      (e: FieldgateError) => e.code,
    );

  it("refuses a try inside the delay without checking the password, then logs in and resets", async () => {
    for (let i = 0; i < 5; i++) expect(await codeOf(users.login(email, "wrong"))).toBe("LOGIN_FAILED");
    const refused = await users.login(email, password).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LoginThrottledError);
    expect((refused as LoginThrottledError).retryAfterSeconds).toBe(1);
    expect((refused as LoginThrottledError).status).toBe(429);
    now += 1_000;
    expect(await codeOf(users.login(email, "wrong"))).toBe("LOGIN_FAILED");
    now += 1_000;
    expect(await codeOf(users.login(email, password))).toBe("LOGIN_THROTTLED");
    now += 1_000;
    expect(await codeOf(users.login(email, password))).toBe("OK");
    // The count starts over: five more wrong tries before any delay.
    for (let i = 0; i < 5; i++) expect(await codeOf(users.login(email, "wrong"))).toBe("LOGIN_FAILED");
    expect(await codeOf(users.login(email, "wrong"))).toBe("LOGIN_THROTTLED");
  });

  it("slows an unknown email exactly like a known one", async () => {
    const known: string[] = [];
    const unknown: string[] = [];
    for (let i = 0; i < 7; i++) {
      known.push(await codeOf(users.login(email, "wrong")));
      unknown.push(await codeOf(users.login("ghost@example.test", "wrong")));
    }
    expect(unknown).toEqual(known);
    expect(known.slice(5)).toEqual(["LOGIN_THROTTLED", "LOGIN_THROTTLED"]);
  });

  it("slows tries sent in parallel", async () => {
    const codes = await Promise.all(Array.from({ length: 8 }, () => codeOf(users.login(email, "wrong"))));
    expect(codes.filter((c) => c === "LOGIN_FAILED")).toHaveLength(5);
    expect(codes.filter((c) => c === "LOGIN_THROTTLED")).toHaveLength(3);
  });
});

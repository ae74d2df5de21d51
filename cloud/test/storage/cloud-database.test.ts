import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FieldgateError } from "@fieldgate/shared";
import fc from "fast-check";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import {
  BACKENDS,
  LOCAL_POSTGRES,
  openTestDatabase,
  scratchTarget,
  type TestDatabase,
} from "../../../test/support/test-database.js";
import {
  openCloudDatabase,
  parseDatabaseUrl,
  postgresMigrations,
  redactUrl,
} from "../../src/storage/cloud-database.js";
import { MIGRATIONS } from "../../src/storage/database.js";
import { naturalSortKey } from "../../src/storage/natural-sort.js";

const opened: TestDatabase[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) await db.dispose();
});

async function open(server: string | null): Promise<TestDatabase> {
  const db = await openTestDatabase(server);
  opened.push(db);
  return db;
}

async function failure(promise: Promise<unknown>): Promise<FieldgateError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FieldgateError);
  return err as FieldgateError;
}

describe.each(BACKENDS)("the cloud database on $name", ({ server }) => {
  it("creates the whole schema and reads BIGINT columns back as numbers", async () => {
    const { database } = await open(server);
    const { kysely } = database;
    await sql`INSERT INTO organizations (name, created_at) VALUES ('acme', ${1_764_000_000_123})`.execute(kysely);
    const row = await sql<{ id: number; created_at: number }>`SELECT id, created_at FROM organizations`.execute(kysely);
    expect(row.rows).toEqual([{ id: 1, created_at: 1_764_000_000_123 }]);
    const version = await sql<{ v: number }>`SELECT max(version) AS v FROM schema_migrations`.execute(kysely);
    expect(version.rows[0]?.v).toBe(Math.max(...MIGRATIONS.map((m) => m.version)));
  });

  it("orders names naturally with the same key as the cloud's own code", async () => {
    const { database } = await open(server);
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: fc.constantFrom("a", "B", "-", "0", "1", "9", "é", " ") }), async (text) => {
        const got = await sql<{ k: string }>`SELECT natural_key(${text}) AS k`.execute(database.kysely);
        expect(got.rows[0]?.k).toBe(naturalSortKey(text));
      }),
      { numRuns: 60 },
    );
  });

  it("refuses a database whose schema is newer than this build", async () => {
    const scratch = await scratchTarget(server);
    try {
      const first = await openCloudDatabase(scratch.target);
      await sql`INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)`.execute(first.kysely);
      await first.close();
      const err = await failure(openCloudDatabase(scratch.target));
      expect(err.code).toBe("DATABASE_UNAVAILABLE");
      expect(err.message).toMatch(/schema version 999, newer than this fieldgate-cloud knows/);
    } finally {
      await scratch.drop();
    }
  });
});

describe("PostgreSQL start-up", () => {
  it("lets two processes start together on an empty database: the migrations run once", async () => {
    const scratch = await scratchTarget(LOCAL_POSTGRES);
    try {
      const [a, b] = await Promise.all([openCloudDatabase(scratch.target), openCloudDatabase(scratch.target)]);
      const rows = await sql<{ version: number }>`SELECT version FROM schema_migrations ORDER BY version`.execute(
        a.kysely,
      );
      expect(rows.rows.map((r) => r.version)).toEqual(postgresMigrations(MIGRATIONS).map((m) => m.version));
      await Promise.all([a.close(), b.close()]);
    } finally {
      await scratch.drop();
    }
  });

  it("names an unreachable server without its password, and the fix", async () => {
    const err = await failure(
      openCloudDatabase({ kind: "postgres", url: "postgres://fg:s3cret@127.0.0.1:1/fieldgate" }),
    );
    expect(err.code).toBe("DATABASE_UNAVAILABLE");
    expect(err.field).toBe("database");
    expect(err.message).toContain("postgres://fg@127.0.0.1:1/fieldgate");
    expect(err.message).not.toContain("s3cret");
    expect(err.message).toMatch(/nothing listens there; start PostgreSQL or fix --database/);
  });

  it("names a database that does not exist", async () => {
    const url = new URL(LOCAL_POSTGRES);
    url.pathname = "/fg_no_such_database";
    const err = await failure(openCloudDatabase({ kind: "postgres", url: url.toString() }));
    expect(err.code).toBe("DATABASE_UNAVAILABLE");
    expect(err.message).toMatch(/the database does not exist \(create it with createdb\)/);
  });
});

describe("--database", () => {
  it("accepts postgres:// and postgresql:// URLs", () => {
    expect(parseDatabaseUrl("postgres://fg@db:5432/fieldgate")).toEqual({
      kind: "postgres",
      url: "postgres://fg@db:5432/fieldgate",
    });
    expect(parseDatabaseUrl("postgresql://db/fieldgate").kind).toBe("postgres");
  });

  it.each([
    ["mysql://db/fieldgate", /is not a PostgreSQL URL/],
    ["cloud.db", /is not a PostgreSQL URL/],
    ["postgres://fg:pw@db:5432", /names no database/],
  ])("refuses %s with CONFIG_INVALID naming the fix", (text, message) => {
    let err: unknown;
    try {
      parseDatabaseUrl(text);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "CONFIG_INVALID", field: "database" });
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain(":pw@");
  });

  it("leaves the password out of a URL it prints", () => {
    expect(redactUrl("postgres://fg:s3cret@db:5432/fieldgate")).toBe("postgres://fg@db:5432/fieldgate");
    expect(redactUrl("postgres://db/fieldgate")).toBe("postgres://db/fieldgate");
  });
});

describe("migrations", () => {
  it("give every migration from PostgreSQL's first version on a PostgreSQL form", () => {
    expect(() => postgresMigrations(MIGRATIONS)).not.toThrow();
    expect(() => postgresMigrations([...MIGRATIONS, { version: 99, sql: "SELECT 1" }])).toThrow(
      /migration 99 has no PostgreSQL form/,
    );
  });

  it("keep an embedded database file private", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fg-db-mode-"));
    const db = await openCloudDatabase({ kind: "sqlite", file: path.join(dir, "cloud.db") });
    expect(fs.statSync(path.join(dir, "cloud.db")).mode & 0o777).toBe(0o600);
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

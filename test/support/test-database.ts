import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { type CloudDatabase, type DatabaseTarget, openCloudDatabase } from "../../cloud/src/storage/cloud-database.js";

/**
 * The PostgreSQL server the suite runs on when `FIELDGATE_TEST_DATABASE` names one
 * (`postgres://127.0.0.1:5432/postgres`); each test then gets a fresh database of its own there.
 * Unset, tests use a fresh SQLite file.
 */
export function testPostgresServer(): string | undefined {
  const url = process.env.FIELDGATE_TEST_DATABASE;
  return url === undefined || url === "" ? undefined : url;
}

/** The local PostgreSQL 15 the conformance suites always run on (`.ci/run` starts it). */
export const LOCAL_POSTGRES = process.env.FIELDGATE_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface ScratchTarget {
  target: DatabaseTarget;
  /** `--database` for a cloud process, or undefined for the embedded default in its data dir. */
  url: string | undefined;
  drop(): Promise<void>;
}

/**
 * A new, empty database: a PostgreSQL database on `server`, or (null) a SQLite file in a temporary
 * directory. By default, the suite's backend.
 */
export async function scratchTarget(server: string | null = testPostgresServer() ?? null): Promise<ScratchTarget> {
  if (server === null) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fg-db-"));
    return {
      target: { kind: "sqlite", file: path.join(dir, "cloud.db") },
      url: undefined,
      drop: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  }
  const name = `fg_test_${process.pid}_${randomBytes(4).toString("hex")}`;
  await onServer(server, `CREATE DATABASE ${name} TEMPLATE template0`);
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    target: { kind: "postgres", url: url.toString() },
    url: url.toString(),
    drop: () => onServer(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

export interface TestDatabase {
  database: CloudDatabase;
  /** Closes the database and removes it. */
  dispose(): Promise<void>;
}

/** A migrated database for one test: on the suite's backend, or on `server` (null: SQLite). */
export async function openTestDatabase(server: string | null = testPostgresServer() ?? null): Promise<TestDatabase> {
  const scratch = await scratchTarget(server);
  const database = await openCloudDatabase(scratch.target);
  return {
    database,
    dispose: async () => {
      await database.close();
      await scratch.drop();
    },
  };
}

/** Both backends, for suites that prove the same behaviour on each. */
export const BACKENDS: { name: string; server: string | null }[] = [
  { name: "sqlite", server: null },
  { name: "postgres", server: LOCAL_POSTGRES },
];

async function onServer(server: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

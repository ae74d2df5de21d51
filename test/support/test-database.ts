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
  // Named by the run (test/support/global-setup.ts drops the run's leftovers at its end).
  const name = `fg_test_${testRunId()}_${randomBytes(4).toString("hex")}`;
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

/** This test run's tag in database names; set by the global set-up, or per process when run alone. */
function testRunId(): string {
  return (process.env.FIELDGATE_TEST_RUN ?? `p${process.pid}`).replace(/[^a-z0-9]/g, "");
}

/** Drops every database this run created and left behind (a test that crashed before its dispose). */
export async function dropRunDatabases(server: string, run: string): Promise<void> {
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  try {
    const rows = await client.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE $1", [
      `fg\\_test\\_${run}\\_%`,
    ]);
    for (const { datname } of rows.rows) await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/**
 * The database a test's cloud process runs on: none (its data dir's embedded one) unless the suite
 * runs on PostgreSQL, then one fresh database per data dir, so a restarted cloud finds its state.
 */
const cloudDatabases = new Map<string, Promise<string | undefined>>();
export function cloudDatabaseFor(dataDir: string): Promise<string | undefined> {
  const server = testPostgresServer();
  if (server === undefined) return Promise.resolve(undefined);
  let url = cloudDatabases.get(dataDir);
  if (url === undefined) {
    url = scratchTarget(server).then((scratch) => scratch.url);
    cloudDatabases.set(dataDir, url);
  }
  return url;
}

async function onServer(server: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

import { FieldgateError } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect, sql } from "kysely";
import pg from "pg";
import { MIGRATIONS, type Migration, openDatabase } from "./database.js";

/** Where the cloud keeps its state: the embedded SQLite file, or a PostgreSQL database. */
export type DatabaseTarget = { kind: "sqlite"; file: string } | { kind: "postgres"; url: string };

export type SqlDialect = DatabaseTarget["kind"];

/**
 * The cloud's database, whichever backend: stores write their queries once against `kysely`.
 * `embedded` is the SQLite handle itself, for the few measured fast paths (telemetry ingest) and
 * the WAL checkpointer; it is undefined on PostgreSQL.
 */
export interface CloudDatabase {
  readonly dialect: SqlDialect;
  readonly kysely: Kysely<object>;
  readonly embedded: Database.Database | undefined;
  /** The target for messages: a PostgreSQL URL without its password, or the SQLite file. */
  readonly description: string;
  close(): Promise<void>;
}

/** Statements kept prepared per connection: better-sqlite3 spends more preparing than running a short query. */
const STATEMENT_CACHE_SIZE = 500;

/** The lock two cloud processes take before migrating one PostgreSQL database. */
const MIGRATION_LOCK_KEY = 0x6669656c; // "fiel"

/** PostgreSQL support began at this schema version: its first migration creates that schema whole. */
export const POSTGRES_FIRST_VERSION = 15;

/** A `--database` value: `postgres://…` or `postgresql://…`; CONFIG_INVALID for anything else. */
export function parseDatabaseUrl(text: string): DatabaseTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalidUrl(text);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") throw invalidUrl(text);
  if (url.pathname.length <= 1) {
    throw new FieldgateError(
      "CONFIG_INVALID",
      `--database ${redactUrl(text)} names no database; add one: postgres://user@host:5432/fieldgate`,
      "database",
    );
  }
  return { kind: "postgres", url: text };
}

function invalidUrl(text: string): FieldgateError {
  return new FieldgateError(
    "CONFIG_INVALID",
    `--database ${JSON.stringify(redactUrl(text))} is not a PostgreSQL URL; use postgres://user@host:5432/db, or leave it out for the embedded database`,
    "database",
  );
}

/** A database URL safe to print: the password left out. */
export function redactUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.password === "") return text;
    url.password = "";
    return url.toString().replace(/:@/, "@");
  } catch {
    return text.replace(/\/\/([^:/@]*):[^@]*@/, "//$1@");
  }
}

/** Opens the database, creating and migrating it; DATABASE_UNAVAILABLE when that cannot be done. */
export async function openCloudDatabase(
  target: DatabaseTarget,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<CloudDatabase> {
  return target.kind === "sqlite" ? openSqlite(target.file, migrations) : openPostgres(target.url, migrations);
}

function openSqlite(file: string, migrations: readonly Migration[]): CloudDatabase {
  const embedded = openDatabase(file, migrations);
  const kysely = new Kysely<object>({ dialect: new SqliteDialect({ database: cachingStatements(embedded) }) });
  return {
    dialect: "sqlite",
    kysely,
    embedded,
    description: file,
    close: () => kysely.destroy(),
  };
}

/** better-sqlite3 behind Kysely, reusing a prepared statement for the same SQL text. */
function cachingStatements(db: Database.Database): ConstructorParameters<typeof SqliteDialect>[0]["database"] {
  const cache = new Map<string, Database.Statement>();
  return {
    close: () => db.close(),
    prepare(text: string) {
      const cached = cache.get(text);
      // A statement still being iterated cannot run again; such a caller gets its own.
      if (cached && !cached.busy) {
        cache.delete(text);
        cache.set(text, cached);
        return cached;
      }
      const statement = db.prepare(text);
      if (!cached) {
        cache.set(text, statement);
        if (cache.size > STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      }
      return statement;
    },
  };
}

async function openPostgres(url: string, migrations: readonly Migration[]): Promise<CloudDatabase> {
  const description = redactUrl(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 10_000,
    // BIGINT holds milliseconds, ids and counts, all far below 2^53: read them as numbers, as SQLite does.
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === pg.types.builtins.INT8 ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection the server closes must not crash the process; the pool replaces it.
  pool.on("error", () => {});
  const kysely = new Kysely<object>({ dialect: new PostgresDialect({ pool }) });
  try {
    await migratePostgres(kysely, migrations, description);
  } catch (err) {
    await kysely.destroy().catch(() => {});
    throw err instanceof FieldgateError ? err : unavailable(description, err);
  }
  return { dialect: "postgres", kysely, embedded: undefined, description, close: () => kysely.destroy() };
}

/** The migrations PostgreSQL applies: from its first version on, each with its PostgreSQL form. */
export function postgresMigrations(migrations: readonly Migration[]): { version: number; sql: string }[] {
  return [...migrations]
    .sort((a, b) => a.version - b.version)
    .filter((m) => m.version >= POSTGRES_FIRST_VERSION)
    .map((m) => {
      if (m.postgres === undefined) {
        throw new Error(`migration ${m.version} has no PostgreSQL form; give it a \`postgres\` script`);
      }
      return { version: m.version, sql: m.postgres };
    });
}

/** Applies pending migrations in one transaction under an advisory lock: a second process waits, then finds nothing to do. */
async function migratePostgres(
  db: Kysely<object>,
  migrations: readonly Migration[],
  description: string,
): Promise<void> {
  const ordered = postgresMigrations(migrations);
  const known = Math.max(0, ...migrations.map((m) => m.version));
  await db.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`.execute(trx);
    await sql`CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`.execute(
      trx,
    );
    const rows = await sql<{ version: number }>`SELECT version FROM schema_migrations`.execute(trx);
    const applied = new Set(rows.rows.map((r) => Number(r.version)));
    const newest = Math.max(0, ...applied);
    if (newest > known) {
      throw new FieldgateError(
        "DATABASE_UNAVAILABLE",
        `the database at ${description} is at schema version ${newest}, newer than this fieldgate-cloud knows (${known}); run the newer release, or restore a backup taken before the upgrade`,
        "database",
      );
    }
    for (const m of ordered) {
      if (applied.has(m.version)) continue;
      await sql.raw(m.sql).execute(trx);
      await sql`INSERT INTO schema_migrations (version, applied_at) VALUES (${m.version}, ${Date.now()})`.execute(trx);
    }
  });
}

function unavailable(description: string, err: unknown): FieldgateError {
  const e = err as { code?: string; message?: string };
  const why =
    e.code === "ECONNREFUSED"
      ? "nothing listens there"
      : e.code === "ENOTFOUND" || e.code === "EAI_AGAIN"
        ? "the host name does not resolve"
        : e.code === "28P01" || e.code === "28000"
          ? "the server refused the user or password"
          : e.code === "3D000"
            ? "the database does not exist (create it with createdb)"
            : e.code === "42501"
              ? "the user may not create tables in it"
              : (e.message ?? "unknown error");
  return new FieldgateError(
    "DATABASE_UNAVAILABLE",
    `cannot use the database ${description}: ${why}; start PostgreSQL or fix --database (FIELDGATE_DATABASE)`,
    "database",
  );
}

/**
 * What a store runs a query on: its own handle, or a transaction another store began, so one
 * commit can span the tables of several owners (each still issues only its own SQL).
 */
// biome-ignore lint/suspicious/noExplicitAny: an executor crosses owners; each store narrows it to its own tables.
export type Executor = Kysely<any>;

/** Whether `err` is a unique or primary-key violation, on either backend. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "23505";
}

/** Whether `err` is a foreign-key violation, on either backend. */
export function isForeignKeyViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "SQLITE_CONSTRAINT_FOREIGNKEY" || code === "23503";
}

/** The rows an UPDATE, DELETE or INSERT touched, as a number (Kysely reports bigint). */
export function affectedRows(
  result:
    | { numUpdatedRows?: bigint; numDeletedRows?: bigint; numInsertedOrUpdatedRows?: bigint }
    | readonly { numUpdatedRows?: bigint; numDeletedRows?: bigint; numInsertedOrUpdatedRows?: bigint }[],
): number {
  const list = Array.isArray(result) ? result : [result];
  return list.reduce(
    (sum, r) => sum + Number(r.numUpdatedRows ?? r.numDeletedRows ?? r.numInsertedOrUpdatedRows ?? 0n),
    0,
  );
}

import { FieldgateError } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import { sql } from "kysely";
import type { CloudDatabase, Executor } from "./cloud-database.js";

/**
 * Every table of the embedded schema, parents before children, so each foreign key finds its row.
 * This copy is the one place that reads and writes all tables at once: a whole-database move, not
 * a store, so it speaks SQL to every owner's table (like a backup tool would).
 */
export const COPY_ORDER: readonly CopiedTable[] = [
  { name: "organizations" },
  // A group may be moved under one created after it: copy by depth, so every parent comes first
  // (within one INSERT PostgreSQL checks keys at its end; across batches the order matters).
  { name: "groups", orderBy: "length(path), id" },
  { name: "host_credentials" },
  { name: "api_credentials" },
  { name: "device_types" },
  { name: "devices" },
  { name: "certificates" },
  { name: "enrollment_nonces" },
  { name: "telemetry", orderBy: "rowid" },
  { name: "telemetry_streams" },
  { name: "telemetry_seq_gaps" },
  { name: "device_events" },
  { name: "rejected_messages" },
  { name: "device_logs" },
  { name: "log_batches" },
  { name: "device_state" },
  { name: "device_config" },
  { name: "users" },
  { name: "user_roles" },
  { name: "sessions" },
  { name: "firmware_images" },
  { name: "jobs" },
  { name: "job_steps" },
  { name: "rollouts" },
  { name: "rollout_devices" },
];

export interface CopiedTable {
  name: string;
  /** SQLite's read order, where the target needs one (parents first, or the telemetry order). */
  orderBy?: string;
}

/** Each backend keeps its own migration history: the target's was written when it was opened. */
const NOT_COPIED = new Set(["schema_migrations"]);

/** Rows per INSERT: few round trips, while a batch of the widest rows stays a few hundred kilobytes. */
export const BATCH_ROWS = 1000;

/** What the copy reports as it goes: the CLI draws a progress bar or prints a line per table. */
export interface CopyProgress {
  tableStarted(table: string, rows: number): void;
  rowsCopied(table: string, done: number): void;
  tableDone(table: string, rows: number, ms: number): void;
}

export interface CopyResult {
  tables: { name: string; rows: number }[];
  ms: number;
}

/** PostgreSQL's lock for one migrate into a database: two runs into the same target cannot both copy. */
const COPY_LOCK_KEY = 0x66676d67; // "fgmg"

/**
 * Copies the embedded database `source` (opened read-only, at the latest schema) into `target`, a
 * freshly migrated and empty PostgreSQL database. One transaction for the whole copy: a failure
 * at any row (or a count that does not match) leaves the target as empty as it was, so the
 * operator fixes the cause and runs the same command again, never cleaning up half a cloud.
 * PostgreSQL holds a long transaction without trouble (no undo log to fill); the price is that
 * nothing is visible in the target until the end, which nobody needs before then anyway.
 */
export async function copyToPostgres(
  source: Database.Database,
  target: CloudDatabase,
  progress: CopyProgress,
  clock: () => number = Date.now,
): Promise<CopyResult> {
  const started = clock();
  const tables = tablesToCopy(source);
  const result: CopyResult["tables"] = [];
  // One snapshot of the source for the whole copy and its count check.
  source.exec("BEGIN");
  try {
    await target.kysely.transaction().execute(async (trx) => {
      await sql`SELECT pg_advisory_xact_lock(${COPY_LOCK_KEY})`.execute(trx);
      await assertTargetEmpty(trx, target.description);
      for (const table of tables) {
        const tableStarted = clock();
        const rows = await copyTable(source, trx, table, progress).catch((err: unknown) => {
          throw copyFailed(table.name, err, target.description);
        });
        result.push({ name: table.name, rows });
        progress.tableDone(table.name, rows, clock() - tableStarted);
      }
      await resetIdentities(trx, tables);
      await checkCounts(source, trx, tables, target.description);
    });
  } finally {
    source.exec("COMMIT");
  }
  return { tables: result, ms: clock() - started };
}

/** The tables to copy, in COPY_ORDER; a source table this order does not know stops the copy before it begins. */
export function tablesToCopy(source: Database.Database): CopiedTable[] {
  const present = new Set(
    (
      source.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as {
        name: string;
      }[]
    ).map((r) => r.name),
  );
  const unknown = [...present].filter((name) => !NOT_COPIED.has(name) && !COPY_ORDER.some((t) => t.name === name));
  if (unknown.length > 0) {
    throw new FieldgateError(
      "INTERNAL",
      `the embedded database has table(s) ${unknown.join(", ")} that migrate does not know how to copy; nothing was copied (add them to COPY_ORDER in storage/copy-to-postgres.ts)`,
    );
  }
  return COPY_ORDER.filter((t) => present.has(t.name));
}

/** CONFIG_INVALID when any table of `db` holds a row: migrate only fills an empty cloud. */
export async function assertTargetEmpty(db: Executor, description: string): Promise<void> {
  const filled: string[] = [];
  for (const { name } of COPY_ORDER) {
    const found = await sql<{ one: number }>`SELECT 1 AS one FROM ${sql.table(name)} LIMIT 1`.execute(db);
    if (found.rows.length > 0) filled.push(name);
  }
  if (filled.length > 0) {
    throw new FieldgateError(
      "CONFIG_INVALID",
      `--to ${description} is not empty (rows in ${filled.slice(0, 5).join(", ")}${filled.length > 5 ? ", …" : ""}); ` +
        "migrate copies into an empty database only: create a new one (createdb) and give that, or drop this one if it holds nothing you need",
      "to",
    );
  }
}

async function copyTable(
  source: Database.Database,
  trx: Executor,
  table: CopiedTable,
  progress: CopyProgress,
): Promise<number> {
  const total = (source.prepare(`SELECT count(*) AS n FROM "${table.name}"`).get() as { n: number }).n;
  progress.tableStarted(table.name, total);
  const columns = (source.pragma(`table_info("${table.name}")`) as { name: string }[]).map((c) => c.name);
  const shape = table.name === "telemetry" ? telemetryShape(columns) : sameShape(columns);
  const order = table.orderBy ? ` ORDER BY ${table.orderBy}` : "";
  const read = source.prepare(`SELECT ${shape.select} FROM "${table.name}"${order}`).raw(true);
  const types = await columnTypes(trx, table.name, shape.columns);
  let batch: unknown[][] = [];
  let done = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await insertRows(trx, table.name, shape, types, batch);
    done += batch.length;
    batch = [];
    progress.rowsCopied(table.name, done);
  };
  for (const row of read.iterate() as IterableIterator<unknown[]>) {
    batch.push(shape.convert(row));
    if (batch.length >= BATCH_ROWS) await flush();
  }
  await flush();
  return done;
}

/** How one table's rows are read from SQLite and written to PostgreSQL. */
interface RowShape {
  /** The SQLite select list. */
  select: string;
  /** The PostgreSQL columns, in the order `convert` returns values. */
  columns: string[];
  convert(row: unknown[]): unknown[];
  /** The target's identity is GENERATED ALWAYS: the copy keeps the source's ids regardless. */
  overridingIdentity: boolean;
}

function sameShape(columns: string[]): RowShape {
  return {
    select: columns.map((c) => `"${c}"`).join(", "),
    columns,
    convert: (row) => row,
    overridingIdentity: false,
  };
}

/** Telemetry kinds (ingest/telemetry-writer.ts): 0 number, 1 string, 2 boolean stored as 0/1. */
const TEXT_KIND = 1;

/**
 * SQLite's one `value ANY` column becomes PostgreSQL's value_number or value_text by `kind`
 * (booleans stay the numbers 0 and 1), and SQLite's rowid becomes `id`, so readings of the same
 * millisecond keep their order.
 */
function telemetryShape(sourceColumns: string[]): RowShape {
  const rest = sourceColumns.filter((c) => c !== "value");
  const kindAt = rest.indexOf("kind");
  return {
    select: ["rowid", "value", ...rest.map((c) => `"${c}"`)].join(", "),
    columns: ["id", "value_number", "value_text", ...rest],
    convert: ([id, value, ...others]) => {
      const isText = others[kindAt] === TEXT_KIND;
      const number = value === null || isText ? null : typeof value === "number" ? value : Number(value);
      const text = value === null || !isText ? null : String(value);
      return [id, number, text, ...others];
    },
    overridingIdentity: true,
  };
}

/**
 * One INSERT per batch with one array parameter per column (`unnest`): PostgreSQL binds and plans
 * a handful of parameters instead of one per value: 500 000 readings took 15.5 s, against 47.7 s as
 * multi-row VALUES lists (one run each, a shared 2-core machine).
 */
async function insertRows(
  trx: Executor,
  table: string,
  shape: RowShape,
  types: ReadonlyMap<string, string>,
  rows: unknown[][],
): Promise<void> {
  const arrays = shape.columns.map((column, i) => {
    const integer = types.get(column) === "int8";
    // SQLite kept some times with a fraction of a millisecond (a rollout's last start, before it
    // was stored whole); BIGINT takes whole numbers, rounded up so a rate slot is never earlier.
    const values = rows.map((row) => {
      const value = row[i];
      return integer && typeof value === "number" && !Number.isInteger(value) ? Math.ceil(value) : value;
    });
    return sql`${values}::${sql.raw(`${types.get(column)}[]`)}`;
  });
  const overriding = shape.overridingIdentity ? sql` OVERRIDING SYSTEM VALUE` : sql``;
  await sql`INSERT INTO ${sql.table(table)} (${sql.join(shape.columns.map((c) => sql.ref(c)))})${overriding}
    SELECT * FROM unnest(${sql.join(arrays)})`.execute(trx);
}

/** The target's column types (`int8`, `text`, `bytea`…); a column the target lacks stops the copy, naming it. */
async function columnTypes(trx: Executor, table: string, columns: readonly string[]): Promise<Map<string, string>> {
  const { rows } = await sql<{ column_name: string; udt_name: string }>`
    SELECT column_name, udt_name FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = ${table}`.execute(trx);
  const types = new Map(rows.map((r) => [r.column_name, r.udt_name]));
  const missing = columns.filter((c) => !types.has(c));
  if (missing.length > 0) {
    throw new Error(`the PostgreSQL table has no column ${missing.join(", ")}`);
  }
  return types;
}

/** Each identity column continues after the highest copied id, as SQLite's INTEGER PRIMARY KEY does. */
async function resetIdentities(trx: Executor, tables: readonly CopiedTable[]): Promise<void> {
  const identities = await sql<{ table_name: string; column_name: string }>`
    SELECT table_name, column_name FROM information_schema.columns
    WHERE table_schema = current_schema() AND is_identity = 'YES'`.execute(trx);
  for (const { table_name, column_name } of identities.rows) {
    if (!tables.some((t) => t.name === table_name)) continue;
    // setval with NULL (an empty table) changes nothing: the sequence still starts at 1.
    await sql`SELECT setval(pg_get_serial_sequence(${table_name}, ${column_name}), max(${sql.ref(column_name)})) FROM ${sql.table(table_name)}`.execute(
      trx,
    );
  }
}

/** Every table holds as many rows on both sides, or the whole copy is rolled back. */
async function checkCounts(
  source: Database.Database,
  trx: Executor,
  tables: readonly CopiedTable[],
  description: string,
): Promise<void> {
  const mismatches: string[] = [];
  for (const { name } of tables) {
    const expected = (source.prepare(`SELECT count(*) AS n FROM "${name}"`).get() as { n: number }).n;
    const got = await sql<{ n: number }>`SELECT count(*)::bigint AS n FROM ${sql.table(name)}`.execute(trx);
    const copied = Number(got.rows[0]?.n ?? 0);
    if (copied !== expected) mismatches.push(`${name}: ${expected} in the data dir, ${copied} in the target`);
  }
  if (mismatches.length > 0) {
    throw new FieldgateError(
      "INTERNAL",
      `row counts differ after the copy (${mismatches.join("; ")}); nothing was committed to ${description}, which is still empty. Report this with the two counts`,
    );
  }
}

/** A row PostgreSQL refused (a constraint SQLite did not enforce on an old row, say): which table, and that nothing stayed. */
function copyFailed(table: string, err: unknown, description: string): FieldgateError {
  const e = err as { message?: string; detail?: string };
  return new FieldgateError(
    "INTERNAL",
    `copying ${table} failed: ${e.message ?? String(err)}${e.detail ? ` (${e.detail})` : ""}; nothing was committed to ${description}, which is still empty. Fix that row in the data dir and run migrate again`,
  );
}

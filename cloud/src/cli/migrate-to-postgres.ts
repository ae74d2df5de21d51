import fs from "node:fs";
import { FieldgateError } from "@fieldgate/shared";
import Database from "better-sqlite3";
import cliProgress from "cli-progress";
import { DataDirLock } from "../config/data-dir-lock.js";
import { dataFiles } from "../config/data-files.js";
import { type CloudDatabase, openCloudDatabase, parseDatabaseUrl, redactUrl } from "../storage/cloud-database.js";
import { assertTargetEmpty, type CopyProgress, copyToPostgres } from "../storage/copy-to-postgres.js";
import { MIGRATIONS, openDatabase } from "../storage/database.js";
import type { CliIo } from "./cli-support.js";

/**
 * `migrate`'s work (migrate-command.ts): refuses a running cloud (its data dir lock), an
 * unreachable or non-empty target; migrates an old data dir forward; copies; reports.
 */
export async function migrateToPostgres(io: CliIo, dataDir: string, url: string): Promise<void> {
  const description = targetOf(url);
  const file = sourceFile(dataDir);
  // Held for the whole copy: a cloud started meanwhile would write rows the copy never sees.
  const lock = DataDirLock.acquire(dataDir);
  let target: CloudDatabase | undefined;
  let source: Database.Database | undefined;
  try {
    target = await openTarget(url);
    // Before the source is touched (it may need migrating forward): a full target is refused first.
    await assertTargetEmpty(target.kysely, description);
    source = openSource(io, file);
    const progress = io.stderr.isTTY ? new ProgressBars(io) : new ProgressLines(io);
    const result = await copyToPostgres(source, target, progress);
    const rows = result.tables.reduce((sum, t) => sum + t.rows, 0);
    io.out(
      `copied ${rows} rows in ${result.tables.length} tables from ${file} to ${description} in ${(result.ms / 1000).toFixed(1)} s; every table's row count matches`,
    );
    io.out(
      `the CA, keys and credential files stay in ${dataDir}: run the cloud with both, ` +
        `fieldgate-cloud serve --data-dir ${dataDir} --database ${description}`,
    );
  } finally {
    source?.close();
    await target?.close();
    lock.release();
  }
}

/** The target's description for messages; CONFIG_INVALID naming --to for anything but a PostgreSQL URL. */
function targetOf(url: string): string {
  try {
    parseDatabaseUrl(url);
  } catch {
    throw new FieldgateError(
      "CONFIG_INVALID",
      `--to ${JSON.stringify(redactUrl(url))} is not a PostgreSQL database URL; give the empty target as postgres://user@host:5432/db`,
      "to",
    );
  }
  return redactUrl(url);
}

/** `<data-dir>/fieldgate.db`; CONFIG_INVALID naming --from when the directory or its database is missing. */
function sourceFile(dataDir: string): string {
  let isDirectory = false;
  try {
    isDirectory = fs.statSync(dataDir, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    // ENAMETOOLONG, ENOTDIR, EACCES: not a data dir this command can use either.
  }
  if (!isDirectory) {
    throw new FieldgateError(
      "CONFIG_INVALID",
      `--from ${JSON.stringify(dataDir)} is not a directory; give the data directory of the embedded cloud (its --data-dir)`,
      "from",
    );
  }
  const file = dataFiles(dataDir).database;
  if (!fs.existsSync(file)) {
    throw new FieldgateError(
      "CONFIG_INVALID",
      `--from ${JSON.stringify(dataDir)} holds no embedded database (${file}); give the data directory the cloud ran with`,
      "from",
    );
  }
  return file;
}

/** Opens (creating the schema of) the target; its DATABASE_UNAVAILABLE names --to, the flag this command has. */
async function openTarget(url: string): Promise<CloudDatabase> {
  try {
    return await openCloudDatabase({ kind: "postgres", url });
  } catch (err) {
    if (err instanceof FieldgateError && err.code === "DATABASE_UNAVAILABLE") {
      throw new FieldgateError(err.code, err.message.replace("fix --database (FIELDGATE_DATABASE)", "fix --to"), "to");
    }
    throw err;
  }
}

/**
 * The embedded database, read-only, at this release's schema: a data dir of an older release is
 * migrated forward first, as `serve` would at its next start (the cloud is stopped: we hold its lock).
 */
function openSource(io: CliIo, file: string): Database.Database {
  const latest = Math.max(...MIGRATIONS.map((m) => m.version));
  const version = schemaVersion(file);
  if (version !== latest) {
    // Throws DATABASE_UNAVAILABLE for a newer schema; migrates an older one.
    openDatabase(file).close();
    io.err(`migrated ${file} forward from schema version ${version} to ${latest}`);
  }
  return new Database(file, { readonly: true, fileMustExist: true });
}

function schemaVersion(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const known = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'").get();
    if (!known) return 0;
    return (db.prepare("SELECT coalesce(max(version), 0) AS v FROM schema_migrations").get() as { v: number }).v;
  } finally {
    db.close();
  }
}

/** On a terminal: one bar per table on stderr. */
class ProgressBars implements CopyProgress {
  private bar: cliProgress.SingleBar | undefined;

  constructor(private readonly io: CliIo) {}

  tableStarted(table: string, rows: number): void {
    this.bar = new cliProgress.SingleBar(
      {
        format: `${table.padEnd(18)} [{bar}] {percentage}% {value}/{total} rows`,
        stream: this.io.stderr as NodeJS.WriteStream,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(rows, 0);
  }

  rowsCopied(_table: string, done: number): void {
    this.bar?.update(done);
  }

  tableDone(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** Not on a terminal (a log, a pipe): one line per table once it is copied. */
class ProgressLines implements CopyProgress {
  constructor(private readonly io: CliIo) {}

  tableStarted(): void {}

  rowsCopied(): void {}

  tableDone(table: string, rows: number, ms: number): void {
    this.io.err(`copied ${table}: ${rows} row(s) in ${(ms / 1000).toFixed(1)} s`);
  }
}

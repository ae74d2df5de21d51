import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { sql } from "kysely";
import { cloudBin, tempDir } from "../../../test/support/cloud-process.js";
import type { CloudDatabase } from "../../src/storage/cloud-database.js";
import { COPY_ORDER } from "../../src/storage/copy-to-postgres.js";

/** The committed data dir of the release before PostgreSQL support (make-data-dir-v15.mjs). */
export const FIXTURE_V15 = path.join(import.meta.dirname, "../fixtures/data-dir-v15");

/** A private copy of the v15 fixture, as an operator's data dir: the tests change it. */
export function copyOfFixture(): string {
  const dir = tempDir("migrate");
  fs.cpSync(FIXTURE_V15, dir, { recursive: true });
  return dir;
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The built `fieldgate-cloud` as a child process, stderr not a terminal. */
export function runCloudCli(...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cloudBin, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? Number((err as { code?: unknown }).code ?? 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

type Row = Record<string, unknown>;

/** Every row of every copied table in the embedded database, by primary key; telemetry as PostgreSQL shapes it. */
export function embeddedRows(file: string): Map<string, Row[]> {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const tables = new Map<string, Row[]>();
    for (const { name } of COPY_ORDER) {
      if (name === "telemetry") {
        const rows = db.prepare("SELECT rowid AS id, * FROM telemetry ORDER BY rowid").all() as Row[];
        tables.set(
          name,
          rows.map(({ value, ...rest }) => ({
            ...rest,
            value_number: rest.kind === 1 ? null : value,
            value_text: rest.kind === 1 ? value : null,
          })),
        );
        continue;
      }
      tables.set(name, db.prepare(`SELECT * FROM "${name}" ORDER BY ${keyOf(db, name)}`).all() as Row[]);
    }
    return tables;
  } finally {
    db.close();
  }
}

/** The same tables read from PostgreSQL in the same order. */
export async function postgresRows(database: CloudDatabase, file: string): Promise<Map<string, Row[]>> {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  const keys = new Map(COPY_ORDER.map(({ name }) => [name, name === "telemetry" ? "id" : keyOf(db, name)]));
  db.close();
  const tables = new Map<string, Row[]>();
  for (const [name, key] of keys) {
    const rows = await sql<Row>`SELECT * FROM ${sql.table(name)} ORDER BY ${sql.raw(key)}`.execute(database.kysely);
    tables.set(name, rows.rows);
  }
  return tables;
}

function keyOf(db: Database.Database, table: string): string {
  const columns = db.pragma(`table_info("${table}")`) as { name: string; pk: number }[];
  const key = columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
  return (key.length > 0 ? key : columns).map((c) => `"${c.name}"`).join(", ");
}

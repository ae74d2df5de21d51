import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { PassThrough } from "node:stream";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { tempDir } from "../../../test/support/cloud-process.js";
import { LOCAL_POSTGRES, type ScratchTarget, scratchTarget } from "../../../test/support/test-database.js";
import { buildProgram } from "../../src/cli/program.js";
import { dataFiles } from "../../src/config/data-files.js";
import { type CloudDatabase, openCloudDatabase } from "../../src/storage/cloud-database.js";
import { BATCH_ROWS, COPY_ORDER } from "../../src/storage/copy-to-postgres.js";
import { openDatabase } from "../../src/storage/database.js";
import { capturedIo } from "../cli/captured-io.js";
import { copyOfFixture, embeddedRows, postgresRows, runCloudCli } from "./migrate-support.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function emptyTarget(): Promise<ScratchTarget> {
  const target = await scratchTarget(LOCAL_POSTGRES);
  cleanups.push(() => target.drop());
  return target;
}

async function openTarget(target: ScratchTarget): Promise<CloudDatabase> {
  const database = await openCloudDatabase(target.target);
  cleanups.push(() => database.close());
  return database;
}

/**
 * The v15 fixture grown past one INSERT batch of telemetry, with a group moved under one created
 * after it (its parent's id is larger than its own), as an operator's tree ends up.
 */
function busyDataDir(): string {
  const dir = copyOfFixture();
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const db = openDatabase(dataFiles(dir).database);
  db.transaction(() => {
    const insert = db.prepare(
      "INSERT INTO telemetry (device_id, ts, name, value, kind, unit, stream, seq) VALUES (1, ?, ?, ?, ?, ?, 'default', ?)",
    );
    for (let i = 0; i < 2 * BATCH_ROWS + 345; i++) {
      const kind = i % 3;
      const value = kind === 0 ? i / 4 : kind === 1 ? `state ${i}` : i % 2;
      insert.run(
        1_764_100_000_000 + i,
        `reading-${kind}`,
        value,
        kind,
        kind === 0 ? "V" : null,
        10 + Math.floor(i / 10),
      );
    }
    db.prepare(
      "INSERT INTO groups (id, org_id, parent_id, name, path, created_at) VALUES (4, 1, 1, 'plant-b', '/1/4/', 1)",
    ).run();
    db.prepare("UPDATE groups SET parent_id = 4, path = '/1/4/2/' WHERE id = 2").run();
    db.prepare("UPDATE groups SET path = '/1/4/2/3/' WHERE id = 3").run();
  })();
  db.close();
  return dir;
}

async function rowCount(database: CloudDatabase, table: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM ${sql.table(table)}`.execute(database.kysely);
  return Number(rows[0]?.n);
}

describe("fieldgate-cloud migrate --from <data-dir> --to postgres://…", () => {
  it("rounds a time SQLite kept with a fraction of a millisecond up to the whole one BIGINT holds", async () => {
    const dir = copyOfFixture();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const db = openDatabase(dataFiles(dir).database);
    const before = (db.prepare("SELECT last_start_at FROM rollouts WHERE id = 1").get() as { last_start_at: number })
      .last_start_at;
    db.prepare("UPDATE rollouts SET last_start_at = ? WHERE id = 1").run(before + 0.25);
    db.close();
    const target = await emptyTarget();
    const run = await runCloudCli("migrate", "--from", dir, "--to", target.url as string);
    expect(run.code).toBe(0);
    const database = await openTarget(target);
    const got = await sql<{ t: number }>`SELECT last_start_at AS t FROM rollouts WHERE id = 1`.execute(database.kysely);
    expect(got.rows).toEqual([{ t: Math.ceil(before + 0.25) }]);
  });

  it("copies every table row for row, ids kept, and the target's identities continue after them", async () => {
    const dir = busyDataDir();
    const target = await emptyTarget();
    const run = await runCloudCli("migrate", "--from", dir, "--to", target.url as string);
    expect(run.stderr).not.toMatch(/error/);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/copied \d+ rows in 25 tables .* every table's row count matches/);
    expect(run.stdout).toContain(`fieldgate-cloud serve --data-dir ${dir} --database ${target.url}`);
    // Not a terminal: one line per table, in foreign-key order.
    const lines = run.stderr.trim().split("\n");
    expect(lines.map((l) => l.split(":")[0])).toEqual(COPY_ORDER.map((t) => `copied ${t.name}`));
    expect(lines[8]).toMatch(new RegExp(`^copied telemetry: ${2 * BATCH_ROWS + 345 + 5} row\\(s\\) in \\d+\\.\\d s$`));

    const database = await openTarget(target);
    const file = dataFiles(dir).database;
    const expected = embeddedRows(file);
    const got = await postgresRows(database, file);
    for (const { name } of COPY_ORDER)
      expect({ name, rows: got.get(name) }).toEqual({ name, rows: expected.get(name) });
    // A sample by value, should both readers above agree on a mistake.
    const readings = await sql<{ name: string; value_number: number | null; value_text: string | null }>`
      SELECT name, value_number, value_text FROM telemetry WHERE device_id = 1 AND ts = ${1_764_000_002_000} ORDER BY id`.execute(
      database.kysely,
    );
    expect(readings.rows).toEqual([
      { name: "state", value_number: null, value_text: "running" },
      { name: "door_open", value_number: 1, value_text: null },
    ]);

    const nextDevice = await sql<{ id: number }>`
      INSERT INTO devices (uuid, org_id, created_at) VALUES ('after-migrate', 1, 0) RETURNING id`.execute(
      database.kysely,
    );
    expect(nextDevice.rows[0]?.id).toBe(4);
    const nextReading = await sql<{ id: number }>`
      INSERT INTO telemetry (device_id, ts, name, kind, stream, seq) VALUES (1, 0, 'n', 0, 's', 1) RETURNING id`.execute(
      database.kysely,
    );
    expect(nextReading.rows[0]?.id).toBe(2 * BATCH_ROWS + 345 + 5 + 1);
    expect(fs.existsSync(path.join(dir, "cloud.lock"))).toBe(false);
  });

  it("refuses a target that is no longer empty, naming it without its password, and changes nothing", async () => {
    const dir = busyDataDir();
    const target = await emptyTarget();
    expect((await runCloudCli("migrate", "--from", dir, "--to", target.url as string)).code).toBe(0);
    const withPassword = new URL(target.url as string);
    withPassword.password = "hunter2";
    const again = await runCloudCli("migrate", "--from", dir, "--to", withPassword.toString());
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(
      new RegExp(`^error CONFIG_INVALID: --to ${target.url} is not empty \\(rows in organizations, groups, .*createdb`),
    );
    expect(again.stderr).not.toContain("hunter2");
    const database = await openTarget(target);
    expect(await rowCount(database, "organizations")).toBe(1);
    expect(await rowCount(database, "telemetry")).toBe(2 * BATCH_ROWS + 345 + 5);
  });

  it("a row PostgreSQL refuses rolls the whole copy back: the target stays empty and the same command works once it is fixed", async () => {
    const dir = busyDataDir();
    const db = openDatabase(dataFiles(dir).database);
    // An orphan left by a release that did not enforce foreign keys.
    db.pragma("foreign_keys = OFF");
    db.prepare("INSERT INTO device_logs (device_id, ts, level, msg) VALUES (999, 0, 'info', 'orphan')").run();
    db.close();
    const target = await emptyTarget();
    const failed = await runCloudCli("migrate", "--from", dir, "--to", target.url as string);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/error INTERNAL: copying device_logs failed: .*foreign key.*still empty/);
    const database = await openTarget(target);
    for (const { name } of COPY_ORDER)
      expect({ name, rows: await rowCount(database, name) }).toEqual({ name, rows: 0 });

    const fix = openDatabase(dataFiles(dir).database);
    fix.prepare("DELETE FROM device_logs WHERE device_id = 999").run();
    fix.close();
    expect((await runCloudCli("migrate", "--from", dir, "--to", target.url as string)).code).toBe(0);
    expect(await rowCount(database, "device_logs")).toBe(2);
  });

  it("refuses a data dir a running cloud holds with DATA_DIR_LOCKED, before touching the target", async () => {
    const dir = busyDataDir();
    // A live process whose command line is a `serve`, holding the lock as a running cloud does.
    const holder = spawn(process.execPath, ["-e", "setInterval(() => {}, 60_000)", "serve"], { stdio: "ignore" });
    cleanups.push(() => void holder.kill());
    const lock = path.join(dir, "cloud.lock");
    fs.writeFileSync(lock, `${JSON.stringify({ pid: holder.pid, startedAt: "2026-12-01T00:00:00.000Z" })}\n`);
    const target = await emptyTarget();
    const run = await runCloudCli("migrate", "--from", dir, "--to", target.url as string);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(`^error DATA_DIR_LOCKED: ${dir} is in use by fieldgate-cloud pid ${holder.pid}`),
    );
    expect(JSON.parse(fs.readFileSync(lock, "utf8")).pid).toBe(holder.pid);
    const database = await openTarget(target);
    expect(await rowCount(database, "organizations")).toBe(0);
  });

  it("a bad --to is CONFIG_INVALID, an unreachable one DATABASE_UNAVAILABLE naming --to; a missing --from is CONFIG_INVALID", async () => {
    const dir = copyOfFixture();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const before = fs.readFileSync(dataFiles(dir).database);

    const notPostgres = await runCloudCli("migrate", "--from", dir, "--to", "mysql://root@db/fieldgate");
    expect(notPostgres.code).toBe(2);
    expect(notPostgres.stderr).toMatch(
      /^error CONFIG_INVALID: --to "mysql:\/\/root@db\/fieldgate" is not a PostgreSQL/,
    );

    const unreachable = await runCloudCli(
      "migrate",
      "--from",
      dir,
      "--to",
      "postgres://fg:hunter2@127.0.0.1:1/fieldgate",
    );
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(
      /^error DATABASE_UNAVAILABLE: cannot use the database postgres:\/\/fg@127\.0\.0\.1:1\/fieldgate: nothing listens there; .*fix --to/,
    );
    expect(unreachable.stderr).not.toContain("hunter2");

    const missing = path.join(dir, "no-such-dir");
    const noDir = await runCloudCli("migrate", "--from", missing, "--to", LOCAL_POSTGRES);
    expect(noDir.code).toBe(2);
    expect(noDir.stderr).toMatch(new RegExp(`^error CONFIG_INVALID: --from "${missing}" is not a directory`));
    const empty = tempDir("migrate-empty");
    cleanups.push(() => fs.rmSync(empty, { recursive: true, force: true }));
    const noDatabase = await runCloudCli("migrate", "--from", empty, "--to", LOCAL_POSTGRES);
    expect(noDatabase.code).toBe(2);
    expect(noDatabase.stderr).toMatch(/^error CONFIG_INVALID: --from .* holds no embedded database/);
    // None of these touched the data dir.
    expect(fs.readFileSync(dataFiles(dir).database).equals(before)).toBe(true);
    expect(fs.existsSync(path.join(dir, "cloud.lock"))).toBe(false);
  });

  it("on a terminal, draws a progress bar per table on stderr", async () => {
    const dir = busyDataDir();
    const target = await emptyTarget();
    const { io, out } = capturedIo();
    const terminal = new PassThrough() as PassThrough & { isTTY?: boolean };
    terminal.isTTY = true;
    let drawn = "";
    terminal.on("data", (chunk: Buffer) => {
      drawn += chunk.toString();
    });
    const code = await buildProgram({ ...io, stderr: terminal }).run([
      "migrate",
      "--from",
      dir,
      "--to",
      target.url as string,
    ]);
    expect(code).toBe(0);
    expect(out.join("\n")).toContain("every table's row count matches");
    expect(drawn).toMatch(/telemetry +\[[█░]+\] 100% 2350\/2350 rows/);
  });
});

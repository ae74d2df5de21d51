import fs from "node:fs";
import path from "node:path";
import type Database from "better-sqlite3";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, tempDir } from "../../../test/support/cloud-process.js";
import { openDatabase } from "../../src/storage/database.js";
import { type CheckpointResult, WalCheckpointer } from "../../src/storage/wal-checkpointer.js";

// The worker runs compiled JavaScript (`npm test` builds first), as it does in the cloud.
const workerUrl = new URL("../../dist/storage/wal-checkpoint-worker.js", import.meta.url);

function recordingLogger() {
  const lines: { msg: string; reason?: string }[] = [];
  const logger = pino(
    { level: "warn" },
    { write: (line: string) => lines.push(JSON.parse(line) as { msg: string; reason?: string }) },
  );
  return { logger, lines };
}

describe("WalCheckpointer", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  function database(): { db: Database.Database; file: string } {
    const dir = tempDir("wal");
    const file = path.join(dir, "cloud.db");
    const db = openDatabase(file, []);
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => {
      db.close();
    });
    return { db, file };
  }

  const writeCommits = (db: Database.Database, commits: number) => {
    const insert = db.prepare("INSERT INTO t (body) VALUES (?)");
    for (let i = 0; i < commits; i++) insert.run("x".repeat(2000));
  };

  it("takes checkpoints off the connection: commits never checkpoint, the worker copies the WAL into the database", async () => {
    const { db, file } = database();
    const results: CheckpointResult[] = [];
    const { logger, lines } = recordingLogger();
    const checkpointer = new WalCheckpointer(db, {
      file,
      logger,
      intervalMs: 50,
      workerUrl,
      onCheckpoint: (r) => results.push(r),
    });
    checkpointer.start();
    cleanups.push(() => checkpointer.stop());
    expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(0);
    const before = fs.statSync(file).size;
    // 3,000 commits of 2 kB: far past the 1,000 pages at which a commit would checkpoint by itself.
    writeCommits(db, 3000);
    const done = await eventually(() => results.find((r) => r.busy === 0 && r.log > 1000 && r.checkpointed === r.log));
    expect(done.checkpointed).toBeGreaterThan(1000);
    expect(fs.statSync(file).size).toBeGreaterThan(before + 3000 * 2000);
    expect(db.prepare("SELECT count(*) AS n FROM t").get()).toEqual({ n: 3000 });
    expect(lines).toEqual([]);

    await checkpointer.stop();
    expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(1000);
  });

  it("goes back to checkpointing on the connection, with a warning, when the worker fails", async () => {
    const { db } = database();
    const { logger, lines } = recordingLogger();
    // A file the worker cannot open: its connection fails at once.
    const checkpointer = new WalCheckpointer(db, { file: "/nonexistent/cloud.db", logger, workerUrl });
    checkpointer.start();
    cleanups.push(() => checkpointer.stop());
    const warning = await eventually(() => lines.find((l) => /checkpoint worker stopped/.test(l.msg)));
    expect(warning.reason).toMatch(/unable to open|directory does not exist|cannot open/i);
    expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(1000);
    writeCommits(db, 10);
    expect(db.prepare("SELECT count(*) AS n FROM t").get()).toEqual({ n: 10 });
  });
});

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TelemetryBatch } from "@fieldgate/shared";
import fc from "fast-check";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { type CloudDatabase, openCloudDatabase } from "../../src/storage/cloud-database.js";
import { MIGRATIONS, openDatabase } from "../../src/storage/database.js";
import { TelemetryWriter } from "../../src/telemetry/telemetry-writer.js";
import { addDevices } from "./fixture-devices.js";

const STREAM = "0123456789abcdef0123456789abcdef";
const OTHER = "fedcba9876543210fedcba9876543210";

const opened: TestDatabase[] = [];
afterEach(async () => {
  for (const t of opened.splice(0)) await t.dispose();
});

async function database(): Promise<CloudDatabase> {
  const test = await openTestDatabase();
  opened.push(test);
  await addDevices(test.database, [1, 2]);
  return test.database;
}

const batch = (seq: number, stream = STREAM): TelemetryBatch => ({
  v: 1,
  stream,
  seq,
  readings: [{ name: "n", ts: 1_700_000_000_000 + seq, value: seq }],
});

/** Writes each batch in its own commit (the writer groups what arrives in one turn). */
async function writeEach(writer: TelemetryWriter, deviceId: number, batches: TelemetryBatch[]): Promise<boolean[]> {
  const results: boolean[] = [];
  for (const b of batches) results.push(await writer.write(deviceId, b));
  return results;
}

async function storedSeqs(db: CloudDatabase, deviceId = 1, stream = STREAM): Promise<number[]> {
  const { rows } = await sql<{ seq: number }>`SELECT seq FROM telemetry
    WHERE device_id = ${deviceId} AND stream = ${stream} ORDER BY seq`.execute(db.kysely);
  return rows.map((r) => r.seq);
}

async function gapCount(db: CloudDatabase): Promise<number> {
  const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM telemetry_seq_gaps`.execute(db.kysely);
  return Number(rows[0]?.n);
}

describe("TelemetryWriter deduplication by sequence", () => {
  it("stores batches in order once, and a redelivery of any of them not again", async () => {
    const db = await database();
    const writer = new TelemetryWriter(db);
    expect(
      await writeEach(
        writer,
        1,
        [1, 2, 3].map((s) => batch(s)),
      ),
    ).toEqual([true, true, true]);
    expect(
      await writeEach(
        writer,
        1,
        [1, 3, 2].map((s) => batch(s)),
      ),
    ).toEqual([false, false, false]);
    expect(await storedSeqs(db)).toEqual([1, 2, 3]);
    expect(await gapCount(db)).toBe(0);
  });

  it("takes a batch that arrives late, after a higher one, once: the skipped seqs are a gap until they come", async () => {
    const db = await database();
    const writer = new TelemetryWriter(db);
    expect(
      await writeEach(
        writer,
        1,
        [2, 5, 3, 3, 1, 4, 5, 2].map((s) => batch(s)),
      ),
    ).toEqual([true, true, true, false, true, true, false, false]);
    expect(await storedSeqs(db)).toEqual([1, 2, 3, 4, 5]);
    expect(await gapCount(db)).toBe(0);
  });

  it("keeps streams and devices apart, within one commit too", async () => {
    const db = await database();
    const writer = new TelemetryWriter(db);
    const all = await Promise.all([
      writer.write(1, batch(1)),
      writer.write(1, batch(1, OTHER)),
      writer.write(2, batch(1)),
      writer.write(1, batch(1)),
      writer.write(1, batch(2)),
    ]);
    expect(all).toEqual([true, true, true, false, true]);
    expect(await storedSeqs(db, 1)).toEqual([1, 2]);
    expect(await storedSeqs(db, 1, OTHER)).toEqual([1]);
    expect(await storedSeqs(db, 2)).toEqual([1]);
  });

  it("survives a restart: a new writer on the same database still knows what was stored", async () => {
    const db = await database();
    await writeEach(
      new TelemetryWriter(db),
      1,
      [1, 3].map((s) => batch(s)),
    );
    const again = new TelemetryWriter(db);
    expect(
      await writeEach(
        again,
        1,
        [1, 2, 3, 4].map((s) => batch(s)),
      ),
    ).toEqual([false, true, false, true]);
    expect(await storedSeqs(db)).toEqual([1, 2, 3, 4]);
  });

  it("fails a poison batch alone: the batch that shared its commit is stored, the poison one can be resent", async () => {
    const db = await database();
    const writer = new TelemetryWriter(db);
    await writeEach(writer, 1, [batch(1)]);
    // A reading the table refuses (a time that is no integer) fails the commit, on either backend.
    const poisoned = { ...batch(2), readings: [{ name: "n", ts: 1.5, value: 1 }] };
    const [good, bad] = await Promise.allSettled([writer.write(1, batch(3)), writer.write(1, poisoned)]);
    expect(good).toEqual({ status: "fulfilled", value: true });
    expect(bad.status).toBe("rejected");
    // The failed batch left no mark: its seq is still new when it comes again.
    expect(await writeEach(writer, 1, [batch(2)])).toEqual([true]);
    expect(await storedSeqs(db)).toEqual([1, 2, 3]);
  });

  it("stores every seq of any arrival order exactly once (property)", async () => {
    // One database for every run (a fresh one costs a second on PostgreSQL); each run its own device.
    const db = await database();
    let deviceId = 100;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 80 }),
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 20 }),
        async (arrivals, commitSizes) => {
          deviceId += 1;
          await addDevices(db, [deviceId]);
          const writer = new TelemetryWriter(db);
          const seen = new Set<number>();
          const expected: boolean[] = [];
          const results: boolean[] = [];
          let i = 0;
          let c = 0;
          while (i < arrivals.length) {
            const size = commitSizes[c++ % commitSizes.length] ?? 1;
            const slice = arrivals.slice(i, i + size);
            i += size;
            for (const s of slice) {
              expected.push(!seen.has(s));
              seen.add(s);
            }
            results.push(...(await Promise.all(slice.map((s) => writer.write(deviceId, batch(s))))));
          }
          expect(results).toEqual(expected);
          expect(await storedSeqs(db, deviceId)).toEqual([...seen].sort((a, b) => a - b));
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("migration 12: per-batch keys become high marks and gaps", () => {
  it("keeps deduplicating what was stored before it, gaps included", async () => {
    // An embedded data dir from before migration 12; the cloud migrates it forward when it opens it.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fg-migration-12-"));
    const file = path.join(dir, "cloud.db");
    const old = openDatabase(file, MIGRATIONS.slice(0, 11));
    old.prepare("INSERT INTO organizations (id, name, created_at) VALUES (1, 'o', 0)").run();
    old
      .prepare("INSERT INTO devices (id, uuid, org_id, created_at) VALUES (1, ?, 1, 0)")
      .run("00000000-0000-4000-8000-000000000001");
    for (const seq of [3, 4, 7, 9]) {
      old
        .prepare("INSERT INTO telemetry_batches (device_id, stream, seq, received_at) VALUES (1, ?, ?, 0)")
        .run(STREAM, seq);
    }
    old.close();
    const db = await openCloudDatabase({ kind: "sqlite", file });
    try {
      const { rows } = await sql`SELECT high_seq FROM telemetry_streams`.execute(db.kysely);
      expect(rows).toEqual([{ high_seq: 9 }]);
      const writer = new TelemetryWriter(db);
      const seqs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
      expect(
        await writeEach(
          writer,
          1,
          seqs.map((s) => batch(s)),
        ),
      ).toEqual([true, true, false, false, true, true, false, true, false, true]);
    } finally {
      await db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

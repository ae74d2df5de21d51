import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { LOCAL_POSTGRES, openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import type { CloudDatabase } from "../../src/storage/cloud-database.js";
import { TelemetryReader } from "../../src/telemetry/telemetry-reader.js";
import { partitionName, TelemetryRetention, weekStart } from "../../src/telemetry/telemetry-retention.js";
import { TelemetryWriter } from "../../src/telemetry/telemetry-writer.js";
import { addDevices, fixtureUuid } from "./fixture-devices.js";

const DAY = 86_400_000;
const WEEK = 7 * DAY;
/** Wednesday 2026-03-04 12:00 UTC. */
const NOW = Date.parse("2026-03-04T12:00:00Z");
const STREAM = "0123456789abcdef0123456789abcdef";

let test: TestDatabase | undefined;
afterEach(async () => {
  await test?.dispose();
  test = undefined;
});

async function setup(server: string | null) {
  test = await openTestDatabase(server);
  const database = test.database;
  await addDevices(database, [1]);
  const writer = new TelemetryWriter(database);
  let seq = 0;
  const write = (ts: number) =>
    writer.write(1, { v: 1, stream: STREAM, seq: ++seq, readings: [{ name: "t", ts, value: seq }] });
  const reader = new TelemetryReader(database);
  const stored = async () =>
    (await reader.telemetry({ id: 1, uuid: fixtureUuid(1), telemetry_count: 0 }, {})).items
      .map((r) => Date.parse(r.ts))
      .sort((a, b) => a - b);
  return { database, write, stored };
}

async function partitionOf(database: CloudDatabase, ts: number): Promise<string | undefined> {
  const { rows } = await sql<{
    part: string;
  }>`SELECT tableoid::regclass::text AS part FROM telemetry WHERE ts = ${ts}`.execute(database.kysely);
  return rows[0]?.part;
}

describe("weeks", () => {
  it("start on Monday 00:00 UTC and name their partition by it", () => {
    expect(new Date(weekStart(NOW)).toISOString()).toBe("2026-03-02T00:00:00.000Z");
    expect(weekStart(Date.parse("2026-03-02T00:00:00Z"))).toBe(Date.parse("2026-03-02T00:00:00Z"));
    expect(weekStart(Date.parse("2026-03-01T23:59:59.999Z"))).toBe(Date.parse("2026-02-23T00:00:00Z"));
    expect(partitionName(weekStart(NOW))).toBe("telemetry_20260302");
  });
});

describe("telemetry retention on PostgreSQL: weekly partitions", () => {
  it("creates partitions two weeks ahead, moving in readings the default partition held", async () => {
    const { database, write } = await setup(LOCAL_POSTGRES);
    // Before any partition exists, a reading lands in the default one.
    await write(NOW);
    expect(await partitionOf(database, NOW)).toBe("telemetry_outside");
    const clock = { now: NOW };
    const retention = new TelemetryRetention(database, { clock: () => clock.now });
    expect((await retention.run()).created).toEqual(["telemetry_20260302", "telemetry_20260309", "telemetry_20260316"]);
    expect(await partitionOf(database, NOW)).toBe("telemetry_20260302");
    // Created once: a second run (or a second cloud) finds them.
    expect((await retention.run()).created).toEqual([]);
    await write(NOW + 13 * DAY);
    expect(await partitionOf(database, NOW + 13 * DAY)).toBe("telemetry_20260316");
  });

  it("drops whole partitions past the retention and keeps readings outside every partition", async () => {
    const { database, write, stored } = await setup(LOCAL_POSTGRES);
    const clock = { now: NOW };
    const retention = new TelemetryRetention(database, { retentionMs: 2 * WEEK, clock: () => clock.now });
    await retention.run();
    const farPast = NOW - 52 * WEEK;
    await write(farPast);
    await write(NOW);
    await write(NOW + WEEK);
    clock.now = NOW + 3 * WEEK;
    const upkeep = await retention.run();
    expect(upkeep.dropped).toEqual(["telemetry_20260302"]);
    expect(upkeep.created).toEqual(["telemetry_20260323", "telemetry_20260330", "telemetry_20260406"]);
    expect(await stored()).toEqual([farPast, NOW + WEEK]);
    expect(await partitionOf(database, farPast)).toBe("telemetry_outside");
    const { rows } = await sql<{
      n: number;
    }>`SELECT count(*) AS n FROM pg_class WHERE relname = 'telemetry_20260302'`.execute(database.kysely);
    expect(Number(rows[0]?.n)).toBe(0);
  });
});

describe("telemetry retention on SQLite", () => {
  it("deletes readings older than the retention, and nothing without one", async () => {
    const { database, write, stored } = await setup(null);
    await write(NOW - 10 * DAY);
    await write(NOW - 2 * DAY);
    await write(NOW);
    expect(await new TelemetryRetention(database, { clock: () => NOW }).run()).toEqual({
      created: [],
      dropped: [],
      deleted: 0,
    });
    expect((await stored()).length).toBe(3);
    const upkeep = await new TelemetryRetention(database, { retentionMs: 7 * DAY, clock: () => NOW }).run();
    expect(upkeep.deleted).toBe(1);
    expect(await stored()).toEqual([NOW - 2 * DAY, NOW]);
  });
});

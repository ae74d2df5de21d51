import { SchemaValidator } from "@fieldgate/shared";
import { sql } from "kysely";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { DeviceEventLog } from "../../src/events/device-events.js";
import { DeviceIngest } from "../../src/ingest/device-ingest.js";
import { DeviceLogs } from "../../src/logs/device-logs.js";
import { LogRetention } from "../../src/logs/log-retention.js";
import { TelemetryWriter } from "../../src/telemetry/telemetry-writer.js";
import { addDevices, memoryRowCopies, rowsOf } from "../telemetry/fixture-devices.js";

const UUID = "00000000-0000-4000-8000-000000000001";
const TOPIC = `fieldgate/v1/${UUID}/logs`;
const STREAM = "0123456789abcdef0123456789abcdef";

describe("log batches with an identity", () => {
  let test: TestDatabase | undefined;
  afterEach(async () => {
    await test?.dispose();
    test = undefined;
  });
  const setup = async (now: { value: number }) => {
    test = await openTestDatabase();
    const db = test.database;
    await addDevices(db, [1]);
    const clock = () => now.value;
    const ingest = new DeviceIngest(
      db,
      memoryRowCopies(),
      new SchemaValidator(),
      new TelemetryWriter(db, clock),
      new DeviceEventLog(db, clock),
      new DeviceLogs(db),
      pino({ level: "silent" }),
      clock,
    );
    const send = (body: unknown) =>
      ingest.handle({ deviceId: 1, uuid: UUID }, TOPIC, Buffer.from(JSON.stringify(body)));
    const stored = async () =>
      (
        await sql<{ msg: string }>`SELECT msg FROM device_logs WHERE device_id = 1 ORDER BY id`.execute(db.kysely)
      ).rows.map((r) => r.msg);
    return { db, send, stored };
  };
  const entry = (msg: string) => ({ ts: 1_700_000_000_000, level: "info", msg });

  it("stores a resent (stream, seq) once, and batches without an identity as they come", async () => {
    const { db, send, stored } = await setup({ value: 1_700_000_000_000 });
    await send({ v: 1, stream: STREAM, seq: 1, entries: [entry("a"), entry("b")] });
    await send({ v: 1, stream: STREAM, seq: 1, entries: [entry("a"), entry("b")] });
    await send({ v: 1, stream: STREAM, seq: 2, entries: [entry("c")] });
    await send({ v: 1, stream: "fedcba9876543210fedcba9876543210", seq: 1, entries: [entry("other stream")] });
    await send({ v: 1, entries: [entry("old agent")] });
    await send({ v: 1, entries: [entry("old agent")] });
    expect(await stored()).toEqual(["a", "b", "c", "other stream", "old agent", "old agent"]);
    expect(await rowsOf(db, "rejected_messages", 1)).toBe(0);
  });

  it("forgets batch keys older than the retention", async () => {
    const now = { value: 1_700_000_000_000 };
    const { db, send } = await setup(now);
    await send({ v: 1, stream: STREAM, seq: 1, entries: [entry("a")] });
    now.value += 2 * 86_400_000;
    await send({ v: 1, stream: STREAM, seq: 2, entries: [entry("b")] });
    await new LogRetention(db, { retentionMs: 86_400_000, clock: () => now.value }).purge();
    const keys = await sql<{ seq: number }>`SELECT seq FROM log_batches ORDER BY seq`.execute(db.kysely);
    expect(keys.rows.map((k) => k.seq)).toEqual([2]);
  });
});

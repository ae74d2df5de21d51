import { SchemaValidator } from "@fieldgate/shared";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { DeviceEventLog } from "../../src/events/device-events.js";
import { EmbeddedGroupLookup } from "../../src/groups/embedded-group-lookup.js";
import { DeviceIngest } from "../../src/ingest/device-ingest.js";
import { TelemetryWriter } from "../../src/ingest/telemetry-writer.js";
import { LogRetention } from "../../src/logs/log-retention.js";
import { DeviceRegistry } from "../../src/registry/device-registry.js";
import { openDatabase } from "../../src/storage/database.js";

const UUID = "00000000-0000-4000-8000-000000000001";
const TOPIC = `fieldgate/v1/${UUID}/logs`;
const STREAM = "0123456789abcdef0123456789abcdef";

describe("log batches with an identity", () => {
  const setup = (now: { value: number }) => {
    const db = openDatabase(":memory:");
    db.prepare("INSERT INTO organizations (id, name, created_at) VALUES (1, 'o', 0)").run();
    db.prepare("INSERT INTO devices (id, uuid, org_id, created_at) VALUES (1, ?, 1, 0)").run(UUID);
    const clock = () => now.value;
    const ingest = new DeviceIngest(
      db,
      new DeviceRegistry(db, new EmbeddedGroupLookup(db), 0),
      new SchemaValidator(),
      new TelemetryWriter(db, clock),
      new DeviceEventLog(db, clock),
      pino({ level: "silent" }),
      clock,
    );
    const send = (body: unknown) =>
      ingest.handle({ deviceId: 1, uuid: UUID }, TOPIC, Buffer.from(JSON.stringify(body)));
    const stored = () =>
      (db.prepare("SELECT msg FROM device_logs WHERE device_id = 1 ORDER BY id").all() as { msg: string }[]).map(
        (r) => r.msg,
      );
    return { db, send, stored };
  };
  const entry = (msg: string) => ({ ts: 1_700_000_000_000, level: "info", msg });

  it("stores a resent (stream, seq) once, and batches without an identity as they come", async () => {
    const { db, send, stored } = setup({ value: 1_700_000_000_000 });
    await send({ v: 1, stream: STREAM, seq: 1, entries: [entry("a"), entry("b")] });
    await send({ v: 1, stream: STREAM, seq: 1, entries: [entry("a"), entry("b")] });
    await send({ v: 1, stream: STREAM, seq: 2, entries: [entry("c")] });
    await send({ v: 1, stream: "fedcba9876543210fedcba9876543210", seq: 1, entries: [entry("other stream")] });
    await send({ v: 1, entries: [entry("old agent")] });
    await send({ v: 1, entries: [entry("old agent")] });
    expect(stored()).toEqual(["a", "b", "c", "other stream", "old agent", "old agent"]);
    const rejected = db.prepare("SELECT count(*) AS n FROM rejected_messages").get() as { n: number };
    expect(rejected.n).toBe(0);
    db.close();
  });

  it("forgets batch keys older than the retention", async () => {
    const now = { value: 1_700_000_000_000 };
    const { db, send } = setup(now);
    await send({ v: 1, stream: STREAM, seq: 1, entries: [entry("a")] });
    now.value += 2 * 86_400_000;
    await send({ v: 1, stream: STREAM, seq: 2, entries: [entry("b")] });
    new LogRetention(db, { retentionMs: 86_400_000, clock: () => now.value }).purge();
    const keys = db.prepare("SELECT seq FROM log_batches ORDER BY seq").all() as { seq: number }[];
    expect(keys.map((k) => k.seq)).toEqual([2]);
    db.close();
  });
});

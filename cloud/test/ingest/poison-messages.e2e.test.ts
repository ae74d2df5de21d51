import path from "node:path";
import Database from "better-sqlite3";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../../test/support/cloud-process.js";
import { connectDevice, type EnrolledDevice, registerAndEnroll } from "../../../test/support/device-identity.js";

type Events = { items: { code: string; field: string | null; topic: string | null; message: string }[] };
type Page = { count: number; items: { name: string; value: unknown; seq: number }[]; skipped?: number };

function publish(client: MqttClient, topic: string, payload: string): Promise<void> {
  return new Promise((resolve, reject) =>
    client.publish(topic, payload, { qos: 1 }, (err) => (err ? reject(err) : resolve())),
  );
}

/**
 * Issue #12 items 1, 2 and 10: what a device sends that no store or reader can hold is refused
 * with an event naming the field and acknowledged (never redelivered), and the next message flows.
 */
describe("ingest: poison messages end deterministically", () => {
  let cloud: CloudProcess;
  let device: EnrolledDevice;
  let client: MqttClient;
  let closes = 0;
  const notices: { stream: string; seq: number; code: string; field?: string }[] = [];
  const stream = "b1b2c3d4e5f60718293a4b5c6d7e8f90";
  let nextSeq = 1;
  const topic = (t: string) => `fieldgate/v1/${device.uuid}/${t}`;

  beforeAll(async () => {
    cloud = await startCloud();
    device = await registerAndEnroll(cloud);
    client = await connectDevice(cloud, device, device.uuid);
    client.on("close", () => {
      closes += 1;
    });
    client.on("message", (_t, payload) => notices.push(JSON.parse(payload.toString())));
    await new Promise<void>((resolve, reject) =>
      client.subscribe(topic("telemetry/refused"), { qos: 1 }, (err, granted) =>
        err || granted?.[0]?.qos !== 1 ? reject(err ?? new Error("refused")) : resolve(),
      ),
    );
  });
  afterAll(async () => {
    client?.end(true);
    await cloud.stop();
  });

  const good = (seq: number) =>
    JSON.stringify({ v: 1, stream, seq, readings: [{ name: "ok", ts: 1_700_000_000_000 + seq, value: seq }] });
  const lastEvent = async () =>
    (await cloud.api<Events>("GET", `/api/v1/devices/${device.uuid}/events?limit=1`)).body.items[0];

  /** Publishes `bad`, then asserts the PUBACK came, the event, that the next batch is stored and the API answers. */
  async function refusedThenFlows(
    bad: string,
    expected: { code: string; field?: string },
    storedOfBad = 0,
  ): Promise<void> {
    const before = (await cloud.api<Page>("GET", `/api/v1/devices/${device.uuid}/telemetry?limit=1`)).body.count;
    await publish(client, topic("telemetry"), bad); // resolves on the PUBACK
    expect(await lastEvent()).toMatchObject({ code: expected.code, topic: topic("telemetry") });
    if (expected.field) expect((await lastEvent())?.field).toBe(expected.field);
    const seq = nextSeq++;
    await publish(client, topic("telemetry"), good(seq));
    const page = await cloud.api<Page>("GET", `/api/v1/devices/${device.uuid}/telemetry?limit=1`);
    expect(page.status).toBe(200);
    expect(page.body.count).toBe(before + storedOfBad + 1);
    expect(page.body.items[0]).toMatchObject({ name: "ok", seq });
    expect(closes).toBe(0);
  }

  it("refuses a ts beyond Date's range, tells the device before the PUBACK, and keeps flowing", async () => {
    const seq = nextSeq++;
    const bad = JSON.stringify({ v: 1, stream, seq, readings: [{ name: "t", ts: 1e300, value: 1 }] });
    await refusedThenFlows(bad, { code: "VALIDATION_FAILED", field: "readings[0].ts" });
    // The notice was published before the PUBACK, so it is here by the time the publish resolved.
    expect(notices).toContainEqual(expect.objectContaining({ stream, seq, code: "VALIDATION_FAILED" }));
  });

  it("refuses seq 2^64 and 2^53 + 1 (never stored rounded) and acknowledges both", async () => {
    const batch = (seqText: string) =>
      `{"v":1,"stream":"${stream}","seq":${seqText},"readings":[{"name":"s","ts":1700000000000,"value":1}]}`;
    await refusedThenFlows(batch("18446744073709551616"), { code: "VALIDATION_FAILED", field: "seq" });
    await refusedThenFlows(batch("9007199254740993"), { code: "VALIDATION_FAILED", field: "seq" });
    const rounded = await cloud.api<Page>("GET", `/api/v1/devices/${device.uuid}/telemetry?name=s`);
    expect(rounded.body.items).toEqual([]);
  });

  it("refuses -Infinity and NaN encodings of a value", async () => {
    const batch = (valueText: string) =>
      `{"v":1,"stream":"${stream}","seq":${nextSeq++},"readings":[{"name":"n","ts":1700000000000,"value":${valueText}}]}`;
    await refusedThenFlows(batch("-1e999"), { code: "VALIDATION_FAILED", field: "readings[0].value" });
    await refusedThenFlows(batch("1e400"), { code: "VALIDATION_FAILED", field: "readings[0].value" });
    await refusedThenFlows(batch("NaN"), { code: "PAYLOAD_MALFORMED" });
  });

  it("stores the good readings of a batch with one bad reading, and names the bad one's index and field", async () => {
    const seq = nextSeq++;
    const readings = [
      { name: "mix", ts: 1_700_000_000_000, value: 1 },
      { name: "mix", ts: 1e300, value: 2 },
      { name: "mix", ts: 1_700_000_000_002, value: 3 },
    ];
    await refusedThenFlows(
      JSON.stringify({ v: 1, stream, seq, readings }),
      { code: "VALIDATION_FAILED", field: "readings[1].ts" },
      2,
    );
    const mixed = await cloud.api<Page>("GET", `/api/v1/devices/${device.uuid}/telemetry?name=mix`);
    expect(mixed.body.items.map((r) => r.value).sort()).toEqual([1, 3]);
    // Stored, so no refusal notice for it.
    expect(notices.find((n) => n.seq === seq)).toBeUndefined();
  });

  it("refuses unbounded numbers on the other device topics too", async () => {
    await publish(client, topic("logs"), JSON.stringify({ v: 1, entries: [{ ts: 1e300, level: "info", msg: "x" }] }));
    expect(await lastEvent()).toMatchObject({ code: "VALIDATION_FAILED", field: "entries[0].ts" });
    await publish(client, topic("state"), JSON.stringify({ v: 1, ts: 1, agentVersion: "1", uptimeS: 1e300 }));
    expect(await lastEvent()).toMatchObject({ code: "VALIDATION_FAILED", field: "uptimeS" });
    expect(closes).toBe(0);
  });

  it("answers 200 over rows no reader can show, leaving them out and counting them", async () => {
    // As an older cloud (before these bounds) or a hand edit may have left them.
    const db = new Database(path.join(cloud.dataDir, "fieldgate.db"));
    const id = (db.prepare("SELECT id FROM devices WHERE uuid = ?").get(device.uuid) as { id: number }).id;
    db.prepare(
      "INSERT INTO telemetry (device_id, ts, name, value, kind, unit, stream, seq, source) VALUES (?, ?, 'bad', 1, 0, NULL, ?, 1, NULL)",
    ).run(id, 1e16, stream); // a time beyond Date's range (±8.64e15 ms)
    db.prepare(
      "INSERT INTO telemetry (device_id, ts, name, value, kind, unit, stream, seq, source) VALUES (?, 1, 'bad', ?, 0, NULL, ?, 1, NULL)",
    ).run(id, Number.POSITIVE_INFINITY, stream);
    db.prepare(
      "INSERT INTO device_events (device_id, ts, code, severity, message, field, topic) VALUES (?, ?, 'X', 'info', 'm', NULL, NULL)",
    ).run(id, -1e16);
    db.prepare("INSERT INTO device_logs (device_id, ts, level, msg) VALUES (?, ?, 'info', 'bad')").run(id, 1e16);
    db.prepare(
      `INSERT INTO device_state (device_id, config_reported_json, updated_at) VALUES (?, ?, 0)
       ON CONFLICT(device_id) DO UPDATE SET config_reported_json = excluded.config_reported_json`,
    ).run(id, JSON.stringify({ v: 1, ts: 1e16, version: 0 }));
    db.close();
    const telemetry = await cloud.api<Page>("GET", `/api/v1/devices/${device.uuid}/telemetry?limit=1000`);
    expect(telemetry.status).toBe(200);
    expect(telemetry.body.skipped).toBe(2);
    expect(telemetry.body.items.some((r) => r.name === "bad")).toBe(false);
    const events = await cloud.api<Events & { skipped?: number }>("GET", `/api/v1/devices/${device.uuid}/events`);
    expect(events.status).toBe(200);
    expect(events.body.skipped).toBe(1);
    const logs = await cloud.api<{ items: unknown[]; skipped?: number }>("GET", `/api/v1/devices/${device.uuid}/logs`);
    expect(logs.status).toBe(200);
    expect(logs.body.skipped).toBe(1);
    const config = await cloud.api<{ reported: unknown }>("GET", `/api/v1/devices/${device.uuid}/config`);
    expect(config).toMatchObject({ status: 200, body: { reported: null } });
  });
});

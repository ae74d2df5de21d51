import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../../test/support/cloud-process.js";
import { connectDevice, type EnrolledDevice, registerAndEnroll } from "../../../test/support/device-identity.js";

type Events = { items: { code: string; field: string | null; topic: string | null }[] };

function publish(client: MqttClient, topic: string, payload: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) =>
    client.publish(topic, payload, { qos: 1 }, (err) => (err ? reject(err) : resolve())),
  );
}

describe("ingest: validation and idempotent storage", () => {
  let cloud: CloudProcess;
  let device: EnrolledDevice;
  let client: MqttClient;
  const topic = (t: string) => `fieldgate/v1/${device.uuid}/${t}`;
  const stream = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

  beforeAll(async () => {
    cloud = await startCloud();
    device = await registerAndEnroll(cloud);
    client = await connectDevice(cloud, device, device.uuid);
  });
  afterAll(async () => {
    client?.end(true);
    await cloud.stop();
  });

  it("stores a redelivered batch once: the stored result counts each (stream, seq) once", async () => {
    const batch = {
      v: 1,
      stream,
      seq: 1,
      readings: [
        { name: "temp", ts: 1_700_000_000_000, value: 21.5, unit: "C" },
        { name: "door", ts: 1_700_000_000_001, value: true },
        { name: "mode", ts: 1_700_000_000_002, value: "auto" },
      ],
    };
    await publish(client, topic("telemetry"), JSON.stringify(batch));
    await publish(client, topic("telemetry"), JSON.stringify(batch));
    const page = await cloud.api<{ count: number; items: { name: string; value: unknown; unit: string | null }[] }>(
      "GET",
      `/api/v1/devices/${device.uuid}/telemetry?limit=10`,
    );
    expect(page.body.count).toBe(3);
    expect(page.body.items).toHaveLength(3);
    expect(page.body.items.map((r) => [r.name, r.value])).toEqual(
      expect.arrayContaining([
        ["temp", 21.5],
        ["door", true],
        ["mode", "auto"],
      ]),
    );
  });

  it("records bad JSON and schema failures on every device topic as events, and stays up", async () => {
    const kinds = [
      "telemetry",
      "health",
      "logs",
      "state",
      "events",
      "config/reported",
      "presence",
      "jobs/job-1/status",
    ];
    for (const kind of kinds) {
      await publish(client, topic(kind), "{not json");
      await publish(client, topic(kind), JSON.stringify({ v: 2 }));
    }
    const events = await cloud.api<Events>("GET", `/api/v1/devices/${device.uuid}/events?limit=100`);
    for (const kind of kinds) {
      const mine = events.body.items.filter((e) => e.topic === topic(kind));
      expect(mine.map((e) => e.code).sort(), kind).toEqual(["PAYLOAD_MALFORMED", "VALIDATION_FAILED"]);
      expect(mine.find((e) => e.code === "VALIDATION_FAILED")?.field, kind).toBeTruthy();
    }
    // The same session keeps working, and data stored earlier is intact.
    await publish(
      client,
      topic("telemetry"),
      JSON.stringify({ v: 1, stream, seq: 2, readings: [{ name: "temp", ts: 1, value: 1 }] }),
    );
    const after = await cloud.api<{ telemetryCount: number }>("GET", `/api/v1/devices/${device.uuid}`);
    expect(after.body.telemetryCount).toBe(4);
    expect((await cloud.api("GET", "/api/v1/health", undefined, false)).status).toBe(200);
  });

  it("refuses a message of another schema version, naming v", async () => {
    await publish(
      client,
      topic("telemetry"),
      JSON.stringify({ v: 2, stream, seq: 9, readings: [{ name: "x", ts: 1, value: 1 }] }),
    );
    const events = await cloud.api<Events>("GET", `/api/v1/devices/${device.uuid}/events?limit=1`);
    expect(events.body.items[0]).toMatchObject({ code: "VALIDATION_FAILED", field: "v" });
  });

  it("names the failing field of a reading", async () => {
    await publish(
      client,
      topic("telemetry"),
      JSON.stringify({ v: 1, stream, seq: 3, readings: [{ name: "x", ts: 1, value: { nested: 1 } }] }),
    );
    const events = await cloud.api<Events>("GET", `/api/v1/devices/${device.uuid}/events?limit=1`);
    expect(events.body.items[0]).toMatchObject({ code: "VALIDATION_FAILED", field: "readings[0].value" });
  });
});

import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, eventually, startCloud } from "../../../test/support/cloud-process.js";
import { connectDevice, enrollWithToken, newUuid } from "../../../test/support/device-identity.js";

type EventPage = { items: { code: string; severity: string; message: string }[] };

describe("keep-alive (short configured unit)", () => {
  let cloud: CloudProcess;
  let client: MqttClient | undefined;
  beforeAll(async () => {
    // One keep-alive "minute" lasts 200ms here, checked every 100ms.
    cloud = await startCloud({ args: ["--keepalive-unit", "200ms", "--keepalive-check", "100ms"] });
  });
  afterAll(async () => {
    client?.end(true);
    await cloud.stop();
  });

  it("raises one KEEPALIVE_MISSED per silence, and another after the device speaks and falls silent again", async () => {
    const type = await cloud.api("POST", "/api/v1/device-types", { name: "meter", keepaliveMinutes: 1 });
    expect(type.status, type.text).toBe(201);
    const uuid = newUuid();
    const created = await cloud.api<{ enrollmentToken: string }>("POST", "/api/v1/devices", { uuid, type: "meter" });
    expect(created.status, created.text).toBe(201);
    // A device of a type without keep-alive, as a control: it must never alarm.
    const quiet = newUuid();
    const quietCreated = await cloud.api<{ enrollmentToken: string }>("POST", "/api/v1/devices", { uuid: quiet });
    const quietClient = await connectDevice(
      cloud,
      await enrollWithToken(cloud, quiet, quietCreated.body.enrollmentToken),
      quiet,
    );

    const identity = await enrollWithToken(cloud, uuid, created.body.enrollmentToken);
    client = await connectDevice(cloud, identity, uuid);
    const telemetry = (seq: number) =>
      JSON.stringify({ v: 1, stream: "0123456789abcdef", seq, readings: [{ name: "t", ts: Date.now(), value: seq }] });
    await client.publishAsync(`fieldgate/v1/${uuid}/telemetry`, telemetry(1), { qos: 1 });

    const missed = async () =>
      (await cloud.api<EventPage>("GET", `/api/v1/devices/${uuid}/events`)).body.items.filter(
        (e) => e.code === "KEEPALIVE_MISSED",
      );
    const first = await eventually(async () => ((await missed()).length > 0 ? missed() : undefined), 10_000, "first");
    expect(first).toEqual([
      expect.objectContaining({
        severity: "error",
        message: expect.stringMatching(/^no message for \d+ minutes \(keep-alive 1 min\)$/),
      }),
    ]);
    // Still silent, many keep-alive periods and checks later: still one event for this silence.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await missed()).toHaveLength(1);

    await client.publishAsync(`fieldgate/v1/${uuid}/telemetry`, telemetry(2), { qos: 1 });
    await eventually(async () => ((await missed()).length === 2 ? true : undefined), 10_000, "second");
    await new Promise((r) => setTimeout(r, 1500));
    expect(await missed()).toHaveLength(2);

    const control = await cloud.api<EventPage>("GET", `/api/v1/devices/${quiet}/events`);
    expect(control.body.items.filter((e) => e.code === "KEEPALIVE_MISSED")).toEqual([]);
    quietClient.end(true);
  });
});

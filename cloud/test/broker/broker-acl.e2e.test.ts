import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, eventually, startCloud } from "../../../test/support/cloud-process.js";
import {
  connectDevice,
  type EnrolledDevice,
  enrollWithToken,
  registerAndEnroll,
} from "../../../test/support/device-identity.js";

const root = (uuid: string) => `fieldgate/v1/${uuid}`;
const batch = (seq: number) =>
  JSON.stringify({
    v: 1,
    stream: "00112233445566778899aabbccddeeff",
    seq,
    readings: [{ name: "t", ts: Date.now(), value: seq }],
  });

function subscribeGranted(client: MqttClient, filter: string): Promise<number> {
  return new Promise((resolve, reject) => {
    client.subscribe(filter, { qos: 1 }, (err, granted) => {
      // mqtt.js reports a SUBACK failure (0x80) as an error that carries the packet.
      const suback = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted?.[0];
      if (suback !== undefined) return resolve(suback);
      return err ? reject(err) : resolve(granted?.[0]?.qos ?? -1);
    });
  });
}

/** Publishes at QoS 1; resolves "acked" on PUBACK or "closed" when the broker drops the connection. */
function publishOutcome(client: MqttClient, topic: string, payload: string): Promise<"acked" | "closed"> {
  return new Promise((resolve) => {
    client.once("close", () => resolve("closed"));
    client.publish(topic, payload, { qos: 1 }, (err) => {
      if (!err) resolve("acked");
    });
  });
}

describe("broker: each device stays inside its own topic root", () => {
  let cloud: CloudProcess;
  let a: EnrolledDevice;
  let b: EnrolledDevice;
  const clients: MqttClient[] = [];
  const connect = async (device: EnrolledDevice, clientId = device.uuid) => {
    const client = await connectDevice(cloud, device, clientId);
    clients.push(client);
    return client;
  };
  const readings = async (uuid: string) =>
    (await cloud.api<{ telemetryCount: number }>("GET", `/api/v1/devices/${uuid}`)).body.telemetryCount;

  beforeAll(async () => {
    cloud = await startCloud();
    a = await registerAndEnroll(cloud);
    b = await registerAndEnroll(cloud);
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await cloud.stop();
  });

  it("lets a device publish telemetry to its own root and stores it", async () => {
    const client = await connect(a);
    expect(await publishOutcome(client, `${root(a.uuid)}/telemetry`, batch(1))).toBe("acked");
    expect(await readings(a.uuid)).toBe(1);
    const online = await cloud.api<{ online: boolean; lastSeen: string | null }>("GET", `/api/v1/devices/${a.uuid}`);
    expect(online.body.online).toBe(true);
    client.end(true);
    await eventually(
      async () =>
        (await cloud.api<{ online: boolean }>("GET", `/api/v1/devices/${a.uuid}`)).body.online ? undefined : true,
      5000,
      "offline",
    );
  });

  it("answers a clock-sync request on the device's own commands/time", async () => {
    const client = await connect(a);
    expect(await subscribeGranted(client, `${root(a.uuid)}/commands/+`)).toBe(1);
    const answer = new Promise<{ t0: number; serverTs: number }>((resolve) =>
      client.on("message", (topic, payload) => {
        if (topic === `${root(a.uuid)}/commands/time`)
          resolve(JSON.parse(payload.toString()) as { t0: number; serverTs: number });
      }),
    );
    const t0 = Date.now();
    expect(await publishOutcome(client, `${root(a.uuid)}/time`, JSON.stringify({ v: 1, t0 }))).toBe("acked");
    const got = await answer;
    expect(got.t0).toBe(t0);
    expect(Math.abs(got.serverTs - Date.now())).toBeLessThan(5000);
    client.end(true);
  });

  it("refuses A's publish to B's topics, drops the connection, and stores nothing for B", async () => {
    const client = await connect(a);
    expect(await publishOutcome(client, `${root(b.uuid)}/telemetry`, batch(1))).toBe("closed");
    expect(await readings(b.uuid)).toBe(0);
  });

  it("refuses publishing to a cloud-to-device topic of its own root", async () => {
    const client = await connect(a);
    expect(await publishOutcome(client, `${root(a.uuid)}/config/desired`, "{}")).toBe("closed");
  });

  it("grants its own subscriptions and refuses B's topics, #, $SYS/# and wildcards reaching outside", async () => {
    const client = await connect(a);
    expect(await subscribeGranted(client, `${root(a.uuid)}/config/desired`)).toBe(1);
    expect(await subscribeGranted(client, `${root(a.uuid)}/commands/+`)).toBe(1);
    for (const filter of [
      `${root(b.uuid)}/config/desired`,
      `${root(b.uuid)}/telemetry`,
      "#",
      "$SYS/#",
      "fieldgate/v1/+/config/desired",
      `${root(a.uuid)}/#`,
      `${root(a.uuid)}/telemetry`,
    ]) {
      expect(await subscribeGranted(client, filter), filter).toBe(128);
    }
  });

  it("refuses a connection that uses B's client id with A's certificate", async () => {
    await expect(connectDevice(cloud, a, b.uuid)).rejects.toThrow(/Not authorized|closed/i);
  });

  it("after a reset-token, drops the live session and refuses the old certificate", async () => {
    const device = await registerAndEnroll(cloud);
    const client = await connect(device);
    const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
    const reset = await cloud.api<{ enrollmentToken: string }>("POST", `/api/v1/devices/${device.uuid}/reset-token`);
    expect(reset.status).toBe(200);
    await closed;
    await expect(connectDevice(cloud, device, device.uuid)).rejects.toThrow(/Not authorized|closed/i);
    // Re-enrolling in the new window gives a certificate that connects.
    const renewed = await enrollWithToken(cloud, device.uuid, reset.body.enrollmentToken);
    const again = await connect(renewed);
    expect(again.connected).toBe(true);
  });

  it("drops the live session of a deleted device and refuses its certificate", async () => {
    const device = await registerAndEnroll(cloud);
    const client = await connect(device);
    const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
    expect((await cloud.api("DELETE", `/api/v1/devices/${device.uuid}`)).status).toBe(204);
    await closed;
    await expect(connectDevice(cloud, device, device.uuid)).rejects.toThrow(/Not authorized|closed/i);
  });

  it("refuses a certificate not signed by the CA at the TLS handshake", async () => {
    const other = await startCloud();
    try {
      const foreign = await registerAndEnroll(other);
      await expect(connectDevice(cloud, foreign, foreign.uuid)).rejects.toThrow();
    } finally {
      await other.stop();
    }
  });
});

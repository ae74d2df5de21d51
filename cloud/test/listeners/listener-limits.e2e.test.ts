import net from "node:net";
import tls from "node:tls";
import mqttPacket from "mqtt-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, eventually, startCloud } from "../../../test/support/cloud-process.js";
import { connectDevice, type EnrolledDevice, registerAndEnroll } from "../../../test/support/device-identity.js";
import { MAX_SUBSCRIPTIONS_PER_CLIENT } from "../../src/broker/mqtt-broker.js";

type EventPage = { items: { code: string; severity: string; message: string }[] };

const MAX_PACKET = 64 * 1024;
/** What loopback socket buffers (both ends, plus TLS records) can absorb before the peer's close is seen. */
const BUFFER_SLACK = 16 * 1024 ** 2;
const ANNOUNCED = 64 * 1024 ** 2;

/** Waits for a socket to close; resolves with the ms it took from `since`. */
function closed(socket: net.Socket, since = Date.now()): Promise<number> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(Date.now() - since);
    socket.on("error", () => undefined);
    socket.once("close", () => resolve(Date.now() - since));
  });
}

function rawSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => resolve(socket));
    socket.once("error", reject);
  });
}

/** A TLS connection to the broker with the device's certificate, handshake done, nothing sent. */
function tlsToBroker(
  cloud: CloudProcess,
  device: EnrolledDevice,
  extra: tls.ConnectionOptions = {},
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      {
        host: "127.0.0.1",
        servername: "localhost",
        port: cloud.mqttPort,
        ca: cloud.caPem,
        key: device.keyPem,
        cert: device.certPem,
        ...extra,
      },
      () => resolve(socket),
    );
    socket.once("error", reject);
  });
}

/** The fixed header of a QoS 1 PUBLISH announcing `remaining` bytes, and the start of its body. */
function publishHeader(remaining: number, topic: string): Buffer {
  const length: number[] = [];
  let n = remaining;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    length.push(byte);
  } while (n > 0);
  const topicBytes = Buffer.from(topic);
  const topicLength = Buffer.alloc(2);
  topicLength.writeUInt16BE(topicBytes.length);
  return Buffer.concat([Buffer.from([0x32, ...length]), topicLength, topicBytes, Buffer.from([0x00, 0x01])]);
}

/** Streams zeros with backpressure until the socket closes or `limit` bytes are written; returns what was accepted. */
async function streamUntilClosed(socket: net.Socket, limit: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  let open = true;
  socket.on("error", () => undefined);
  socket.once("close", () => {
    open = false;
  });
  while (open && written < limit) {
    const more = socket.write(chunk);
    written += chunk.length;
    if (!more) {
      await new Promise<void>((resolve) => {
        const done = () => {
          socket.off("drain", done);
          socket.off("close", done);
          resolve();
        };
        socket.once("drain", done);
        socket.once("close", done);
      });
    }
  }
  await closed(socket);
  return written;
}

function connectPacket(clientId: string): Buffer {
  return mqttPacket.generate({
    cmd: "connect",
    protocolId: "MQTT",
    protocolVersion: 4,
    clean: true,
    clientId,
    keepalive: 30,
  });
}

function connack(socket: tls.TLSSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("data", (data: Buffer) =>
      data[0] === 0x20 && data[3] === 0 ? resolve() : reject(new Error(`not a CONNACK: ${data.toString("hex")}`)),
    );
  });
}

describe("the MQTT listener bounds what a connection can make the cloud hold", () => {
  let cloud: CloudProcess;
  let device: EnrolledDevice;
  beforeAll(async () => {
    cloud = await startCloud({ args: ["--mqtt-max-packet-size", "64KiB"] });
    device = await registerAndEnroll(cloud);
  });
  afterAll(() => cloud.stop());

  const events = async (uuid: string) =>
    (await cloud.api<EventPage>("GET", `/api/v1/devices/${uuid}/events`)).body.items;

  it("closes an authenticated device that announces a 64 MiB PUBLISH as soon as the header arrives, with an event", async () => {
    const socket = await tlsToBroker(cloud, device);
    const acked = connack(socket);
    socket.write(connectPacket(device.uuid));
    await acked;
    socket.write(publishHeader(ANNOUNCED, `fieldgate/v1/${device.uuid}/telemetry`));
    const written = await streamUntilClosed(socket, ANNOUNCED);
    expect(written).toBeLessThan(MAX_PACKET + BUFFER_SLACK);

    const tooLarge = await eventually(
      async () => (await events(device.uuid)).find((e) => e.code === "MQTT_PACKET_TOO_LARGE"),
      10_000,
      "the MQTT_PACKET_TOO_LARGE event",
    );
    expect(tooLarge.severity).toBe("warning");
    expect(tooLarge.message).toContain(`limit is ${MAX_PACKET}`);
    const offline = await eventually(async () => {
      const d = (
        await cloud.api<{ online: boolean; offlineReason: string | null }>("GET", `/api/v1/devices/${device.uuid}`)
      ).body;
      return d.online ? undefined : d;
    });
    expect(offline.offlineReason).toBe("packet-too-large");
  });

  it("closes a connection whose very first packet (its CONNECT) is oversized, before authentication", async () => {
    const socket = await tlsToBroker(cloud, device);
    const before = (await events(device.uuid)).length;
    // A CONNECT header announcing 64 MiB: nothing is authenticated yet, so no device event.
    socket.write(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x20]));
    const written = await streamUntilClosed(socket, ANNOUNCED);
    expect(written).toBeLessThan(MAX_PACKET + BUFFER_SLACK);
    expect((await events(device.uuid)).filter((e) => e.code === "MQTT_PACKET_TOO_LARGE")).toHaveLength(1);
    expect((await events(device.uuid)).length).toBe(before);
  });

  it("still takes a publish just under the limit, and the device stays connected", async () => {
    const client = await connectDevice(cloud, device, device.uuid);
    const ts = Date.now();
    const readings = Array.from({ length: 1000 }, (_, i) => ({ name: "temperature", ts: ts + i, value: i }));
    const payload = JSON.stringify({ v: 1, stream: "00112233445566778899aabbccddeeff", seq: 1, readings });
    expect(payload.length).toBeGreaterThan(MAX_PACKET / 2);
    expect(payload.length).toBeLessThan(MAX_PACKET - 200);
    await client.publishAsync(`fieldgate/v1/${device.uuid}/telemetry`, payload, { qos: 1 });
    expect(client.connected).toBe(true);
    const stored = await cloud.api<{ telemetryCount: number }>("GET", `/api/v1/devices/${device.uuid}`);
    expect(stored.body.telemetryCount).toBe(1000);
    client.end(true);
  });

  it(`grants at most ${MAX_SUBSCRIPTIONS_PER_CLIENT} subscriptions per connection, refusing more with SUBACK 0x80`, async () => {
    const client = await connectDevice(cloud, device, device.uuid);
    const filters = Array.from(
      { length: MAX_SUBSCRIPTIONS_PER_CLIENT + 1 },
      (_, i) => `fieldgate/v1/${device.uuid}/commands/c${i}`,
    );
    const subscribe = (list: string[]) =>
      new Promise<number[]>((resolve) =>
        client.subscribe(list, { qos: 1 }, (err, granted) => {
          // mqtt.js reports any 0x80 in a SUBACK as an error that carries the packet.
          const suback = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted;
          resolve(suback ?? (granted ?? []).map((g) => g.qos));
        }),
      );
    const granted = await subscribe(filters);
    expect(granted).toEqual([...Array<number>(MAX_SUBSCRIPTIONS_PER_CLIENT).fill(1), 128]);
    // Re-subscribing to a held filter is no new subscription.
    expect(await subscribe([filters[0] as string])).toEqual([1]);
    expect(client.connected).toBe(true);
    client.end(true);
  });
});

describe("both listeners time out handshakes and idle unauthenticated connections", () => {
  let cloud: CloudProcess;
  let device: EnrolledDevice;
  const TIMEOUT = 1000;
  beforeAll(async () => {
    cloud = await startCloud({
      args: ["--tls-handshake-timeout", "1s", "--mqtt-connect-timeout", "1s", "--http-headers-timeout", "1s"],
    });
    device = await registerAndEnroll(cloud);
  });
  afterAll(() => cloud.stop());

  for (const listener of ["mqtt", "https"] as const) {
    const portOf = () => (listener === "mqtt" ? cloud.mqttPort : cloud.httpPort);

    it(`closes a TCP socket that never sends a ClientHello (${listener})`, async () => {
      const socket = await rawSocket(portOf());
      const took = await closed(socket);
      expect(took).toBeGreaterThanOrEqual(TIMEOUT - 200);
      expect(took).toBeLessThan(TIMEOUT + 3000);
    });

    it(`closes a socket that trickles its ClientHello a byte at a time, at the deadline (${listener})`, async () => {
      const socket = await rawSocket(portOf());
      const start = Date.now();
      // A TLS handshake record announcing 512 bytes, then a byte every 200 ms for 8 s: each byte
      // restarts Node's own handshake timer, so only a hard deadline closes it at 1 s.
      const hello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), Buffer.alloc(40)]);
      let i = 0;
      const trickle = setInterval(() => {
        if (!socket.destroyed && i < hello.length) socket.write(hello.subarray(i, ++i));
      }, 200);
      const took = await closed(socket, start);
      clearInterval(trickle);
      expect(took).toBeLessThan(TIMEOUT + 2000);
    });
  }

  it("closes a TLS-connected MQTT client that never sends CONNECT", async () => {
    const socket = await tlsToBroker(cloud, device);
    const took = await closed(socket);
    expect(took).toBeLessThan(TIMEOUT + 3000);
  });

  it("closes a TLS-connected HTTPS client that never sends a request", async () => {
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", servername: "localhost", port: cloud.httpPort, ca: cloud.caPem }, () =>
        resolve(s),
      );
      s.once("error", reject);
    });
    const took = await closed(socket);
    // Node checks header deadlines once a second.
    expect(took).toBeLessThan(TIMEOUT + 3000);
  });
});

describe("each listener caps its unauthenticated connections", () => {
  let cloud: CloudProcess;
  let a: EnrolledDevice;
  let b: EnrolledDevice;
  const sockets: net.Socket[] = [];
  beforeAll(async () => {
    cloud = await startCloud({ args: ["--max-pending-connections", "3", "--tls-handshake-timeout", "60s"] });
    a = await registerAndEnroll(cloud);
    b = await registerAndEnroll(cloud);
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await cloud.stop();
  });

  it("refuses sockets beyond the cap, while authenticated devices neither count nor lose their sessions", async () => {
    const client = await connectDevice(cloud, a, a.uuid);
    for (let i = 0; i < 3; i++) sockets.push(await rawSocket(cloud.mqttPort));
    const extra = await rawSocket(cloud.mqttPort);
    expect(await closed(extra)).toBeLessThan(5000);
    expect(sockets.every((s) => !s.destroyed)).toBe(true);

    // The device connected before the flood keeps publishing.
    const batch = JSON.stringify({
      v: 1,
      stream: "00112233445566778899aabbccddeeff",
      seq: 1,
      readings: [{ name: "t", ts: Date.now(), value: 1 }],
    });
    await client.publishAsync(`fieldgate/v1/${a.uuid}/telemetry`, batch, { qos: 1 });
    expect(client.connected).toBe(true);

    // A freed slot takes a device, which stops counting once its CONNECT is accepted...
    (sockets.shift() as net.Socket).destroy();
    const second = await eventually(() => connectDevice(cloud, b, b.uuid), 10_000, "device b connects");
    // ...so the slot is free again for the next stranger: its TLS handshake completes.
    const admitted = await tlsToBroker(cloud, a);
    expect(admitted.authorized).toBe(true);
    admitted.destroy();
    second.end(true);
    client.end(true);
  });

  it("caps the HTTPS listener the same way", async () => {
    const held: net.Socket[] = [];
    for (let i = 0; i < 3; i++) held.push(await rawSocket(cloud.httpPort));
    sockets.push(...held);
    const extra = await rawSocket(cloud.httpPort);
    expect(await closed(extra)).toBeLessThan(5000);
    for (const s of held) s.destroy();
    const health = await eventually(async () => {
      const res = await cloud.api("GET", "/api/v1/health", undefined, false).catch(() => undefined);
      return res?.status === 200 ? res : undefined;
    });
    expect(health.status).toBe(200);
  });
});

describe("both listeners offer only AEAD suites with forward secrecy, TLS 1.2 at least", () => {
  let cloud: CloudProcess;
  let device: EnrolledDevice;
  beforeAll(async () => {
    cloud = await startCloud();
    device = await registerAndEnroll(cloud);
  });
  afterAll(() => cloud.stop());

  const handshake = (port: number, options: tls.ConnectionOptions) =>
    new Promise<string>((resolve, reject) => {
      const socket = tls.connect(
        {
          host: "127.0.0.1",
          servername: "localhost",
          port,
          ca: cloud.caPem,
          key: device.keyPem,
          cert: device.certPem,
          ...options,
        },
        () => {
          resolve(socket.getCipher().name);
          socket.destroy();
        },
      );
      socket.once("error", reject);
    });

  for (const listener of ["mqtt", "https"] as const) {
    const portOf = () => (listener === "mqtt" ? cloud.mqttPort : cloud.httpPort);

    it(`refuses CBC and static-RSA suites over TLS 1.2 and accepts ECDHE with GCM or ChaCha20 (${listener})`, async () => {
      for (const cipher of ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256", "AES128-SHA"]) {
        await expect(handshake(portOf(), { maxVersion: "TLSv1.2", ciphers: cipher }), cipher).rejects.toThrow();
      }
      for (const cipher of [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
      ]) {
        expect(await handshake(portOf(), { maxVersion: "TLSv1.2", ciphers: cipher })).toBe(cipher);
      }
    });

    it(`refuses TLS 1.1 and negotiates an AEAD suite by default (${listener})`, async () => {
      await expect(
        handshake(portOf(), { minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT@SECLEVEL=0" }),
      ).rejects.toThrow();
      expect(await handshake(portOf(), {})).toMatch(/GCM|CHACHA20/);
    });
  }
});

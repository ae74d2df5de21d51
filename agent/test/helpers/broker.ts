import type { AddressInfo } from "node:net";
import { createServer, type TLSSocket } from "node:tls";
import { Aedes, type PublishPacket } from "aedes";
import type { TestPki } from "./pki.js";

/** How the test broker treats device publishes: accept, refuse (closes the connection), or hold the PUBACK. */
export type BrokerMode = "allow" | "deny" | "hold";

export interface TestBroker {
  url: string;
  /** Every publish the broker accepted, in order (topic, payload text, retain). */
  accepted: { topic: string; payload: string; retain: boolean; clientId: string | undefined }[];
  /** Client certificate CNs of connections, in order. */
  peers: string[];
  mode: BrokerMode;
  /** Releases every held publish (their PUBACKs go out). */
  release(): void;
  held(): number;
  /** Publishes from the broker's side (as the cloud does) at QoS 1. */
  publishToDevices(topic: string, payload: string): Promise<void>;
  close(): Promise<void>;
}

/** A real aedes broker on loopback TLS that requires a client certificate from the test CA. */
export async function startTestBroker(pki: TestPki): Promise<TestBroker> {
  const broker = await Aedes.createBroker();
  const heldCallbacks: (() => void)[] = [];
  const result: TestBroker = {
    url: "",
    accepted: [],
    peers: [],
    mode: "allow",
    release() {
      for (const cb of heldCallbacks.splice(0)) cb();
    },
    held: () => heldCallbacks.length,
    publishToDevices: (topic, payload) =>
      new Promise((resolve, reject) =>
        broker.publish(
          { cmd: "publish", topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false },
          (err) => (err ? reject(err) : resolve()),
        ),
      ),
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
  broker.authorizePublish = (client, packet: PublishPacket, callback) => {
    const device = client !== null && packet.topic.startsWith("fieldgate/v1/") && !packet.topic.endsWith("/presence");
    if (device && result.mode === "deny") return callback(new Error("denied by test"));
    if (device && result.mode === "hold") {
      heldCallbacks.push(() => callback(null));
      return;
    }
    callback(null);
  };
  broker.on("publish", (packet, client) => {
    if (!client) return;
    result.accepted.push({
      topic: packet.topic,
      payload: packet.payload.toString(),
      retain: packet.retain,
      clientId: client.id,
    });
  });
  const server = createServer(
    { key: pki.server.keyPem, cert: pki.server.certPem, ca: pki.caPem, requestCert: true, rejectUnauthorized: true },
    (socket: TLSSocket) => {
      result.peers.push(String(socket.getPeerCertificate().subject?.CN ?? ""));
      broker.handle(socket);
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  result.url = `mqtts://localhost:${(server.address() as AddressInfo).port}`;
  return result;
}

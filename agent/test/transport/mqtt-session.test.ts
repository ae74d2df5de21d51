import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { eventually } from "../../../test/support/cloud-process.js";
import { MqttSession } from "../../src/transport/mqtt-session.js";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { memoryLogger } from "../helpers/logger.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";

const UUID = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d";

describe("MqttSession over mTLS against a real aedes broker", () => {
  let pki: TestPki;
  let broker: TestBroker;
  let session: MqttSession | undefined;
  const log = memoryLogger();

  beforeAll(async () => {
    pki = await createTestPki();
  });
  beforeEach(async () => {
    broker = await startTestBroker(pki);
  });
  afterEach(async () => {
    await session?.stop(500);
    session = undefined;
    await broker.close();
  });

  const open = (material: { keyPem: string; certPem: string }) => {
    session = new MqttSession({
      uuid: UUID,
      url: broker.url,
      keyPem: material.keyPem,
      certPem: material.certPem,
      caPem: pki.caPem,
      keepaliveS: 30,
      reconnectMinMs: 50,
      reconnectMaxMs: 200,
      logger: log.logger,
    });
    session.start();
    return session;
  };

  it("reconnects with its certificate after the broker drops it, again and again", async () => {
    const s = open(await pki.issueClient(UUID));
    await eventually(() => (s.connected ? true : undefined));
    for (let drop = 1; drop <= 2; drop++) {
      broker.mode = "deny"; // the next device publish closes the connection
      await expect(s.publish(`fieldgate/v1/${UUID}/telemetry`, "{}")).rejects.toBeTruthy();
      broker.mode = "allow";
      await eventually(() => (s.connected && broker.peers.length === drop + 1 ? true : undefined));
    }
    expect(broker.peers).toEqual([UUID, UUID, UUID]);
  });

  it("presents the renewed certificate on the connection after switchIdentity", async () => {
    const s = open(await pki.issueClient(UUID));
    await eventually(() => (s.connected ? true : undefined));
    const renewed = await pki.issueClient("renewed-cn");
    await s.switchIdentity({ ...renewed, caPem: pki.caPem });
    await eventually(() => (s.connected && broker.peers.length === 2 ? true : undefined));
    expect(broker.peers).toEqual([UUID, "renewed-cn"]);
  });

  it("does not throw on key material that does not load: it reports the failed connection and retries", async () => {
    const good = await pki.issueClient(UUID);
    const s = open({
      keyPem: "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
      certPem: good.certPem,
    });
    await eventually(() => (log.lines.some((l) => String(l.msg).startsWith("cannot connect to")) ? true : undefined));
    expect(s.connected).toBe(false);
    expect(broker.peers).toEqual([]);
    // Still trying: a renewal with good material brings it online.
    await s.switchIdentity({ ...good, caPem: pki.caPem });
    await eventually(() => (s.connected ? true : undefined));
  });
});

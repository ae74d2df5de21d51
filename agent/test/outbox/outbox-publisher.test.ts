import { join } from "node:path";
import type { TelemetryBatch } from "@fieldgate/shared";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { OutboxPublisher } from "../../src/outbox/outbox-publisher.js";
import { SqliteOutboxStore } from "../../src/outbox/sqlite-outbox-store.js";
import { MqttSession } from "../../src/transport/mqtt-session.js";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { memoryLogger } from "../helpers/logger.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { tempDir } from "../helpers/tmp.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";
const TELEMETRY = `fieldgate/v1/${UUID}/telemetry`;

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("OutboxPublisher against a real aedes broker over mTLS", () => {
  let pki: TestPki;
  let broker: TestBroker;
  let tmp: ReturnType<typeof tempDir>;
  let store: SqliteOutboxStore;
  let session: MqttSession;
  let publisher: OutboxPublisher;
  const log = memoryLogger();

  beforeAll(async () => {
    pki = await createTestPki();
  });

  beforeEach(async () => {
    broker = await startTestBroker(pki);
    tmp = tempDir();
    store = new SqliteOutboxStore(join(tmp.dir, "agent.db"), { maxRows: 100_000 });
  });

  afterEach(async () => {
    await publisher?.stop(0);
    await session?.stop(500);
    store.close();
    await broker.close();
    tmp.cleanup();
  });

  const connect = async (batchMax = 10, maxSendAttempts = 1000) => {
    const client = await pki.issueClient(UUID);
    session = new MqttSession({
      uuid: UUID,
      url: broker.url,
      keyPem: client.keyPem,
      certPem: client.certPem,
      caPem: pki.caPem,
      keepaliveS: 30,
      reconnectMinMs: 50,
      reconnectMaxMs: 200,
      logger: log.logger,
    });
    publisher = new OutboxPublisher({
      store,
      sink: session,
      uuid: UUID,
      batchMax,
      maxInFlight: 3,
      publishIntervalMs: 100,
      maxSendAttempts,
      logger: log.logger,
    });
    session.on("message", (topic, payload) => publisher.handleMessage(topic, payload));
    publisher.start();
    session.start();
    await until(() => session.connected);
  };

  const telemetry = (): TelemetryBatch[] =>
    broker.accepted.filter((p) => p.topic === TELEMETRY).map((p) => JSON.parse(p.payload) as TelemetryBatch);

  const append = (from: number, count: number) =>
    store.append(Array.from({ length: count }, (_, k) => ({ name: "t.v", ts: 1000 + from + k, value: from + k })));

  it("connects with the device certificate, announces presence, and delivers batches with consecutive seq", async () => {
    append(0, 35);
    await connect(10);
    expect(broker.peers).toContain(UUID);
    await until(() => broker.accepted.some((p) => p.topic.endsWith("/presence")));
    const presence = broker.accepted.find((p) => p.topic === `fieldgate/v1/${UUID}/presence`);
    expect(presence?.retain).toBe(true);
    expect(JSON.parse(presence?.payload ?? "{}")).toMatchObject({ v: 1, state: "online" });
    await until(() => store.backlog().rows === 0);
    const batches = telemetry();
    expect(batches.map((b) => b.seq)).toEqual([1, 2, 3, 4]);
    expect(batches.map((b) => b.readings.length)).toEqual([10, 10, 10, 5]);
    expect(batches.every((b) => b.stream === store.stream && b.v === 1)).toBe(true);
    expect(batches.flatMap((b) => b.readings.map((r) => r.value))).toEqual(Array.from({ length: 35 }, (_, i) => i));
    expect(store.backlog()).toMatchObject({ rows: 0, batches: 0 });
  });

  it("keeps rows until the PUBACK arrives", async () => {
    broker.mode = "hold";
    append(0, 5);
    await connect(10);
    await until(() => broker.held() === 1);
    await new Promise((r) => setTimeout(r, 200));
    expect(store.backlog()).toMatchObject({ rows: 5, batches: 1 });
    broker.mode = "allow";
    broker.release();
    await until(() => store.backlog().rows === 0);
    expect(telemetry().map((b) => b.seq)).toEqual([1]);
  });

  it("keeps rows while the broker refuses, then redelivers the same batch with the same seq", async () => {
    broker.mode = "deny";
    append(0, 3);
    await connect(10);
    // Each refusal closes the connection; the session reconnects and the publisher republishes.
    await new Promise((r) => setTimeout(r, 600));
    expect(telemetry()).toEqual([]);
    expect(store.backlog()).toMatchObject({ rows: 3, batches: 1 });
    expect(store.pendingBatches().map((b) => b.seq)).toEqual([1]);
    broker.mode = "allow";
    await until(() => store.backlog().rows === 0);
    const batches = telemetry();
    expect(batches.map((b) => b.seq)).toEqual([1]);
    expect(batches[0]?.readings.map((r) => r.value)).toEqual([0, 1, 2]);
    append(3, 2);
    publisher.notify();
    await until(() => store.backlog().rows === 0);
    expect(telemetry().map((b) => b.seq)).toEqual([1, 2]);
  });

  it("sets a refused batch aside on the cloud's notice, before its PUBACK, and delivers the next", async () => {
    broker.mode = "hold";
    append(0, 3);
    const setAside: number[] = [];
    await connect(10);
    publisher.on("setAside", (e) => setAside.push(e.seq));
    await until(() => broker.held() === 1);
    const notice = {
      v: 1,
      stream: store.stream,
      seq: 1,
      code: "VALIDATION_FAILED",
      field: "readings[0].ts",
      message: "x",
    };
    await broker.publishToDevices(`fieldgate/v1/${UUID}/telemetry/refused`, JSON.stringify(notice));
    await until(() => store.backlog().setAside === 1);
    expect(setAside).toEqual([1]);
    expect(store.backlog()).toMatchObject({ rows: 0, batches: 0, setAside: 1 });
    broker.mode = "allow";
    broker.release(); // the refused batch's PUBACK now deletes nothing
    append(3, 2);
    publisher.notify();
    await until(() => telemetry().some((b) => b.seq === 2));
    await until(() => store.backlog().rows === 0);
    expect(
      telemetry()
        .find((b) => b.seq === 2)
        ?.readings.map((r) => r.value),
    ).toEqual([3, 4]);
    // A notice for another stream, or malformed, changes nothing.
    await broker.publishToDevices(
      `fieldgate/v1/${UUID}/telemetry/refused`,
      JSON.stringify({ ...notice, stream: "ff".repeat(8), seq: 2 }),
    );
    await broker.publishToDevices(`fieldgate/v1/${UUID}/telemetry/refused`, "{nope");
    expect(store.backlog().setAside).toBe(1);
  });

  it("sets aside a batch sent maxSendAttempts times without a PUBACK, so the next ones flow", async () => {
    broker.mode = "deny";
    append(0, 3);
    await connect(10, 2);
    await until(() => store.backlog().setAside === 1);
    expect(log.lines.some((l) => l.code === "BATCH_SET_ASIDE")).toBe(true);
    broker.mode = "allow";
    append(3, 1);
    publisher.notify();
    await until(() => store.backlog().rows === 0);
    expect(telemetry().map((b) => b.seq)).toEqual([2]);
  });

  it("on start, first republishes batches persisted by a previous run", async () => {
    append(0, 4);
    const previous = store.nextBatch(2); // formed, maybe published, then the process died
    append(4, 1);
    await connect(10);
    await until(() => store.backlog().rows === 0);
    const batches = telemetry();
    expect(batches[0]).toMatchObject({ seq: previous?.seq, readings: previous?.readings });
    expect(batches.map((b) => b.seq)).toEqual([1, 2]);
    expect(batches[1]?.readings.map((r) => r.value)).toEqual([2, 3, 4]);
  });

  it("publishes offline (retained) on a clean stop", async () => {
    await connect();
    await publisher.stop(0);
    await session.stop();
    const presence = broker.accepted.filter((p) => p.topic === `fieldgate/v1/${UUID}/presence`);
    expect(presence.at(-1)?.retain).toBe(true);
    expect(JSON.parse(presence.at(-1)?.payload ?? "{}")).toEqual({ v: 1, state: "offline" });
  });
});

import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { EnrollResponse, TelemetryBatch } from "@fieldgate/shared";
import { FieldgateError } from "@fieldgate/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "../src/agent.js";
import { loadConfig } from "../src/config/load-config.js";
import type { Enroller } from "../src/enrollment/enrollment-client.js";
import { generateKeyAndCsr } from "../src/identity/csr.js";
import { IdentityStore } from "../src/identity/identity-store.js";
import type { AgentStatus } from "../src/status/status-file.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";
import { memoryLogger } from "./helpers/logger.js";
import { createTestPki, type TestPki } from "./helpers/pki.js";
import { tempDir } from "./helpers/tmp.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";

async function until(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Enrolls against the test CA after `failures` closed-window answers, like a cloud whose window opens late. */
function testEnroller(pki: TestPki, store: IdentityStore, mqttUrl: string, failures: number): Enroller {
  let left = failures;
  return {
    method: "token",
    async enroll() {
      if (left-- > 0) throw new FieldgateError("ENROLL_WINDOW_CLOSED");
      const { keyPem, csrPem } = await generateKeyAndCsr(UUID);
      const cert = await pki.signCsr(csrPem, UUID);
      const response: EnrollResponse = {
        v: 1,
        uuid: UUID,
        certificate: cert.certPem,
        caCertificate: pki.caPem,
        serial: cert.serial,
        notAfter: cert.notAfter.toISOString(),
        renewAfter: cert.notAfter.toISOString(),
        mqttUrl,
        apiUrl: "https://localhost:1",
      };
      return store.save(keyPem, response);
    },
  };
}

describe("Agent (composition root)", () => {
  let pki: TestPki;
  let broker: TestBroker;
  const tmp = tempDir();

  beforeAll(async () => {
    pki = await createTestPki();
    broker = await startTestBroker(pki);
  });
  afterAll(async () => {
    await broker.close();
    tmp.cleanup();
  });

  const makeAgent = () => {
    const { config } = loadConfig({
      raw: {
        uuid: UUID,
        dataDir: tmp.dir,
        cloud: { url: "https://localhost:1" },
        enrollment: { token: "super-secret-token", retryMin: "50ms", retryMax: "100ms" },
        telemetry: { syntheticRate: 100, publishInterval: "100ms", sampleInterval: "1s", batchMax: 20 },
        mqtt: { reconnectMin: "50ms", reconnectMax: "200ms" },
      },
      env: {},
    });
    const log = memoryLogger();
    const enroller = testEnroller(pki, new IdentityStore(tmp.dir), broker.url, 2);
    return { agent: new Agent(config, log.logger, { enroller }), log };
  };

  const counterValues = (): unknown[] =>
    broker.accepted
      .filter((p) => p.topic.endsWith("/telemetry"))
      .flatMap((p) => (JSON.parse(p.payload) as TelemetryBatch).readings)
      .filter((r) => r.name === "synthetic.counter")
      .map((r) => r.value);

  const status = (): AgentStatus => JSON.parse(readFileSync(join(tmp.dir, "status.json"), "utf8")) as AgentStatus;

  it("enrolls after the window opens, connects, delivers, and stops cleanly", async () => {
    const { agent, log } = makeAgent();
    await agent.start();
    await until(() => agent.state === "connected");
    await until(() => counterValues().length >= 30);
    expect(status()).toMatchObject({ uuid: UUID, state: "connected", pid: process.pid });
    await agent.stop();
    expect(status().state).toBe("stopped");
    const presence = broker.accepted.filter((p) => p.topic.endsWith("/presence"));
    expect(JSON.parse(presence.at(-1)?.payload ?? "{}")).toMatchObject({ state: "offline" });
    expect(log.raw.join("\n")).not.toContain("super-secret-token");
    expect(log.lines.filter((l) => l.code === "ENROLL_WINDOW_CLOSED" && l.level === 40)).toHaveLength(1);
  });

  it("after a restart, continues the counter and the seq without gaps or repeats", async () => {
    const { agent } = makeAgent();
    await agent.start();
    expect(agent.state).not.toBe("enrolling"); // the stored identity is reused
    await until(() => agent.state === "connected");
    const before = counterValues().length;
    await until(() => counterValues().length >= before + 30);
    await agent.stop();
    const values = counterValues();
    expect(values).toEqual(Array.from({ length: values.length }, (_, i) => i + 1));
    const seqs = broker.accepted
      .filter((p) => p.topic.endsWith("/telemetry"))
      .map((p) => (JSON.parse(p.payload) as TelemetryBatch).seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  });
});

import { generateKeyPairSync } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { deviceTopic, firmwareKeyId } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { IdentityStore } from "../../src/identity/identity-store.js";
import type { MessageSink } from "../../src/transport/mqtt-session.js";
import { FirmwareKeyStore } from "../../src/update/firmware-key-store.js";
import { UpdateJobStore } from "../../src/update/update-job-store.js";
import { UpdateService } from "../../src/update/update-service.js";
import { memoryLogger } from "../helpers/logger.js";
import { tempDir } from "../helpers/tmp.js";
import { FakeHealth, NEW_IMAGE, signedImage } from "./update-harness.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";

describe("UpdateService: a job the agent ended but the cloud still sends", () => {
  let tmp: ReturnType<typeof tempDir>;
  let service: UpdateService;
  const published: { topic: string; status: Record<string, unknown> }[] = [];

  beforeEach(() => {
    tmp = tempDir();
    published.length = 0;
    const { config } = loadConfig({
      raw: { uuid: UUID, dataDir: tmp.dir, cloud: { url: "https://x:1" }, localApi: { enabled: false } },
      env: {},
    });
    const dbPath = join(tmp.dir, "agent.db");
    // Ended here while the report could not go out (a restart into the old agent, or offline).
    const store = new UpdateJobStore(dbPath);
    const now = Date.now();
    for (const [jobId, state] of [
      ["job-ended", "ROLLED_BACK"],
      ["job-running", "DOWNLOADING"],
    ] as const) {
      store.insert({
        jobId,
        manifestJson: JSON.stringify(signedImage("2.0.0", NEW_IMAGE)),
        deadline: now + 60_000,
        now,
      });
      store.update(jobId, { state }, now);
    }
    store.update(
      "job-ended",
      { reason: "UPDATE_BOOT_FAILED", message: "the launcher restored slot a", finalized: 1 },
      now,
    );
    store.close();
    service = new UpdateService({
      config,
      identityStore: new IdentityStore(tmp.dir),
      health: new FakeHealth("ok"),
      dbPath,
      agentVersion: "0.1.0",
      logger: memoryLogger().logger,
    });
    const sink = {
      connected: true,
      publish: async (topic: string, payload: string | Buffer) => {
        published.push({ topic, status: JSON.parse(payload.toString()) as Record<string, unknown> });
      },
      on: () => sink,
      off: () => sink,
    };
    service.attach(sink as unknown as MessageSink);
  });
  afterEach(async () => {
    await service.stop();
    tmp.cleanup();
  });

  const notify = (jobId: string) =>
    service.handle(
      deviceTopic(UUID, { kind: "jobs/notify" }),
      Buffer.from(
        JSON.stringify({
          v: 1,
          jobId,
          firmware: { name: "gw-os", version: "2.0.0" },
          firmwareCompat: "gw-a",
          timeoutS: 3600,
        }),
      ),
    );

  it("sends its final status again", async () => {
    await notify("job-ended");
    expect(published).toEqual([
      {
        topic: deviceTopic(UUID, { kind: "jobs/status", jobId: "job-ended" }),
        status: {
          v: 1,
          ts: expect.any(Number),
          status: "ROLLED_BACK",
          reason: "UPDATE_BOOT_FAILED",
          message: "the launcher restored slot a",
        },
      },
    ]);
  });

  it("a job still running is neither fetched again nor reported", async () => {
    await notify("job-running");
    expect(published).toEqual([]);
  });

  it("a job message cannot carry a firmware key: one that tries is ignored and nothing becomes trusted", async () => {
    const { publicKey } = generateKeyPairSync("ed25519");
    const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
    await service.handle(
      deviceTopic(UUID, { kind: "jobs/notify" }),
      Buffer.from(
        JSON.stringify({
          v: 1,
          jobId: "job-with-key",
          firmware: { name: "gw-os", version: "3.0.0" },
          firmwareCompat: "gw-a",
          timeoutS: 3600,
          publicKey: pem,
          keys: [{ keyId: firmwareKeyId(pem), publicKey: pem, signing: true }],
        }),
      ),
    );
    expect(published).toEqual([]);
    expect(new FirmwareKeyStore(tmp.dir).load()).toBeUndefined();
    expect(existsSync(join(tmp.dir, "firmware-keys.json"))).toBe(false);
  });
});

import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, eventually, freePort, startCloud, tempDir } from "../support/cloud-process.js";
import { registerDevice } from "../support/device-identity.js";
import { localApi } from "../support/local-api.js";
import { mountSmallFilesystem, type SmallFilesystem } from "../support/small-filesystem.js";

type Answer = { accepted?: number; error?: { code: string; message: string } };
type Snapshot = { status: string; checks: { name: string; status: string; message: string }[] };

const batch = (from: number, n = 500) => ({
  readings: Array.from({ length: n }, (_, i) => ({
    name: "line.pressure",
    ts: 1_700_000_000_000 + from + i,
    value: i,
  })),
});

describe("the agent on a full disk, real processes and a real tmpfs", () => {
  let fs: SmallFilesystem | undefined;
  let cloud: CloudProcess;
  let agent: AgentProcess | undefined;
  let cloudDir: string;
  let ports: string[];

  beforeAll(async () => {
    const mounted = mountSmallFilesystem(8);
    if ("skipped" in mounted) {
      console.warn(`skipping the full-disk agent test: ${mounted.skipped}`);
      return;
    }
    fs = mounted;
    cloudDir = tempDir("cloud-full-disk");
    ports = ["--http-port", String(await freePort()), "--mqtt-port", String(await freePort())];
    cloud = await startCloud({ dataDir: cloudDir, args: ports });
  });
  afterAll(async () => {
    await agent?.stop();
    await cloud?.stop();
    fs?.unmount();
  });

  it("answers 503 STORAGE_FULL, stays up, raises the storage alarm, keeps delivering and recovers", async (ctx) => {
    if (!fs) return ctx.skip();
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent-full-disk");
    const dataDir = path.join(fs.dir, "data");
    const socket = path.join(dataDir, "agent.sock");
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "1h", publishInterval: "100ms" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
      health: { checkInterval: "1s", reportInterval: "1m" },
    });
    agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    await agent.waitForLog(/connected to /, 20_000);
    expect(existsSync(path.join(dataDir, "storage.reserve"))).toBe(true);

    // Offline, readings pile up; then something else fills the filesystem.
    await cloud.stop();
    for (let i = 0; i < 4; i++)
      expect((await localApi<Answer>(socket, "POST", "/v1/telemetry", batch(i * 500))).status).toBe(202);
    const filler = fs.fill();

    const postUntilRefused = async (from: number) => {
      for (let i = 0; i < 400; i++) {
        const answer = await localApi<Answer>(socket, "POST", "/v1/telemetry", batch(from + i * 500));
        if (answer.status !== 202) return answer;
      }
      return undefined;
    };
    const storageAlarm = () =>
      eventually(
        async () => {
          const s = (await localApi<Snapshot>(socket, "GET", "/v1/status")).body;
          const storage = s.checks.find((c) => c.name === "storage");
          return s.status === "critical" && storage?.status === "critical" && /^STORAGE_FULL/.test(storage.message)
            ? true
            : undefined;
        },
        10_000,
        "the storage alarm",
      );
    const refused = await postUntilRefused(10_000);
    expect(refused?.status).toBe(503);
    expect(refused?.body.error?.code).toBe("STORAGE_FULL");
    expect(refused?.body.error?.message).toMatch(/filesystem is full: 500 readings could not be stored; free space/);
    expect(agent.child.exitCode).toBeNull();
    await storageAlarm();

    // A restart on the full disk comes up again (it used to exit at once, for ever) and still says so.
    expect(await agent.stop()).toBe(0);
    agent = startAgent(configFile);
    await agent.waitForLog(/local API listening/, 20_000);
    expect((await postUntilRefused(500_000))?.body.error?.code).toBe("STORAGE_FULL");
    await storageAlarm();
    expect(agent.child.exitCode).toBeNull();

    // The drop policy made room for the next post (the oldest unsent readings went, reported as OUTBOX_FULL).
    await eventually(
      async () =>
        (await localApi<Answer>(socket, "POST", "/v1/telemetry", batch(900_000, 50))).status === 202 ? true : undefined,
      10_000,
      "a post accepted after the drop policy made room",
    );

    // The cloud returns: what the agent holds is delivered although the disk is still full.
    cloud = await startCloud({ dataDir: cloudDir, args: ports });
    await eventually(
      async () => {
        const page = await cloud.api<{ items: unknown[] }>(
          "GET",
          `/api/v1/devices/${uuid}/telemetry?name=line.pressure&limit=1000`,
        );
        return page.body.items.length >= 500 ? true : undefined;
      },
      30_000,
      "readings delivered from the full disk",
    );
    expect(agent.child.exitCode).toBeNull();

    // Space returns: the alarm clears by itself and new readings are accepted again.
    rmSync(filler);
    await eventually(
      async () => {
        const s = (await localApi<Snapshot>(socket, "GET", "/v1/status")).body;
        return s.checks.find((c) => c.name === "storage")?.status === "ok" ? true : undefined;
      },
      10_000,
      "the storage alarm to clear",
    );
    expect((await localApi<Answer>(socket, "POST", "/v1/telemetry", batch(2_000_000))).status).toBe(202);
    expect(agent.logs.some((l) => /SqliteError|uncaught/i.test(l))).toBe(false);
    expect(await agent.stop()).toBe(0);
    agent = undefined;
  }, 120_000);
});

import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, eventually, freePort, startCloud, tempDir } from "../support/cloud-process.js";
import { backlogRows, expectExactlyOnce, producedCount } from "../support/delivery-check.js";
import { registerDevice } from "../support/device-identity.js";

describe("outbox delivery, real processes", () => {
  let cloud: CloudProcess;
  let httpPort: number;
  let mqttPort: number;
  let cloudDir: string;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    cloudDir = tempDir("cloud-outbox");
    httpPort = await freePort();
    mqttPort = await freePort();
    cloud = await startCloud({
      dataDir: cloudDir,
      args: ["--http-port", String(httpPort), "--mqtt-port", String(mqttPort)],
    });
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await cloud.stop();
  });

  const config = (uuid: string, dataDir: string, rate: number) => ({
    uuid,
    dataDir,
    cloud: { url: cloud.url, caFile: cloud.caFile },
    enrollment: { retryMin: "200ms", retryMax: "1s" },
    telemetry: { sampleInterval: "1h", publishInterval: "100ms", batchMax: 40, syntheticRate: rate },
    mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
  });

  it("loses and duplicates nothing when the agent is killed with SIGKILL while publishing", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent-kill");
    const dataDir = path.join(dir, "data");
    const configFile = writeAgentConfig(dir, config(uuid, dataDir, 400));
    for (let round = 0; round < 5; round++) {
      const agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
      agents.push(agent);
      await agent.waitForLog(/connected to /, 15_000);
      // Kill at an arbitrary point of the publish cycle.
      await new Promise((r) => setTimeout(r, 400 + Math.floor(Math.random() * 900)));
      await agent.kill9();
    }
    const produced = producedCount(dataDir);
    expect(produced).toBeGreaterThan(500);
    // Restart without the producer and let the outbox drain.
    const drainFile = writeAgentConfig(dir, config(uuid, dataDir, 0));
    const drainer = startAgent(drainFile);
    agents.push(drainer);
    // Judge the backlog only once the drainer runs: an empty outbox must not end the test early.
    await drainer.waitForLog(/connected to /, 15_000);
    await eventually(
      async () => ((await backlogRows(drainFile)) === 0 ? true : undefined),
      20_000,
      "the outbox to drain",
    );
    expect(await drainer.stop()).toBe(0);
    expect(producedCount(dataDir)).toBe(produced);
    await expectExactlyOnce(cloud, uuid, produced);
  }, 90_000);

  it("keeps readings while the cloud is down and delivers them once when it returns", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent-offline");
    const dataDir = path.join(dir, "data");
    const configFile = writeAgentConfig(dir, config(uuid, dataDir, 200));
    const agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    agents.push(agent);
    await agent.waitForLog(/connected to /, 15_000);
    await cloud.stop();
    await new Promise((r) => setTimeout(r, 2000));
    expect(await backlogRows(configFile)).toBeGreaterThan(100);
    cloud = await startCloud({
      dataDir: cloudDir,
      args: ["--http-port", String(httpPort), "--mqtt-port", String(mqttPort)],
    });
    await eventually(
      async () => {
        const d = await cloud.api<{ online: boolean }>("GET", `/api/v1/devices/${uuid}`);
        return d.body.online ? true : undefined;
      },
      20_000,
      "the agent to reconnect",
    );
    expect(await agent.stop()).toBe(0);
    const drainer = startAgent(writeAgentConfig(dir, config(uuid, dataDir, 0)));
    agents.push(drainer);
    await drainer.waitForLog(/connected to /, 15_000);
    await eventually(
      async () => ((await backlogRows(configFile)) === 0 ? true : undefined),
      20_000,
      "the outbox to drain",
    );
    await drainer.stop();
    await expectExactlyOnce(cloud, uuid, producedCount(dataDir));
  }, 90_000);
});

import { appendFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, eventually, freePort, startCloud, tempDir } from "../support/cloud-process.js";
import { registerDevice } from "../support/device-identity.js";
import { type HoldingProxy, startHoldingProxy } from "../support/holding-proxy.js";

type LogPage = { items: { id: number; level: string; msg: string }[] };

/** What the agent's log buffer holds right now (read-only, beside the running agent). */
function agentBuffer(dataDir: string, like: string): { lines: number; batches: number } {
  const db = new Database(path.join(dataDir, "agent.db"), { readonly: true });
  try {
    const lines = db.prepare("SELECT count(*) AS n FROM log_lines WHERE msg LIKE ?").get(`%${like}%`) as { n: number };
    const batches = db.prepare("SELECT count(*) AS n FROM log_batches").get() as { n: number };
    return { lines: lines.n, batches: batches.n };
  } finally {
    db.close();
  }
}

describe("durable log forwarding, real processes", () => {
  let cloud: CloudProcess;
  let cloudDir: string;
  let httpPort: number;
  let mqttPort: number;
  const agents: AgentProcess[] = [];

  const startFixedCloud = () =>
    startCloud({ dataDir: cloudDir, args: ["--http-port", String(httpPort), "--mqtt-port", String(mqttPort)] });
  const cloudLines = async (uuid: string, marker: string) =>
    (await cloud.api<LogPage>("GET", `/api/v1/devices/${uuid}/logs?limit=10000`)).body.items
      .map((e) => e.msg)
      .filter((m) => m.includes(marker));
  const setupAgent = (uuid: string, name: string, extra: Record<string, unknown> = {}) => {
    const dir = tempDir(name);
    const appLog = path.join(dir, "app.log");
    writeFileSync(appLog, "");
    const dataDir = path.join(dir, "data");
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "1h" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
      logs: { flushInterval: "200ms", files: [appLog] },
      ...extra,
    });
    return { appLog, dataDir, configFile };
  };
  const run = (configFile: string, env: Record<string, string> = {}) => {
    const agent = startAgent(configFile, env);
    agents.push(agent);
    return agent;
  };

  beforeAll(async () => {
    cloudDir = tempDir("cloud-durable-logs");
    httpPort = await freePort();
    mqttPort = await freePort();
    cloud = await startFixedCloud();
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await cloud?.stop();
  });

  it("keeps lines logged while the cloud is down through a SIGKILL, and delivers each exactly once", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const { appLog, dataDir, configFile } = setupAgent(uuid, "agent-durable-logs");
    const first = run(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    await first.waitForLog(/connected to /, 20_000);
    appendFileSync(appLog, "online marker\n");
    await eventually(async () => ((await cloudLines(uuid, "online marker")).length ? true : undefined), 15_000);

    await cloud.stop();
    const offline = Array.from({ length: 40 }, (_, i) => `offline line ${i}`);
    appendFileSync(appLog, `${offline.join("\n")}\n`);
    // Committed to the agent's database, not merely read: only then is the kill a fair test.
    await eventually(
      () => (agentBuffer(dataDir, "offline line").lines === offline.length ? true : undefined),
      15_000,
      "the offline lines to be committed",
    );
    await first.kill9();

    cloud = await startFixedCloud();
    const second = run(configFile);
    await second.waitForLog(/connected to /, 20_000);
    await eventually(
      async () => ((await cloudLines(uuid, "offline line")).length >= offline.length ? true : undefined),
      20_000,
      "every offline line in the cloud",
    );
    await eventually(() => (agentBuffer(dataDir, "offline line").lines === 0 ? true : undefined), 10_000);
    // A few more flush intervals: nothing may arrive twice.
    await new Promise((r) => setTimeout(r, 1000));
    const stored = await cloudLines(uuid, "offline line");
    expect(stored.map((m) => m.replace(/^\[file:[^\]]+\] /, "")).sort()).toEqual([...offline].sort());
    expect(await cloudLines(uuid, "online marker")).toHaveLength(1);
  }, 90_000);

  it("stores a batch once when the cloud got it but the PUBACK was lost and the agent was killed", async () => {
    const proxy: HoldingProxy = await startHoldingProxy(mqttPort);
    try {
      const { uuid, token } = await registerDevice(cloud);
      // Through the proxy, so the broker's answers can be lost on the way.
      const {
        appLog,
        dataDir,
        configFile: withProxy,
      } = setupAgent(uuid, "agent-lost-puback", {
        cloud: { url: cloud.url, caFile: cloud.caFile, mqttUrl: `mqtts://localhost:${proxy.port}` },
      });
      const first = run(withProxy, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
      await first.waitForLog(/connected to /, 20_000);
      appendFileSync(appLog, "before hold\n");
      await eventually(async () => ((await cloudLines(uuid, "before hold")).length ? true : undefined), 15_000);
      await eventually(() => (agentBuffer(dataDir, "before hold").lines === 0 ? true : undefined), 10_000);

      proxy.hold(true);
      const held = Array.from({ length: 5 }, (_, i) => `held line ${i}`);
      appendFileSync(appLog, `${held.join("\n")}\n`);
      await eventually(
        async () => ((await cloudLines(uuid, "held line")).length === held.length ? true : undefined),
        15_000,
        "the cloud to store the held batch",
      );
      // The cloud has the lines; the agent still holds them in an unacknowledged batch.
      expect(agentBuffer(dataDir, "held line")).toMatchObject({ lines: held.length, batches: 1 });
      await first.kill9();
      proxy.hold(false);

      const second = run(withProxy);
      await second.waitForLog(/connected to /, 20_000);
      await eventually(
        () => (agentBuffer(dataDir, "held line").lines === 0 ? true : undefined),
        15_000,
        "the agent to resend the batch and get its PUBACK",
      );
      await new Promise((r) => setTimeout(r, 500));
      const stored = await cloudLines(uuid, "held line");
      expect(stored.map((m) => m.replace(/^\[file:[^\]]+\] /, "")).sort()).toEqual(held);
    } finally {
      await proxy.close();
    }
  }, 90_000);
});

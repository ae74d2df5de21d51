import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, startCloud, tempDir } from "../support/cloud-process.js";
import { registerDevice } from "../support/device-identity.js";
import { localApi } from "../support/local-api.js";

type Check = { name: string; status: string; message: string };

const local = localApi;

describe("statuses posted to the local API, real processes", () => {
  let cloud: CloudProcess;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await cloud.stop();
  });

  it("survive a SIGKILL of the agent: unexpired ones as posted, expired ones unknown", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent-posted-status");
    const dataDir = path.join(dir, "data");
    const socket = path.join(dataDir, "agent.sock");
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "1h" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
    });
    const first = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    agents.push(first);
    await first.waitForLog(/local API listening/);
    const post = (name: string, body: unknown) => local<Check>(socket, "POST", `/v1/status/${name}`, body);
    expect((await post("plc-link", { status: "critical", message: "no answer from PLC", ttl: "10m" })).status).toBe(
      200,
    );
    expect((await post("cron", { status: "ok", message: "ran", ttl: 1 })).status).toBe(200);
    expect((await post("manual", { status: "warning", message: "check the pump" })).status).toBe(200);
    await first.kill9();
    await new Promise((r) => setTimeout(r, 1500)); // the cron status's ttl runs out while the agent is down

    const second = startAgent(configFile);
    agents.push(second);
    await second.waitForLog(/local API listening/);
    const get = async (name: string) => (await local<Check>(socket, "GET", `/v1/status/${name}`)).body;
    expect(await get("plc-link")).toEqual({
      name: "local.plc-link",
      status: "critical",
      message: "no answer from PLC",
    });
    expect(await get("cron")).toEqual({ name: "local.cron", status: "unknown", message: "no update within ttl (1s)" });
    expect(await get("manual")).toEqual({ name: "local.manual", status: "warning", message: "check the pump" });
    expect(await second.stop()).toBe(0);
  }, 60_000);
});

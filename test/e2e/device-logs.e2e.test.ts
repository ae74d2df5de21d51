import { appendFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { registerDevice } from "../support/device-identity.js";

type LogPage = { items: { id: number; level: string; msg: string }[]; nextAfter: number };
type ConfigView = {
  version: number;
  state: string;
  inSync: boolean;
  reported: { version: number; logLevel?: string; forwardLevel?: string } | null;
};

describe("device logs and the desired-config channel, real processes", () => {
  let cloud: CloudProcess;
  let agent: AgentProcess;
  let uuid: string;
  let appLog: string;
  let configFile: string;
  let token: string;

  const logs = async (query = "") =>
    (await cloud.api<LogPage>("GET", `/api/v1/devices/${uuid}/logs?limit=1000${query}`)).body.items;
  const hasLog = (match: RegExp, query = "") =>
    eventually(async () => (await logs(query)).find((e) => match.test(e.msg)), 15_000, `a forwarded line ${match}`);
  const configView = async () => (await cloud.api<ConfigView>("GET", `/api/v1/devices/${uuid}/config`)).body;

  beforeAll(async () => {
    cloud = await startCloud();
    ({ uuid, token } = await registerDevice(cloud));
    const dir = tempDir("agent-logs");
    appLog = path.join(dir, "app.log");
    writeFileSync(appLog, "");
    configFile = writeAgentConfig(dir, {
      uuid,
      dataDir: path.join(dir, "data"),
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "1h" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
      logs: { flushInterval: "200ms", files: [appLog] },
    });
    agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    await agent.waitForLog(/connected to /, 20_000);
  });
  afterAll(async () => {
    await agent?.stop();
    await cloud?.stop();
  });

  it("forwards the agent's own lines and lines of a configured file, never the enrollment token", async () => {
    const connected = await hasLog(/^connected to /);
    expect(connected.level).toBe("info");
    appendFileSync(appLog, "pump 3 started\n");
    const fileLine = await hasLog(/pump 3 started/);
    expect(fileLine.msg).toBe(`[file:${appLog}] pump 3 started`);
    expect(JSON.stringify(await logs())).not.toContain(token);
    // The agent's own first report: nothing desired yet, levels from its file.
    const view = await eventually(async () => ((await configView()).reported ? configView() : undefined), 10_000);
    expect(view).toMatchObject({ version: 0, state: "none", reported: { version: 0, logLevel: "info" } });
  });

  it("applies a log level from the cloud without a restart and acknowledges it; debug lines then arrive", async () => {
    // Read in the same poll as the marker: below the forwarding level, so never forwarded.
    appendFileSync(appLog, "debug: valve 1 before\nmarker 1\n");
    await hasLog(/marker 1/);
    const put = await cloud.api<ConfigView>("PUT", `/api/v1/devices/${uuid}/config`, { logLevel: "debug" });
    expect(put.status).toBe(200);
    const version = put.body.version;
    expect(version).toBe(1);
    const acked = await eventually(
      async () => {
        const v = await configView();
        return v.state === "applied" ? v : undefined;
      },
      15_000,
      "the agent to acknowledge version 1",
    );
    expect(acked).toMatchObject({
      version,
      inSync: true,
      reported: { version, logLevel: "debug", forwardLevel: "debug" },
    });
    await agent.waitForLog(/applied desired config version 1/);
    const levelLine = await hasLog(/^log level debug, forwarding debug and above/);
    expect(levelLine.level).toBe("debug");
    appendFileSync(appLog, "debug: valve 1 after\n");
    await hasLog(/valve 1 after/);
    expect((await logs()).some((e) => /valve 1 before/.test(e.msg))).toBe(false);
    // The level filter of the API means "at least".
    expect((await logs("&level=info")).every((e) => e.level !== "debug")).toBe(true);
    // Same process all along: no restart happened.
    expect(agent.child.exitCode).toBeNull();
  });

  it("re-applies the acknowledged level after an agent restart, before the cloud answers", async () => {
    await cloud.api("PUT", `/api/v1/devices/${uuid}/config`, { logLevel: "warn" });
    await eventually(async () => ((await configView()).reported?.version === 2 ? true : undefined), 15_000);
    expect(await agent.stop()).toBe(0);
    agent = startAgent(configFile);
    await agent.waitForLog(/re-applying desired config version 2/, 20_000);
    const view = await eventually(async () => {
      const v = await configView();
      return v.state === "applied" && v.reported?.logLevel === "warn" ? v : undefined;
    }, 15_000);
    expect(view.version).toBe(2);
  });
});

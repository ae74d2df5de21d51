import { chmodSync, writeFileSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, agentCli, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { registerDevice } from "../support/device-identity.js";
import { localApi } from "../support/local-api-call.js";

const local = localApi;

type Check = { name: string; status: string; message: string };

/** The last health report the cloud stored for a device. */
function storedReport(cloud: CloudProcess, uuid: string): { status: string; checks: Check[] } | undefined {
  const db = new Database(path.join(cloud.dataDir, "fieldgate.db"), { readonly: true, fileMustExist: true });
  try {
    const row = db
      .prepare("SELECT s.health_json AS json FROM device_state s JOIN devices d ON d.id = s.device_id WHERE d.uuid = ?")
      .get(uuid) as { json: string | null } | undefined;
    return row?.json ? JSON.parse(row.json) : undefined;
  } finally {
    db.close();
  }
}

describe("agent health and local API, real processes", () => {
  let cloud: CloudProcess;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(async () => {
    await agent?.stop();
    await cloud.stop();
  });

  it("reports a failing command check as critical, and a local status whose ttl passes as unknown", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent-health");
    const dataDir = path.join(dir, "data");
    const socket = path.join(dataDir, "agent.sock");
    const check = path.join(dir, "check-pressure.sh");
    writeFileSync(check, '#!/bin/sh\necho "pressure 9.1 bar over the 8 bar limit | p=9.1"\nexit 2\n');
    chmodSync(check, 0o755);
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { publishInterval: "200ms" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
      health: {
        checkInterval: "1s",
        reportInterval: "1m",
        commands: [{ name: "pressure", command: [check], interval: "1s", timeout: "5s" }],
      },
    });
    agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    await agent.waitForLog(/local API listening/);
    await agent.waitForLog(/connected to /, 20_000);

    // The command exits 2: the cloud shows the device red.
    await eventually(
      async () => {
        const res = await cloud.api<{ health: string | null }>("GET", `/api/v1/devices/${uuid}`);
        return res.body.health === "critical" ? true : undefined;
      },
      15_000,
      "the cloud to store health critical",
    );
    const report = storedReport(cloud, uuid);
    expect(report?.checks).toContainEqual({
      name: "command.pressure",
      status: "critical",
      message: "pressure 9.1 bar over the 8 bar limit",
    });
    // The clock was measured against the cloud over HTTPS with the configured CA.
    await eventually(
      () => storedReport(cloud, uuid)?.checks.find((c) => c.name === "clock" && c.status === "ok"),
      15_000,
      "the clock check to be ok",
    );

    // A program posts a status with a 1 s time-to-live and then stops posting.
    const posted = await local<Check>(socket, "POST", "/v1/status/heartbeat", {
      status: "ok",
      message: "loop running",
      ttl: "1s",
    });
    expect(posted).toMatchObject({ status: 200, body: { name: "local.heartbeat", status: "ok" } });
    const expired = await eventually(
      async () => {
        const res = await local<Check>(socket, "GET", "/v1/status/heartbeat");
        return res.body.status === "unknown" ? res.body : undefined;
      },
      5_000,
      "the posted status to expire",
    );
    expect(expired).toEqual({ name: "local.heartbeat", status: "unknown", message: "no update within ttl (1s)" });
    // The change reached the cloud too.
    await eventually(
      () => storedReport(cloud, uuid)?.checks.find((c) => c.name === "local.heartbeat" && c.status === "unknown"),
      10_000,
      "the cloud to see local.heartbeat unknown",
    );

    // Readings posted to the local API reach the cloud through the outbox.
    const accepted = await local(socket, "POST", "/v1/telemetry", { name: "tank.level", value: 73.5, unit: "%" });
    expect(accepted).toEqual({ status: 202, body: { accepted: 1 } });
    await eventually(
      async () => {
        const res = await cloud.api<{ items: { value: number }[] }>(
          "GET",
          `/api/v1/devices/${uuid}/telemetry?name=tank.level`,
        );
        return res.body.items.length === 1 ? res.body.items : undefined;
      },
      10_000,
      "the posted reading in the cloud",
    );
    const bad = await local(socket, "POST", "/v1/status/heartbeat", { status: "green" });
    expect(bad).toMatchObject({ status: 400, body: { error: { code: "VALIDATION_FAILED", field: "status" } } });

    // `fieldgate-agent status` shows the aggregate from status.json.
    const status = await agentCli(["status", "--config", configFile]);
    expect(status.stdout).toMatch(/^health\s+critical/m);
    expect(status.stdout).toContain("critical command.pressure: pressure 9.1 bar over the 8 bar limit");

    // A second agent on the same data directory refuses to start and leaves the first one alone.
    const second = await agentCli(["run", "--config", configFile]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain("error LOCAL_API_IN_USE");
    expect((await local(socket, "GET", "/v1/status")).status).toBe(200);
    const after = JSON.parse((await agentCli(["status", "--config", configFile, "--json"])).stdout) as {
      daemon: { running: boolean; pid: number; health: { status: string } };
    };
    expect(after.daemon).toMatchObject({ running: true, pid: agent.child.pid, health: { status: "critical" } });

    expect(await agent.stop()).toBe(0);
  }, 90_000);
});

import { chmodSync, writeFileSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { connectDevice, registerAndEnroll, registerDevice } from "../support/device-identity.js";

type DeviceAnswer = { online: boolean; health: string | null; offlineReason: string | null; lastSeen: string | null };
type Events = { items: { code: string; severity: string; message: string }[] };

describe("presence and last status, real processes", () => {
  let cloud: CloudProcess;
  const agents: AgentProcess[] = [];
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await cloud.stop();
  });

  it("shows a killed agent offline within the keepalive bound, keeping its last status, with the reason in its history", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent-kill-presence");
    const check = path.join(dir, "check.sh");
    writeFileSync(check, '#!/bin/sh\necho "valve stuck"\nexit 1\n');
    chmodSync(check, 0o755);
    const keepaliveS = 2;
    const agent = startAgent(
      writeAgentConfig(dir, {
        uuid,
        dataDir: path.join(dir, "data"),
        cloud: { url: cloud.url, caFile: cloud.caFile },
        enrollment: { retryMin: "200ms", retryMax: "1s" },
        mqtt: { keepalive: `${keepaliveS}s`, reconnectMin: "200ms", reconnectMax: "1s" },
        health: {
          checkInterval: "1s",
          // Only the valve decides the status: a loaded test machine must not turn it critical.
          loadPerCoreWarn: 1000,
          loadPerCoreCrit: 1000,
          memoryUsedWarnPct: 100,
          memoryUsedCritPct: 100,
          commands: [{ name: "valve", command: [check], interval: "1s", timeout: "5s" }],
        },
      }),
      { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token },
    );
    agents.push(agent);
    await eventually(
      async () => {
        const d = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
        return d.online && d.health === "warning" ? true : undefined;
      },
      20_000,
      "the agent to report warning",
    );
    const killedAt = Date.now();
    await agent.kill9();
    const offline = await eventually(
      async () => {
        const d = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
        return d.online ? undefined : { d, at: Date.now() };
      },
      10_000,
      "offline",
    );
    // MQTT allows 1.5 keepalives before a broker must drop a silent client [MQTT-3.1.2-24].
    expect(offline.at - killedAt).toBeLessThan(1500 * keepaliveS + 1000);
    expect(offline.d.health).toBe("warning");
    expect(["last-will", "keepalive-timeout"]).toContain(offline.d.offlineReason);
    const events = await cloud.api<Events>("GET", `/api/v1/devices/${uuid}/events?limit=100`);
    const codes = events.body.items.map((e) => e.code);
    expect(codes).toEqual(expect.arrayContaining(["DEVICE_ONLINE", "DEVICE_OFFLINE", "HEALTH_CHANGED"]));
    expect(events.body.items.find((e) => e.code === "HEALTH_CHANGED")?.message).toContain("valve stuck");
  });

  it("records a clean disconnect as such", async () => {
    const device = await registerAndEnroll(cloud);
    const client = await connectDevice(cloud, device, device.uuid);
    await client.endAsync();
    const d = await eventually(
      async () => {
        const got = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${device.uuid}`)).body;
        return got.online ? undefined : got;
      },
      5000,
      "offline",
    );
    expect(d.offlineReason).toBe("clean-disconnect");
  });

  it("deletes every row of a device, and the uuid can be added again", async () => {
    const device = await registerAndEnroll(cloud);
    const client = await connectDevice(cloud, device, device.uuid);
    const topic = (t: string) => `fieldgate/v1/${device.uuid}/${t}`;
    const publish = (t: string, body: unknown) =>
      new Promise<void>((resolve, reject) =>
        client.publish(topic(t), typeof body === "string" ? body : JSON.stringify(body), { qos: 1 }, (e) =>
          e ? reject(e) : resolve(),
        ),
      );
    await publish("telemetry", {
      v: 1,
      stream: "00112233445566778899aabbccddeeff",
      seq: 1,
      readings: [{ name: "t", ts: 1, value: 1 }],
    });
    await publish("logs", { v: 1, entries: [{ ts: 1, level: "info", msg: "hello" }] });
    await publish("health", { v: 1, ts: 1, status: "ok", checks: [] });
    await publish("events", "{not json");
    const db = () => new Database(path.join(cloud.dataDir, "fieldgate.db"), { readonly: true });
    const id = (() => {
      const conn = db();
      const row = conn.prepare("SELECT id FROM devices WHERE uuid = ?").get(device.uuid) as { id: number };
      conn.close();
      return row.id;
    })();
    const tables = [
      "telemetry",
      "telemetry_streams",
      "device_events",
      "device_logs",
      "device_state",
      "certificates",
      "rejected_messages",
    ];
    const counts = () => {
      const conn = db();
      const out = Object.fromEntries(
        tables.map((t) => [
          t,
          (conn.prepare(`SELECT count(*) AS n FROM ${t} WHERE device_id = ?`).get(id) as { n: number }).n,
        ]),
      );
      conn.close();
      return out;
    };
    const before = counts();
    for (const t of tables) expect(before[t], t).toBeGreaterThan(0);
    expect((await cloud.api("DELETE", `/api/v1/devices/${device.uuid}`)).status).toBe(204);
    client.end(true);
    await new Promise((r) => setTimeout(r, 200));
    for (const [t, n] of Object.entries(counts())) expect(n, t).toBe(0);
    expect((await cloud.api("POST", "/api/v1/devices", { uuid: device.uuid })).status).toBe(201);
  });
});

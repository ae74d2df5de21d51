import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, agentCli, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { backlogRows, expectExactlyOnce, producedCount } from "../support/delivery-check.js";
import { registerDevice } from "../support/device-identity.js";

type DeviceAnswer = { online: boolean; certificate: { serial: string } | null; offlineReason: string | null };

describe("certificate renewal, real processes", () => {
  let cloud: CloudProcess;
  const agents: AgentProcess[] = [];
  beforeAll(async () => {
    // A 6 s lifetime renews every 4 s: several switches within one test.
    cloud = await startCloud({ args: ["--cert-lifetime", "6s"] });
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await cloud.stop();
  });

  it("renews at two thirds of the lifetime, moves the session to the new certificate, and loses or duplicates no reading", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent-renew");
    const dataDir = path.join(dir, "data");
    const base = {
      uuid,
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
    };
    const configFile = writeAgentConfig(dir, {
      ...base,
      telemetry: { sampleInterval: "1h", publishInterval: "100ms", batchMax: 20, syntheticRate: 200 },
    });
    const agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    agents.push(agent);
    const serials = new Set<string>();
    await eventually(
      async () => {
        const d = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
        if (d.online && d.certificate) serials.add(d.certificate.serial);
        return serials.size >= 3 ? true : undefined;
      },
      30_000,
      "two renewals",
    );
    await agent.waitForLog(/certificate renewed/);
    expect(await agent.stop()).toBe(0);
    // Drain without the producer, then count.
    const drainFile = writeAgentConfig(dir, {
      ...base,
      telemetry: { sampleInterval: "1h", publishInterval: "100ms", syntheticRate: 0 },
    });
    const drainer = startAgent(drainFile);
    agents.push(drainer);
    await drainer.waitForLog(/connected to /, 15_000);
    await eventually(
      async () => ((await backlogRows(drainFile)) === 0 ? true : undefined),
      20_000,
      "the outbox to drain",
    );
    expect(await drainer.stop()).toBe(0);
    await expectExactlyOnce(cloud, uuid, producedCount(dataDir));
  }, 90_000);
});

describe("a certificate that expired while offline, real processes", () => {
  let cloud: CloudProcess;
  let agent: AgentProcess | undefined;
  beforeAll(async () => {
    cloud = await startCloud({ args: ["--cert-lifetime", "5s"] });
  });
  afterAll(async () => {
    await agent?.stop();
    await cloud.stop();
  });

  it("says clearly that the operator must reset the token, shows it in status, and re-enrolls once that happens", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent-expired");
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir: path.join(dir, "data"),
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
    });
    const first = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    await first.waitForLog(/connected to /, 15_000);
    expect(await first.stop()).toBe(0);
    await new Promise((r) => setTimeout(r, 5500)); // offline past the certificate's end
    agent = startAgent(configFile);
    const line = await agent.waitForLog(/certificate expired/, 15_000);
    expect(String(line.msg)).toContain(`fieldgate-cloud devices reset-token ${uuid}`);
    const status = JSON.parse((await agentCli(["status", "--config", configFile, "--json"])).stdout) as {
      daemon: { lastError: { code: string } | null };
    };
    expect(status.daemon.lastError?.code).toMatch(/CERT_EXPIRED|ENROLL_/);
    // The operator resets the token and gives it to the device: it enrolls again.
    const reset = await cloud.api<{ enrollmentToken: string }>("POST", `/api/v1/devices/${uuid}/reset-token`);
    await agent.stop();
    agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: reset.body.enrollmentToken });
    await agent.waitForLog(/connected to /, 15_000);
  }, 60_000);
});

describe("revocation, real processes", () => {
  let cloud: CloudProcess;
  const agents: AgentProcess[] = [];
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await cloud.stop();
  });

  it("drops the live session within a second of reset-token; the agent says why and re-enrolls with its factory key", async () => {
    const dir = tempDir("agent-revoke");
    const keyFile = path.join(dir, "factory.key");
    const gen = await agentCli(["factory-key", "generate", "--out", keyFile]);
    const publicPem = gen.stdout.slice(
      gen.stdout.indexOf("-----BEGIN PUBLIC KEY-----"),
      gen.stdout.indexOf("-----END PUBLIC KEY-----") + 24,
    );
    const { uuid } = await registerDevice(cloud, { factoryPublicKey: publicPem });
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir: path.join(dir, "data"),
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { factoryKeyFile: keyFile, retryMin: "200ms", retryMax: "1s" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
    });
    const agent = startAgent(configFile);
    agents.push(agent);
    const first = await eventually(
      async () => {
        const d = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
        return d.online && d.certificate ? d.certificate.serial : undefined;
      },
      15_000,
      "the first enrollment",
    );

    const deviceKeyFile = path.join(dir, "data", "identity", "device.key");
    const revokedKey = fs.readFileSync(deviceKeyFile, "utf8");
    const resetAt = Date.now();
    expect((await cloud.api("POST", `/api/v1/devices/${uuid}/reset-token`)).status).toBe(200);
    const offline = await eventually(
      async () => {
        const d = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
        return d.online ? undefined : { d, at: Date.now() };
      },
      5000,
      "the session to drop",
    );
    expect(offline.at - resetAt).toBeLessThan(1000);
    expect(offline.d.offlineReason).toBe("revoked");

    const line = await agent.waitForLog(/cloud refuses this certificate/);
    expect(String(line.msg)).toContain(`fieldgate-cloud devices reset-token ${uuid}`);
    // The reset opened a new window: the agent enrolls again by itself, with a new certificate.
    await eventually(
      async () => {
        const d = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
        return d.online && d.certificate && d.certificate.serial !== first ? true : undefined;
      },
      15_000,
      "re-enrollment",
    );
    // A new key, not the revoked one: the cloud would refuse that with ENROLL_KEY_REUSED.
    expect(fs.readFileSync(deviceKeyFile, "utf8")).not.toBe(revokedKey);
    const events = await cloud.api<{ items: { code: string; message: string }[] }>(
      "GET",
      `/api/v1/devices/${uuid}/events`,
    );
    expect(events.body.items.map((e) => e.code)).toEqual(
      expect.arrayContaining(["DEVICE_OFFLINE", "DEVICE_ONLINE", "CERT_REVOKED"]),
    );
  });

  it("reports a refused certificate in status when it cannot re-enroll by itself", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent-revoke-token");
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir: path.join(dir, "data"),
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
    });
    const agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    agents.push(agent);
    await agent.waitForLog(/connected to /, 15_000);
    expect((await cloud.api("DELETE", `/api/v1/devices/${uuid}`)).status).toBe(204);
    await agent.waitForLog(/cloud refuses this certificate/);
    const status = await eventually(
      async () => {
        const s = JSON.parse((await agentCli(["status", "--config", configFile, "--json"])).stdout) as {
          identity: { enrolled: boolean };
          daemon: { lastError: { code: string } | null };
        };
        return s.identity.enrolled === false ? s : undefined;
      },
      10_000,
      "status to show the lost identity",
    );
    expect(status.daemon.lastError?.code).toMatch(/CERT_REVOKED|ENROLL_/);
  });
});

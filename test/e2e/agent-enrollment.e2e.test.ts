import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, agentCli, enrollCli, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { newUuid, registerDevice } from "../support/device-identity.js";

type DeviceAnswer = { online: boolean; telemetryCount: number; certificate: { serial: string } | null };

describe("agent and cloud, real processes", () => {
  let cloud: CloudProcess;
  const agents: AgentProcess[] = [];
  const device = (uuid: string) => cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`).then((r) => r.body);

  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await cloud.stop();
  });

  const baseConfig = (uuid: string, dataDir: string, extra: Record<string, unknown> = {}) => ({
    uuid,
    dataDir,
    cloud: { url: cloud.url, caFile: cloud.caFile },
    enrollment: { retryMin: "200ms", retryMax: "1s" },
    telemetry: { sampleInterval: "1s", publishInterval: "200ms" },
    mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
    ...extra,
  });

  it("enrolls with a token inside the window, connects over mTLS, and reports telemetry the cloud stores", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent");
    const agent = startAgent(writeAgentConfig(dir, baseConfig(uuid, path.join(dir, "data"))), {
      FIELDGATE_AGENT_ENROLLMENT_TOKEN: token,
    });
    agents.push(agent);
    const stored = await eventually(
      async () => {
        const d = await device(uuid);
        return d.online && d.telemetryCount > 0 ? d : undefined;
      },
      20_000,
      "the agent to enroll and report",
    );
    expect(stored.certificate?.serial).toMatch(/^[0-9A-F]+$/);
    expect(fs.statSync(path.join(dir, "data", "identity", "device.key")).mode & 0o777).toBe(0o600);
    const page = await cloud.api<{ items: { name: string }[] }>("GET", `/api/v1/devices/${uuid}/telemetry?limit=100`);
    expect(page.body.items.map((r) => r.name)).toEqual(expect.arrayContaining(["system.load1", "system.mem.used_pct"]));
    expect(agent.logs.join("\n")).not.toContain(token);

    const status = await agentCli(["status", "--config", path.join(dir, "agent.json"), "--json"]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ identity: { uuid, enrolled: true } });

    expect(await agent.stop()).toBe(0);
    await eventually(
      async () => ((await device(uuid)).online ? undefined : true),
      10_000,
      "offline after a clean stop",
    );
  });

  it("self-enrolls with its factory key within seconds of an operator opening the window", async () => {
    const dir = tempDir("agent-factory");
    const keyFile = path.join(dir, "factory.key");
    const gen = await agentCli(["factory-key", "generate", "--out", keyFile]);
    expect(gen.code).toBe(0);
    expect(gen.stdout).not.toMatch(/PRIVATE KEY/);
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    const publicPem = gen.stdout.slice(
      gen.stdout.indexOf("-----BEGIN PUBLIC KEY-----"),
      gen.stdout.indexOf("-----END PUBLIC KEY-----") + 24,
    );

    const uuid = newUuid();
    const agent = startAgent(
      writeAgentConfig(
        dir,
        baseConfig(uuid, path.join(dir, "data"), {
          enrollment: { factoryKeyFile: keyFile, retryMin: "200ms", retryMax: "1s" },
        }),
      ),
    );
    agents.push(agent);
    // Not registered yet: the agent says once what the operator must do, then keeps trying.
    const closed = await agent.waitForLog(/enrollment window closed/);
    expect(String(closed.msg)).toContain(`fieldgate-cloud devices reset-token ${uuid}`);

    const res = await cloud.api("POST", "/api/v1/devices", { uuid, factoryPublicKey: publicPem });
    expect(res.status).toBe(201);
    await eventually(
      async () => ((await device(uuid)).online ? true : undefined),
      15_000,
      "factory-key self-enrollment",
    );
    expect(agent.logs.filter((l) => l.includes("enrollment window closed")).length).toBe(1);

    // A factory reset: the operational identity goes, the factory key stays, and a new window re-enrolls it.
    expect(await agent.stop()).toBe(0);
    const reset = await agentCli(["reset", "--yes", "--config", path.join(dir, "agent.json")]);
    expect(reset.code).toBe(0);
    expect(fs.existsSync(keyFile)).toBe(true);
    expect(fs.existsSync(path.join(dir, "data", "identity", "device.key"))).toBe(false);
    const before = (await device(uuid)).certificate?.serial;
    await cloud.api("POST", `/api/v1/devices/${uuid}/reset-token`);
    const again = startAgent(path.join(dir, "agent.json"));
    agents.push(again);
    await eventually(
      async () => {
        const d = await device(uuid);
        return d.online && d.certificate && d.certificate.serial !== before ? true : undefined;
      },
      15_000,
      "re-enrollment after factory reset",
    );
  });

  it("lets a field engineer enroll once from the CLI, and explains a closed window", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dataDir = tempDir("agent-cli");
    const ok = await enrollCli(cloud, { uuid, token, dataDir: dataDir, configFile: path.join(dataDir, "agent.json") });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(uuid);
    expect(ok.stdout).toMatch(/serial/i);
    // It wrote what `run` needs, never the token, readable by its owner only, and says what to run next.
    const configFile = path.join(dataDir, "agent.json");
    expect(JSON.parse(fs.readFileSync(configFile, "utf8"))).toEqual({
      uuid,
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
    });
    expect(fs.readFileSync(configFile, "utf8")).not.toContain(token);
    expect(fs.statSync(configFile).mode & 0o777).toBe(0o600);
    expect(ok.stdout).toContain(`next: fieldgate-agent run --config ${configFile}`);
    const again = await enrollCli(cloud, {
      uuid,
      token,
      dataDir: tempDir("agent-cli2"),
      configFile: path.join(tempDir("agent-cli2-config"), "agent.json"),
    });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("ENROLL_WINDOW_CLOSED");
    expect(again.stderr).toContain(`reset-token ${uuid}`);
  });

  it("stops sending a token the cloud rejected, so the daemon cannot close the window by itself", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent-badtoken");
    const agent = startAgent(writeAgentConfig(dir, baseConfig(uuid, path.join(dir, "data"))), {
      FIELDGATE_AGENT_ENROLLMENT_TOKEN: "fgt_typo",
    });
    agents.push(agent);
    await agent.waitForLog(/enrollment token rejected/);
    await new Promise((r) => setTimeout(r, 3000));
    const d = await cloud.api<{ window: { open: boolean; failedAttempts: number } }>("GET", `/api/v1/devices/${uuid}`);
    expect(d.body.window).toMatchObject({ open: true, failedAttempts: 1 });
    // The engineer enrolls by hand with the right token; the running daemon adopts that identity.
    const cli = await enrollCli(cloud, {
      uuid,
      token,
      dataDir: path.join(dir, "data"),
      configFile: path.join(dir, "agent.json"),
    });
    expect(cli.code).toBe(0);
    await eventually(
      async () => ((await device(uuid)).online ? true : undefined),
      15_000,
      "the daemon to adopt the CLI's identity",
    );
  });
});

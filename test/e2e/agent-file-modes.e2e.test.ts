import { chmodSync, lstatSync, readdirSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, agentCli, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { registerDevice } from "../support/device-identity.js";
import { localApi } from "../support/local-api.js";

/** Every file and directory under `root` with its permission bits, relative path first. */
function modes(root: string): [string, string][] {
  const out: [string, string][] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      const st = lstatSync(full);
      const kind = st.isDirectory() ? "dir" : st.isSocket() ? "socket" : "file";
      out.push([`${kind} ${path.relative(root, full)}`, (st.mode & 0o777).toString(8)]);
      if (st.isDirectory()) walk(full);
    }
  };
  walk(root);
  return out;
}

describe("the agent's file modes, real processes", () => {
  let cloud: CloudProcess;
  let agent: AgentProcess | undefined;
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(async () => {
    await agent?.stop();
    await cloud.stop();
  });

  it("creates every file 0600 and every directory 0700 after a full run, and refuses loose modes", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("agent-modes");
    const dataDir = path.join(dir, "data");
    const socket = path.join(dataDir, "agent.sock");
    const base = {
      uuid,
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "1h", publishInterval: "100ms" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
    };
    const configFile = writeAgentConfig(dir, base);
    agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    await agent.waitForLog(/connected to /, 20_000);
    expect((await localApi(socket, "POST", "/v1/telemetry", { name: "modes.check", value: 1 })).status).toBe(202);
    expect((await localApi(socket, "POST", "/v1/status/modes", { status: "ok" })).status).toBe(200);
    await eventually(
      async () => {
        const page = await cloud.api<{ items: { name: string }[] }>(
          "GET",
          `/api/v1/devices/${uuid}/telemetry?name=modes.check`,
        );
        return page.body.items.length === 1 ? true : undefined;
      },
      20_000,
      "the reading delivered",
    );
    // Log forwarding is on by default (logs.forwardLevel info): the agent's lines go through agent.db.
    const seen = modes(dataDir);
    // The database's -wal and -shm, the identity, status.json, the reserve: all private while it runs.
    expect(seen.map(([p]) => p)).toEqual(
      expect.arrayContaining(["file agent.db-wal", "file agent.db-shm", "dir identity"]),
    );
    const loose = seen.filter(([p, mode]) =>
      p.startsWith("dir ") ? mode !== "700" : p.startsWith("socket ") ? mode !== "660" : mode !== "600",
    );
    expect(loose).toEqual([]);
    expect(await agent.stop()).toBe(0);
    agent = undefined;

    // A private key others can read: refused, with the fix.
    const key = path.join(dataDir, "identity", "device.key");
    chmodSync(key, 0o644);
    const keyRun = await agentCli(["run", "--config", configFile]);
    expect(keyRun.code).not.toBe(0);
    expect(keyRun.stderr).toContain("CONFIG_INVALID");
    expect(keyRun.stderr).toContain(`chmod 600 ${key}`);
    const doctorKey = await agentCli(["doctor", "--config", configFile, "--json"]);
    expect(doctorKey.stdout).toContain(`chmod 600 ${key}`);
    chmodSync(key, 0o600);

    // A data directory others can write (and so replace the socket): refused, with the fix.
    chmodSync(dataDir, 0o777);
    const dirRun = await agentCli(["run", "--config", configFile]);
    expect(dirRun.code).not.toBe(0);
    expect(dirRun.stderr).toContain(`chmod 700 ${dataDir}`);
    chmodSync(dataDir, 0o700);

    // A readable config holding a token: a warning, and the agent runs.
    const tokenConfig = writeAgentConfig(dir, { ...base, enrollment: { ...base.enrollment, token: "t".repeat(32) } });
    chmodSync(tokenConfig, 0o644);
    agent = startAgent(tokenConfig);
    const warning = await agent.waitForLog(/holds an enrollment token and is mode 0644/, 20_000);
    expect(String(warning.msg)).toContain(`chmod 600 ${tokenConfig}`);
    expect(await agent.stop()).toBe(0);
    agent = undefined;
  }, 120_000);
});

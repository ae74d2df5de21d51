import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, agentCli, enrollCli, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, cloudBin, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { newUuid } from "../support/device-identity.js";

const run = promisify(execFile);

/**
 * The README's "A real gateway" flow with real processes, command for command: `devices add`,
 * `enroll … --config F`, `run --config F` with the file enroll wrote and nothing else. It prints
 * how long it took from `devices add` to the first reading the cloud stored (the README's figure);
 * it asserts no timing, since a loaded machine may be slower.
 */
describe("one obvious gateway flow", () => {
  let cloud: CloudProcess;
  const agents: AgentProcess[] = [];
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    await cloud?.stop();
  });

  it("devices add → enroll (writes the config) → run: the device's readings are stored", async () => {
    const uuid = newUuid();
    const gateway = tempDir("gateway");
    const configFile = path.join(gateway, "etc", "agent.json");
    const dataDir = path.join(gateway, "var");
    const started = performance.now();

    const added = await run(process.execPath, [
      cloudBin,
      "devices",
      "add",
      uuid,
      "--name",
      "press-4",
      "--json",
      "--data-dir",
      cloud.dataDir,
    ]);
    const { enrollmentToken } = JSON.parse(added.stdout) as { enrollmentToken: string };
    const enrolled = await enrollCli(cloud, { uuid, token: enrollmentToken, dataDir, configFile });
    expect(enrolled.code, enrolled.stderr).toBe(0);
    expect(enrolled.stdout).toContain(`config written to   ${configFile}`);
    expect(enrolled.stdout).toContain(`next: fieldgate-agent run --config ${configFile}`);
    expect(JSON.parse(fs.readFileSync(configFile, "utf8"))).toEqual({
      uuid,
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
    });

    const agent = startAgent(configFile);
    agents.push(agent);
    await eventually(
      async () => {
        const d = await cloud.api<{ telemetryCount: number }>("GET", `/api/v1/devices/${uuid}`);
        return d.body.telemetryCount > 0 ? true : undefined;
      },
      30_000,
      "the first stored reading",
    );
    const seconds = (performance.now() - started) / 1000;
    console.info(`gateway flow: devices add → first stored reading in ${seconds.toFixed(2)} s`);

    // The same uuid everywhere: no second enrollment, and status agrees with the cloud.
    expect(agent.logs.join("\n")).not.toMatch(/enrolling again|ENROLL_WINDOW_CLOSED/);
    const status = await agentCli(["status", "--json", "--config", configFile]);
    expect(JSON.parse(status.stdout)).toMatchObject({ identity: { enrolled: true, uuid } });
    await agent.stop();

    // A hand-written config without uuid means the enrolled device, not one derived from the machine id.
    const natural = writeAgentConfig(path.join(gateway, "natural"), {
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
    });
    const doctor = await agentCli(["doctor", "--json", "--config", natural]);
    const results = (JSON.parse(doctor.stdout) as { results: { check: string; status: string; message: string }[] })
      .results;
    expect(results.find((r) => r.check === "certificate")?.status).toBe("ok");
    expect(results.find((r) => r.check === "registration")).toBeUndefined(); // enrolled: nothing to register
    // One that names another uuid stops `run` at once, naming both uuids.
    const other = newUuid();
    const wrong = writeAgentConfig(path.join(gateway, "wrong"), {
      uuid: other,
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
    });
    const refused = await agentCli(["run", "--config", wrong]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      `error CONFIG_INVALID: uuid: is ${other}, but the identity stored in ${dataDir} is for ${uuid}`,
    );
  });
});

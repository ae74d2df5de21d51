import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Doctor, type DoctorResult } from "../../agent/src/doctor/doctor.js";
import { type AgentProcess, agentCli, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, startCloud, tempDir } from "../support/cloud-process.js";
import { registerDevice } from "../support/device-identity.js";

const byCheck = (results: DoctorResult[]) => Object.fromEntries(results.map((r) => [r.check, r]));

describe("fieldgate-agent doctor, against a real cloud", () => {
  let cloud: CloudProcess;
  const agents: AgentProcess[] = [];
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await cloud.stop();
  });
  const config = (dir: string, uuid: string, extra: Record<string, unknown> = {}) =>
    writeAgentConfig(dir, {
      uuid,
      dataDir: path.join(dir, "data"),
      cloud: { url: cloud.url, caFile: cloud.caFile },
      ...extra,
    });

  it("passes every check on a healthy, enrolled, running gateway", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const dir = tempDir("doctor-ok");
    const file = config(dir, uuid, {
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
    });
    const agent = startAgent(file, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    agents.push(agent);
    await agent.waitForLog(/connected to /, 20_000);
    await new Promise((r) => setTimeout(r, 300));
    const out = await agentCli(["doctor", "--config", file, "--json"]);
    const report = JSON.parse(out.stdout) as { ok: boolean; results: DoctorResult[] };
    const checks = byCheck(report.results);
    expect(out.code, out.stdout).toBe(0);
    for (const name of ["config", "dns", "tcp", "tls", "clock", "certificate", "broker"]) {
      expect(checks[name]?.status, `${name}: ${checks[name]?.message}`).toBe("ok");
    }
    // Updates are off by default: a warning that says how to allow them, not a failure.
    expect(checks.updates).toMatchObject({ status: "warning" });
    expect(checks.updates?.message).toContain("disabled");
    expect(checks.updates?.fix).toContain("set updates.enabled to true");
    const human = await agentCli(["doctor", "--config", file]);
    expect(human.stdout).toMatch(/^OK\s+config/m);
  });

  it("tells a not-yet-enrolled device whether its window is open, and a wrong token that it is not recognised", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const open = await new Doctor({
      configFile: config(tempDir("doctor-window"), uuid, { enrollment: { token } }),
    }).run();
    expect(byCheck(open).registration).toMatchObject({ status: "ok" });
    expect(byCheck(open).registration?.message).toContain("window is open until");
    const wrong = await new Doctor({
      configFile: config(tempDir("doctor-wrong"), uuid, { enrollment: { token: "fgt_wrong" } }),
    }).run();
    expect(byCheck(wrong).registration).toMatchObject({ status: "fail" });
    // The check counts no wrong tries: the window is still open for the right token.
    const d = await cloud.api<{ window: { open: boolean; failedAttempts: number } }>("GET", `/api/v1/devices/${uuid}`);
    expect(d.body.window).toEqual(expect.objectContaining({ open: true, failedAttempts: 0 }));
  });

  it("reports a clock more than 5 minutes off as a failure with the fix", async () => {
    const { uuid } = await registerDevice(cloud);
    const file = config(tempDir("doctor-clock"), uuid);
    const results = await new Doctor({ configFile: file, now: () => Date.now() - 10 * 60_000 }).run();
    const clock = byCheck(results).clock;
    expect(clock).toMatchObject({ status: "fail", fix: "set correct UTC time; certificates cannot be validated" });
    expect(clock?.message).toContain("behind the cloud");
  });

  it("fails on a bad config, and on a cloud it cannot reach, with exit code 1", async () => {
    const dir = tempDir("doctor-bad");
    const bad = path.join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ cloud: { url: 42 } }));
    const out = await agentCli(["doctor", "--config", bad, "--json"]);
    expect(out.code).toBe(1);
    expect(byCheck((JSON.parse(out.stdout) as { results: DoctorResult[] }).results).config).toMatchObject({
      status: "fail",
    });
    const unreachable = writeAgentConfig(tempDir("doctor-down"), {
      uuid: "0b6a2f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
      dataDir: path.join(dir, "data"),
      cloud: { url: "https://127.0.0.1:9" },
    });
    const down = await agentCli(["doctor", "--config", unreachable, "--json"]);
    expect(down.code).toBe(1);
    expect(byCheck((JSON.parse(down.stdout) as { results: DoctorResult[] }).results).tcp).toMatchObject({
      status: "fail",
    });
  });
});

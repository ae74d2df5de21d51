import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, cloudBin, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { registerDevice } from "../support/device-identity.js";
import { LENIENT_HEALTH, uploadImage } from "../support/firmware.js";

type Counts = { total: number; succeeded: number; failed: number; cancelled: number; rolledBack: number };
type Rollout = {
  id: number;
  state: string;
  stopReason: string | null;
  currentPhase: number;
  counts: Counts;
  failing?: { device: string; status: string; reason: string | null; rollback: string | null }[];
};
type Job = { id: string; status: string; created: string; firmware: { version: string | null } };
type Behaviour = "ok" | "install-fails" | "never-confirms";

/**
 * Issue #5's phased rollout over 20 real agents: a phase below its success threshold holds, the
 * failure threshold aborts, auto-rollback brings the updated devices back, and the rate holds.
 */
describe("phased rollouts over 20 real agents", () => {
  let cloud: CloudProcess;
  let work: string;
  const agents: AgentProcess[] = [];
  const devices: string[] = [];
  const health = LENIENT_HEALTH;
  // Devices 1 (first rollout), 7 and 8 (second rollout) fail; the rest install cleanly.
  const behaviour = (i: number): Behaviour =>
    i === 1 || i === 7 ? "install-fails" : i === 8 ? "never-confirms" : "ok";

  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [cloudBin, ...args, "--data-dir", cloud.dataDir], { encoding: "utf8" });
  const rollout = async (id: number) => (await cloud.api<Rollout>("GET", `/api/v1/rollouts/${id}`)).body;
  const jobsOf = async (uuid: string) =>
    (await cloud.api<{ items: Job[] }>("GET", `/api/v1/devices/${uuid}/jobs`)).body.items;
  const firmwareOf = async (uuid: string) =>
    (await cloud.api<{ firmwareVersion: string | null }>("GET", `/api/v1/devices/${uuid}`)).body.firmwareVersion;

  const startDevice = async (i: number) => {
    const { uuid, token } = await registerDevice(cloud, { type: "gw-a" });
    const dir = tempDir(`rollout-${i}`);
    const dataDir = path.join(dir, "data");
    // The factory image's version, as a real device would have it recorded.
    fs.mkdirSync(path.join(dataDir, "firmware"), { recursive: true, mode: 0o700 });
    fs.writeFileSync(
      path.join(dataDir, "firmware", "installed.json"),
      `${JSON.stringify({ version: "1.0.0", installedAt: new Date().toISOString() })}\n`,
    );
    const kind = behaviour(i);
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "1h" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
      health,
      updates: {
        enabled: true,
        installer: { type: "script", command: [kind === "install-fails" ? "false" : "true", "{image}"] },
        confirmDeadline: "5s",
        ...(kind === "never-confirms" && { confirmCommand: ["false"] }),
      },
    });
    const agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    agents.push(agent);
    await agent.waitForLog(/connected to /, 60_000);
    return uuid;
  };

  beforeAll(async () => {
    const dataDir = tempDir("rollout-cloud");
    work = tempDir("rollout-work");
    execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir], { stdio: "pipe" });
    cloud = await startCloud({
      dataDir,
      args: ["--firmware-dir", path.join(work, "store"), "--rollout-tick", "200ms"],
    });
    expect(
      (await cloud.api("POST", "/api/v1/device-types", { name: "gw-a", firmwareCompat: "acme-gw-a" })).status,
    ).toBe(201);
    for (const version of ["1.0.0", "2.0.0"]) {
      const up = await uploadImage(cloud, `name=gw-os&version=${version}&compatible=acme-gw-a`, randomBytes(20_000));
      expect(up.status, up.text).toBe(201);
    }
    // Started a few at a time: twenty enrollments at once would only measure this small machine.
    for (let i = 0; i < 20; i += 5) {
      devices.push(...(await Promise.all([0, 1, 2, 3, 4].map((k) => startDevice(i + k)))));
    }
    // Every device has told the cloud the version it runs: auto-rollback needs it.
    await eventually(
      async () => {
        const list = await cloud.api<{ total: number }>("GET", "/api/v1/devices?firmwareVersion=1.0.0&limit=1");
        return list.body.total === 20 ? true : undefined;
      },
      30_000,
      "all 20 devices to report firmware 1.0.0",
    );
  }, 240_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await cloud?.stop();
  });

  it("holds a phase below the success threshold, and goes on when the operator resumes", {
    timeout: 120_000,
  }, async () => {
    const target = devices.slice(0, 5);
    const created = cli(
      "rollouts",
      "create",
      "--firmware",
      "gw-os@2.0.0",
      "--devices",
      target.join(","),
      "--phases",
      "40%,100%",
      "--success-threshold",
      "100%",
      "--json",
    );
    expect(created.status, created.stderr).toBe(0);
    const id = (JSON.parse(created.stdout) as Rollout).id;
    const held = await eventually(
      async () => {
        const r = await rollout(id);
        return r.state === "paused" ? r : undefined;
      },
      60_000,
      "the first phase to hold",
    );
    expect(held).toMatchObject({ stopReason: "SUCCESS_THRESHOLD_NOT_MET", currentPhase: 0 });
    expect(held.failing).toEqual([expect.objectContaining({ device: target[1], reason: "INSTALL_FAILED" })]);
    // The held phase started nothing beyond itself.
    for (const uuid of target.slice(2)) expect(await jobsOf(uuid)).toEqual([]);
    const shown = cli("rollouts", "show", String(id));
    expect(shown.stdout).toMatch(/paused \(SUCCESS_THRESHOLD_NOT_MET\)/);
    expect(shown.stdout).toContain(target[1]);

    const resumed = cli("rollouts", "resume", String(id));
    expect(resumed.status, resumed.stderr).toBe(0);
    const done = await eventually(
      async () => {
        const r = await rollout(id);
        return r.state === "completed" ? r : undefined;
      },
      60_000,
      "the rollout to complete after resume",
    );
    expect(done.counts).toMatchObject({ total: 5, succeeded: 4, failed: 1 });
    for (const uuid of [target[0], ...target.slice(2)]) expect(await firmwareOf(uuid ?? "")).toBe("2.0.0");
    expect(await firmwareOf(target[1] ?? "")).toBe("1.0.0");
    // The device's own view shows the steps of its latest update.
    const device = cli("devices", "show", target[2] ?? "");
    expect(device.stdout).toMatch(/ok 6\. confirming/);
    expect(device.stdout).toMatch(/result: SUCCEEDED/);
  });

  it("aborts at the failure threshold at the configured rate, and auto-rollback brings the updated back", {
    timeout: 150_000,
  }, async () => {
    const target = devices.slice(5);
    const res = await cloud.api<Rollout>("POST", "/api/v1/rollouts", {
      firmware: "gw-os@2.0.0",
      target: { devices: target },
      phases: "2,15",
      successThreshold: "50%",
      failureThreshold: "20%",
      rate: "1/s",
      autoRollback: true,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const aborted = await eventually(
      async () => {
        const r = await rollout(res.body.id);
        return r.state === "aborted" ? r : undefined;
      },
      90_000,
      "the failure threshold to abort the rollout",
    );
    expect(aborted.stopReason).toBe("FAILURE_THRESHOLD");
    // The abort came while installs were still waiting for their turn: they never started.
    expect(aborted.counts.cancelled).toBeGreaterThan(0);
    expect(aborted.failing?.map((f) => f.device)).toContain(target[2]);

    // Every device this rollout updated goes back to 1.0.0; none stays on 2.0.0.
    await eventually(
      async () => {
        const versions = await Promise.all(target.map(firmwareOf));
        return versions.every((v) => v === "1.0.0") ? true : undefined;
      },
      90_000,
      "auto-rollback to bring every updated device back to 1.0.0",
    );
    const final = await rollout(res.body.id);
    expect(final.counts.rolledBack).toBe(final.counts.succeeded);
    expect(final.counts.succeeded).toBeGreaterThanOrEqual(2);
    // The first phase's devices went up and came back down, each step a job of its own.
    for (const uuid of target.slice(0, 2)) {
      expect((await jobsOf(uuid)).map((j) => `${j.firmware.version}:${j.status}`)).toEqual([
        "1.0.0:SUCCEEDED",
        "2.0.0:SUCCEEDED",
      ]);
    }

    // The rate held: no second of the rollout started more than one install (rollbacks are not rate-limited).
    const starts: number[] = [];
    for (const uuid of target) {
      for (const job of await jobsOf(uuid)) if (job.firmware.version === "2.0.0") starts.push(Date.parse(job.created));
    }
    starts.sort((a, b) => a - b);
    for (let i = 1; i < starts.length; i++) {
      expect((starts[i] ?? 0) - (starts[i - 1] ?? 0), "gap between two starts").toBeGreaterThanOrEqual(999);
    }
  });
});

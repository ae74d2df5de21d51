import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, cloudBin, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { registerDevice } from "../support/device-identity.js";
import { LENIENT_HEALTH, uploadImage } from "../support/firmware.js";

type Check = { name: string; status: string; message?: string };
type Step = { status: string; step: string | null; reason: string | null; checks: Check[] | null };
type Job = {
  id: string;
  status: string;
  step: string | null;
  reason: string | null;
  message: string | null;
  checks: Check[] | null;
  steps?: Step[];
};

/** Issue #5 end to end: an operator starts a job, the real agent runs it, the cloud keeps the report. */
describe("single-device firmware update, real cloud and agents", () => {
  let cloud: CloudProcess;
  const agents: AgentProcess[] = [];
  let work: string;
  const image = randomBytes(30_000);
  const sha256 = createHash("sha256").update(image).digest("hex");

  const health = LENIENT_HEALTH;

  const startDevice = async (
    name: string,
    updates: Record<string, unknown>,
    deviceHealth: Record<string, unknown> = health,
  ) => {
    const { uuid, token } = await registerDevice(cloud, { type: "gw-a" });
    const dir = tempDir(name);
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir: path.join(dir, "data"),
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "1h" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
      health: deviceHealth,
      updates,
    });
    const agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    agents.push(agent);
    await agent.waitForLog(/connected to /, 20_000);
    return uuid;
  };
  const job = async (uuid: string, id: string) =>
    (await cloud.api<Job>("GET", `/api/v1/devices/${uuid}/jobs/${id}`)).body;
  const ended = (uuid: string, id: string) =>
    eventually(
      async () => {
        const j = await job(uuid, id);
        return ["SUCCEEDED", "FAILED", "ROLLED_BACK", "REJECTED"].includes(j.status) ? j : undefined;
      },
      30_000,
      `job ${id} to end`,
    );

  beforeAll(async () => {
    const dataDir = tempDir("upd-cloud");
    work = tempDir("upd-work");
    execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir], { stdio: "pipe" });
    cloud = await startCloud({ dataDir, args: ["--firmware-dir", path.join(work, "store")] });
    const type = await cloud.api("POST", "/api/v1/device-types", { name: "gw-a", firmwareCompat: "acme-gw-a" });
    expect(type.status).toBe(201);
    const up = await uploadImage(cloud, "name=gw-os&version=2.0.0&compatible=acme-gw-a", image);
    expect(up.status, up.text).toBe(201);
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    await cloud?.stop();
  });

  it("runs a job to SUCCEEDED: every step is in the cloud's report and the script got the image", {
    timeout: 60_000,
  }, async () => {
    const out = path.join(work, "installed");
    fs.mkdirSync(out);
    const script = path.join(work, "install.sh");
    fs.writeFileSync(script, `#!/bin/sh\ncp "$1" "${out}/image.bin"\necho "installed $1"\n`, { mode: 0o755 });
    const uuid = await startDevice("upd-agent", {
      enabled: true,
      installer: { type: "script", command: [script, "{image}"] },
    });

    const created = await cloud.api<Job>("POST", `/api/v1/devices/${uuid}/jobs`, { firmware: "gw-os@2.0.0" });
    expect(created.status, created.text).toBe(201);
    expect(created.body.id).toMatch(/^job-/);

    const done = await ended(uuid, created.body.id);
    expect(done.status, JSON.stringify(done)).toBe("SUCCEEDED");
    const steps = (done.steps ?? []).filter((s) => s.status === "IN_PROGRESS").map((s) => s.step);
    for (const step of ["CHECKING_PERMISSIONS", "DOWNLOADING", "VERIFYING", "INSTALLING", "ACTIVATING", "CONFIRMING"]) {
      expect(steps, step).toContain(step);
    }
    expect(done.steps?.[0]?.status).toBe("QUEUED");
    const received = fs.readFileSync(path.join(out, "image.bin"));
    expect(createHash("sha256").update(received).digest("hex")).toBe(sha256);

    const list = await cloud.api<{ items: Job[] }>("GET", `/api/v1/devices/${uuid}/jobs`);
    expect(list.body.items.map((j) => j.id)).toEqual([created.body.id]);
  });

  it("a busy gateway confirms good firmware; a failing program check is shown in the cloud while CONFIRMING and named by the rollback", {
    timeout: 90_000,
  }, async () => {
    const broken = Buffer.concat([Buffer.from("BROKEN"), randomBytes(1000)]);
    const up = await uploadImage(cloud, "name=gw-os&version=3.0.0&compatible=acme-gw-a", broken);
    expect(up.status, up.text).toBe(201);
    const out = path.join(work, "gate-installed");
    fs.mkdirSync(out);
    const script = path.join(work, "gate-install.sh");
    fs.writeFileSync(script, `#!/bin/sh\ncp "$1" "${out}/image.bin"\n`, { mode: 0o755 });
    // The device's own program: stops (Nagios critical) when the installed image is the broken one.
    const check = path.join(work, "plc-program.mjs");
    fs.writeFileSync(
      check,
      `import { readFileSync } from "node:fs";\nlet head = "";\ntry { head = readFileSync(process.argv[2]).subarray(0, 6).toString(); } catch {}\nif (head === "BROKEN") { console.log("PLC program stopped: image rejected"); process.exit(2); }\nconsole.log("PLC program running");\n`,
    );
    const uuid = await startDevice(
      "upd-gate",
      { enabled: true, installer: { type: "script", command: [script, "{image}"] }, confirmDeadline: "12s" },
      {
        ...health,
        // Load and memory are critical all along: a busy gateway, which is no reason to roll back.
        loadPerCoreWarn: 0,
        loadPerCoreCrit: 0,
        memoryUsedWarnPct: 0,
        memoryUsedCritPct: 0,
        commands: [
          {
            name: "plc-program",
            command: [process.execPath, check, path.join(out, "image.bin")],
            interval: "300ms",
          },
        ],
      },
    );
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [cloudBin, ...args, "--data-dir", cloud.dataDir], { encoding: "utf8" });

    const good = await cloud.api<Job>("POST", `/api/v1/devices/${uuid}/jobs`, { firmware: "gw-os@2.0.0" });
    expect(good.status, good.text).toBe(201);
    const confirmed = await ended(uuid, good.body.id);
    expect(confirmed.status, JSON.stringify(confirmed)).toBe("SUCCEEDED");

    // The operator starts it with --wait, which prints each report as it comes, and watches meanwhile.
    const wait = spawn(
      process.execPath,
      [cloudBin, "devices", "update", uuid, "--firmware", "gw-os@3.0.0", "--wait", "--data-dir", cloud.dataDir],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let waitOut = "";
    let waitErr = "";
    wait.stdout.on("data", (c: Buffer) => {
      waitOut += c.toString("utf8");
    });
    wait.stderr.on("data", (c: Buffer) => {
      waitErr += c.toString("utf8");
    });
    const waitExit = new Promise<number | null>((resolve) => wait.on("close", resolve));
    const badId = await eventually(() => /job (job-[0-9a-f]+) created/.exec(waitOut)?.[1], 20_000, "the job id");
    const waiting = await eventually(
      async () => {
        const j = await job(uuid, badId);
        return j.status === "IN_PROGRESS" && j.checks?.length ? j : undefined;
      },
      20_000,
      "the job to wait on a check in CONFIRMING",
    );
    expect(waiting).toMatchObject({
      step: "CONFIRMING",
      checks: [{ name: "command.plc-program", status: "critical", message: "PLC program stopped: image rejected" }],
    });
    // The built-in load and memory checks are critical too, but they are no gate.
    expect(waiting.checks?.map((c) => c.name)).toEqual(["command.plc-program"]);
    const shown = cli("devices", "jobs", uuid, badId);
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(
      'CONFIRMING 6/6, waiting on health: check "command.plc-program" critical: PLC program stopped: image rejected',
    );
    const listed = cli("devices", "jobs", uuid);
    expect(listed.stdout).toContain("CONFIRMING 6/6, waiting on command.plc-program");
    const device = cli("devices", "show", uuid);
    expect(device.stdout).toContain(
      'waiting on health: check "command.plc-program" critical: PLC program stopped: image rejected',
    );

    const rolled = await ended(uuid, badId);
    expect(rolled, JSON.stringify(rolled)).toMatchObject({ status: "ROLLED_BACK", reason: "HEALTH_NOT_OK" });
    expect(rolled.message).toMatch(/^check "command\.plc-program" critical: PLC program stopped: image rejected/);
    expect(rolled.steps?.some((s) => s.step === "CONFIRMING" && s.checks?.[0]?.name === "command.plc-program")).toBe(
      true,
    );
    expect(await waitExit, waitErr).toBe(1);
    expect(waitOut).toContain(
      'IN_PROGRESS CONFIRMING 6/6, waiting on health: check "command.plc-program" critical: PLC program stopped: image rejected',
    );
    expect(waitErr).toMatch(/HEALTH_NOT_OK.*check "command\.plc-program" critical/);
    const after = cli("devices", "jobs", uuid, badId);
    expect(after.stdout).toMatch(/ROLLED_BACK .*HEALTH_NOT_OK: check "command\.plc-program" critical/);
  });

  it("answers FAILED UPDATES_DISABLED from a device with updates off, visible in the cloud", async () => {
    const uuid = await startDevice("upd-off", { enabled: false });
    // Through the CLI: --wait prints the steps and exits non-zero with the job's reason.
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [cloudBin, ...args, "--data-dir", cloud.dataDir], { encoding: "utf8" });
    const update = cli("devices", "update", uuid, "--firmware", "gw-os@2.0.0", "--wait");
    expect(update.status, update.stdout + update.stderr).toBe(1);
    expect(update.stdout).toMatch(/CHECKING_PERMISSIONS/);
    expect(update.stderr).toMatch(/UPDATES_DISABLED/);
    const jobs = cli("devices", "jobs", uuid, "--json");
    expect(jobs.status, jobs.stderr).toBe(0);
    const [listed] = (JSON.parse(jobs.stdout) as { items: Job[] }).items;
    const done = await job(uuid, listed?.id ?? "");
    expect(done).toMatchObject({ status: "FAILED", reason: "UPDATES_DISABLED" });
    expect(done.steps?.map((s) => s.step)).toContain("CHECKING_PERMISSIONS");
  });

  it("refuses an unknown image and one not made for the device's type", async () => {
    const { uuid } = await registerDevice(cloud, { type: "gw-a" });
    const missing = await cloud.api<{ error: { code: string } }>("POST", `/api/v1/devices/${uuid}/jobs`, {
      firmware: "gw-os@9.9.9",
    });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("FIRMWARE_NOT_FOUND");
    const other = await uploadImage(cloud, "name=other&version=1.0.0&compatible=acme-gw-b", randomBytes(100));
    expect(other.status).toBe(201);
    const wrong = await cloud.api<{ error: { code: string } }>("POST", `/api/v1/devices/${uuid}/jobs`, {
      firmware: "other@1.0.0",
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.code).toBe("FIRMWARE_INCOMPATIBLE");
  });
});

import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, eventually, repoRoot, startCloud, tempDir } from "../support/cloud-process.js";
import { uploadImage } from "../support/firmware.js";

const run = promisify(execFile);
const simBin = path.join(repoRoot, "agent/dist/sim/main.js");

type Job = { id: string; status: string; reason: string | null };
type Page = { count: number; items: { name: string; value: number; seq: number; stream: string }[] };
interface Summary {
  devices: number;
  enrollment: { registered: number; enrolled: number; failed: number } | null;
  connect: { connected: number; failed: number; connackMs: { count: number } };
  telemetry: { produced: number; acked: number; pending: number; storedLatencyMs: { count: number } };
  updates: {
    received: number;
    succeeded: number;
    failed: number;
    corrupt: number;
    interrupted: number;
    resumed: number;
  };
}

/** Issue #7: `fieldgate-sim` at a small N against a real cloud; its summary must match what the cloud stored. */
describe("fieldgate-sim against a real cloud", () => {
  let cloud: CloudProcess;
  let fleetDir: string;

  const sim = async (...args: string[]) => {
    const { stdout, stderr } = await run(
      process.execPath,
      [simBin, "--cloud-data-dir", cloud.dataDir, "--fleet-dir", fleetDir, "--progress-interval", "500ms", ...args],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    return { summary: JSON.parse(stdout) as Summary, progress: stderr };
  };
  const fleet = () =>
    (JSON.parse(fs.readFileSync(path.join(fleetDir, "fleet.json"), "utf8")) as { devices: string[] }).devices;
  const stored = async (uuid: string) => {
    const page = await cloud.api<Page>("GET", `/api/v1/devices/${uuid}/telemetry?name=sim.counter&limit=10000`);
    return page.body.items.map((r) => r.value).sort((a, b) => a - b);
  };

  beforeAll(async () => {
    const dataDir = tempDir("sim-cloud");
    fleetDir = tempDir("sim-fleet");
    execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir], { stdio: "pipe" });
    cloud = await startCloud({ dataDir, args: ["--firmware-dir", path.join(dataDir, "store")] });
    const type = await cloud.api("POST", "/api/v1/device-types", { name: "sim-gw", firmwareCompat: "acme-sim" });
    expect(type.status).toBe(201);
  });
  afterAll(async () => {
    await cloud?.stop();
  });

  it("enrolls a fleet, publishes, and every reading it counts as acknowledged is stored exactly once", {
    timeout: 60_000,
  }, async () => {
    const { summary, progress } = await sim(
      "--devices",
      "4",
      "--enroll",
      "--type",
      "sim-gw",
      "--rate",
      "50",
      "--batch",
      "20",
      "--duration",
      "2s",
    );
    expect(summary.enrollment).toMatchObject({ registered: 4, enrolled: 4, failed: 0 });
    expect(summary.connect).toMatchObject({ connected: 4, failed: 0 });
    expect(summary.telemetry.produced).toBe(4 * 100);
    expect(summary.telemetry.acked).toBe(summary.telemetry.produced);
    expect(summary.telemetry.pending).toBe(0);
    expect(summary.telemetry.storedLatencyMs.count).toBeGreaterThan(0);
    expect(progress).toMatch(/connected 4\/4/);

    const uuids = fleet();
    expect(uuids).toHaveLength(4);
    for (const uuid of uuids) {
      const device = await cloud.api<{ uuid: string }>("GET", `/api/v1/devices/${uuid}`);
      expect(device.status).toBe(200);
      // Each device's counter: 1..100, once each.
      expect(await stored(uuid)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    }
  });

  it("runs update jobs on the stored identities: --fail-updates fails its share, cut downloads resume intact", {
    timeout: 90_000,
  }, async () => {
    const image = randomBytes(200_000);
    const up = await uploadImage(cloud, "name=sim-os&version=1.0.0&compatible=acme-sim", image);
    expect(up.status, up.text).toBe(201);
    const uuids = fleet();
    const jobs = new Map<string, string>();
    for (const uuid of uuids) {
      const created = await cloud.api<Job>("POST", `/api/v1/devices/${uuid}/jobs`, { firmware: "sim-os@1.0.0" });
      expect(created.status, created.text).toBe(201);
      jobs.set(uuid, created.body.id);
    }
    // No --enroll: the second run reconnects with the identities the first one stored; the cloud
    // sends the waiting jobs on subscribe.
    const { summary } = await sim(
      "--devices",
      "4",
      "--rate",
      "10",
      "--fail-updates",
      "50%",
      "--kill-downloads",
      "25%",
      "--expect-jobs",
      "4",
      "--duration",
      "60s",
    );
    expect(summary.enrollment).toBeNull();
    expect(summary.connect).toMatchObject({ connected: 4, failed: 0 });
    expect(summary.updates).toMatchObject({
      received: 4,
      succeeded: 2,
      failed: 2,
      corrupt: 0,
      interrupted: 1,
      resumed: 1,
    });

    const statuses = await Promise.all(
      uuids.map((uuid) =>
        eventually(
          async () => {
            const job = (await cloud.api<Job>("GET", `/api/v1/devices/${uuid}/jobs/${jobs.get(uuid)}`)).body;
            return job.status === "SUCCEEDED" || job.status === "FAILED" ? job : undefined;
          },
          10_000,
          `job of ${uuid}`,
        ),
      ),
    );
    expect(statuses.filter((j) => j.status === "SUCCEEDED")).toHaveLength(2);
    expect(statuses.filter((j) => j.status === "FAILED").map((j) => j.reason)).toEqual([
      "INSTALL_FAILED",
      "INSTALL_FAILED",
    ]);

    // The counters continued from the first run's outboxes: still exactly once, no gaps.
    for (const uuid of uuids) {
      const values = await stored(uuid);
      expect(values).toEqual(Array.from({ length: values.length }, (_, i) => i + 1));
    }
    const total = (await Promise.all(uuids.map(stored))).reduce((sum, v) => sum + v.length, 0);
    expect(total).toBe(4 * 100 + summary.telemetry.acked);
  });

  it("refuses a run on a fleet directory that holds fewer devices, naming the flag", async () => {
    const failure = await sim("--devices", "9", "--duration", "1s").catch(
      (err: { code: number; stderr: string }) => err,
    );
    expect(failure).toMatchObject({ code: 2 });
    expect((failure as { stderr: string }).stderr).toMatch(/CONFIG_INVALID.*--enroll.*\(field: fleet-dir\)/);
  });
});

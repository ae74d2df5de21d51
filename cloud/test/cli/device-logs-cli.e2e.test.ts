import { execFile, spawn } from "node:child_process";
import readline from "node:readline";
import { promisify } from "node:util";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, eventually, startCloud } from "../../../test/support/cloud-process.js";
import { connectDevice, type EnrolledDevice, registerAndEnroll } from "../../../test/support/device-identity.js";

const run = promisify(execFile);

function publish(client: MqttClient, topic: string, payload: unknown): Promise<void> {
  return new Promise((resolve, reject) =>
    client.publish(topic, JSON.stringify(payload), { qos: 1 }, (err) => (err ? reject(err) : resolve())),
  );
}

describe("fieldgate-cloud devices logs / config (operator CLI)", () => {
  let cloud: CloudProcess;
  let device: EnrolledDevice;
  let client: MqttClient;
  const env = () => ({ ...process.env, FIELDGATE_URL: cloud.url });
  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [cloudBin, ...args, "--data-dir", cloud.dataDir], {
        env: env(),
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  const logs = (entries: { ts: number; level: string; msg: string }[]) =>
    publish(client, `fieldgate/v1/${device.uuid}/logs`, { v: 1, entries });

  beforeAll(async () => {
    cloud = await startCloud();
    device = await registerAndEnroll(cloud);
    client = await connectDevice(cloud, device, device.uuid);
    const now = Date.now();
    await logs([
      { ts: now - 7_200_000, level: "info", msg: "two hours ago" },
      { ts: now - 1000, level: "debug", msg: "recent debug" },
      { ts: now, level: "error", msg: "recent error" },
    ]);
  });
  afterAll(async () => {
    client?.end(true);
    await cloud.stop();
  });

  it("prints lines oldest first, filtered by level and by a duration back from now", async () => {
    const all = await cli("devices", "logs", device.uuid);
    expect(all.code).toBe(0);
    const lines = all.stdout.trim().split("\n");
    expect(lines.map((l) => l.replace(/^\S+ /, ""))).toEqual([
      "INFO  two hours ago",
      "DEBUG recent debug",
      "ERROR recent error",
    ]);
    const recentInfo = await cli("devices", "logs", device.uuid, "--since", "1h", "--level", "info");
    expect(recentInfo.stdout.trim().split("\n")).toHaveLength(1);
    expect(recentInfo.stdout).toContain("recent error");
    const bad = await cli("devices", "logs", device.uuid, "--since", "yesterday-ish");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("VALIDATION_FAILED");
  });

  it("--follow prints new lines as they arrive until interrupted", async () => {
    const child = spawn(
      process.execPath,
      [cloudBin, "devices", "logs", device.uuid, "--follow", "--data-dir", cloud.dataDir],
      {
        env: env(),
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const out: string[] = [];
    readline.createInterface({ input: child.stdout }).on("line", (l) => out.push(l));
    await eventually(() => (out.some((l) => l.includes("recent error")) ? true : undefined), 10_000, "the first page");
    await logs([{ ts: Date.now(), level: "warn", msg: "arrived while following" }]);
    await eventually(() => (out.some((l) => l.includes("arrived while following")) ? true : undefined), 10_000);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(out.filter((l) => l.includes("recent error"))).toHaveLength(1);
  });

  it("sets and shows the desired config; flags keep the other keys; bad levels are refused", async () => {
    const set = await cli("devices", "config", "set", device.uuid, "--log-level", "debug");
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/desired version:\s+1/);
    expect(set.stdout).toMatch(/state:\s+pending/);
    const more = await cli("devices", "config", "set", device.uuid, "--forward-level", "warn", "--json");
    expect(JSON.parse(more.stdout)).toMatchObject({
      version: 2,
      desired: { logLevel: "debug", logForward: { level: "warn" } },
    });
    const bad = await cli("devices", "config", "set", device.uuid, "--log-level", "loud");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/VALIDATION_FAILED.*logLevel/);
    await publish(client, `fieldgate/v1/${device.uuid}/config/reported`, {
      v: 1,
      ts: Date.now(),
      version: 2,
      logLevel: "debug",
      forwardLevel: "warn",
    });
    const show = await cli("devices", "config", "show", device.uuid);
    expect(show.stdout).toMatch(/state:\s+applied/);
    expect(show.stdout).toContain("log level debug, forwarding warn and above");
  });
});

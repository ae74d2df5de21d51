import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { SerialPort } from "serialport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, agentCli, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, cloudBin, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { registerDevice } from "../support/device-identity.js";
import { ModbusSlave } from "../support/modbus-slave.js";
import { createPtyPair, type PtyPair } from "../support/pty-pair.js";

const run = promisify(execFile);

type Reading = { name: string; value: unknown; source: string | null; unit: string | null };
type ConfigView = {
  version: number;
  state: string;
  reported: { version: number; links?: string[]; linksFrom?: string; rejectedVersion?: number; error?: string } | null;
};
type LinkView = { id: string; state: string; counters: { readings: number }; lastReading?: unknown };

describe("device links desired from the cloud, with real processes and kernel ptys", () => {
  let cloud: CloudProcess;
  let agent: AgentProcess;
  let uuid: string;
  let token: string;
  let configFile: string;
  let dir: string;
  let thermoPty: PtyPair;
  let meterPty: PtyPair;
  let thermoSim: SerialPort;
  let thermoTimer: NodeJS.Timeout;
  let meter: ModbusSlave;

  const thermoFile = () => ({
    id: "thermo",
    type: "serial",
    // The pty itself (/dev/pts/N): the cloud accepts only device nodes under /dev.
    path: fs.realpathSync(thermoPty.device),
    reconnectMin: "200ms",
    reconnectMax: "1s",
    protocol: { type: "lines", format: "kv" },
  });
  const meterLink = () => ({
    id: "meter",
    type: "serial",
    path: fs.realpathSync(meterPty.device),
    baudRate: 19200,
    protocol: {
      type: "modbus-rtu",
      interval: "300ms",
      timeout: "300ms",
      poll: [{ unitId: 1, function: "holding", address: 0, scale: 0.1, name: "voltage", unit: "V" }],
    },
  });
  const telemetry = async (source: string) =>
    (await cloud.api<{ items: Reading[] }>("GET", `/api/v1/devices/${uuid}/telemetry?source=${source}&limit=1000`)).body
      .items;
  const configView = async () => (await cloud.api<ConfigView>("GET", `/api/v1/devices/${uuid}/config`)).body;
  const links = async () => {
    const out = await agentCli(["links", "--json", "--config", configFile]);
    expect(out.code, out.stderr).toBe(0);
    return (JSON.parse(out.stdout) as { links: LinkView[] }).links;
  };
  const cloudCli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [cloudBin, ...args, "--data-dir", cloud.dataDir]);
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  beforeAll(async () => {
    cloud = await startCloud();
    ({ uuid, token } = await registerDevice(cloud));
    dir = tempDir("agent-links");
    thermoPty = await createPtyPair(dir, "thermo");
    meterPty = await createPtyPair(dir, "meter");
    // The thermometer talks both ways a config may ask for: key=value lines, and JSON lines.
    thermoSim = new SerialPort({ path: thermoPty.sim, baudRate: 9600, autoOpen: false });
    await new Promise<void>((resolve, reject) => thermoSim.open((err) => (err ? reject(err) : resolve())));
    thermoSim.on("error", () => {});
    thermoTimer = setInterval(() => thermoSim.write('temp=21.5 hum=40\n{"pressure": 1013}\n'), 200);
    meter = new ModbusSlave(meterPty.sim);
    meter.units.set(1, { holding: { 0: 2305 } });
    await meter.open();
    configFile = writeAgentConfig(dir, {
      uuid,
      dataDir: path.join(dir, "data"),
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "1h", publishInterval: "200ms" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
      health: { checkInterval: "1s" },
      links: [thermoFile()],
      // socat's ptys are /dev/pts/N, outside the default allow-list: this gateway allows them.
      linkPaths: ["/dev/pts/*"],
    });
    agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    await agent.waitForLog(/connected to /, 30_000);
  });
  afterAll(async () => {
    clearInterval(thermoTimer);
    await agent?.stop();
    await cloud?.stop();
    await new Promise<void>((resolve) => (thermoSim?.isOpen ? thermoSim.close(() => resolve()) : resolve()));
    await meter?.close();
    await thermoPty?.close();
    await meterPty?.close();
  });

  it("runs the config file's links and stores their readings in the cloud with the link id as source", async () => {
    const hum = await eventually(
      async () => (await telemetry("thermo")).find((r) => r.name === "hum"),
      30_000,
      "thermo readings in the cloud",
    );
    expect(hum).toMatchObject({ value: 40, source: "thermo" });
    // For a kv link the JSON lines are framing errors: they give no readings.
    expect((await telemetry("thermo")).some((r) => r.name === "pressure")).toBe(false);
    const [thermo] = await links();
    expect(thermo).toMatchObject({ id: "thermo", state: "connected" });
    expect(thermo?.counters.readings).toBeGreaterThan(0);
    const view = await eventually(async () => ((await configView()).reported ? configView() : undefined), 15_000);
    expect(view.reported).toMatchObject({ version: 0, links: ["thermo"], linksFrom: "file" });
    // Link states are health checks.
    const status = await eventually(async () => {
      const out = await agentCli(["status", "--json", "--config", configFile]);
      const s = JSON.parse(out.stdout) as { daemon: { health?: { checks: { name: string; status: string }[] } } };
      return s.daemon.health?.checks.find((c) => c.name === "link.thermo");
    }, 15_000);
    expect(status.status).toBe("ok");
  }, 120_000);

  it("adds, changes and removes links live from the cloud (devices config set --file), without a restart", async () => {
    const file = path.join(dir, "links.json");
    fs.writeFileSync(
      file,
      JSON.stringify({ links: [{ ...thermoFile(), protocol: { type: "lines", format: "json" } }, meterLink()] }),
    );
    const set = await cloudCli("devices", "config", "set", uuid, "--file", file, "--wait");
    expect(set.code, set.stdout + set.stderr).toBe(0);
    const applied = await eventually(async () => {
      const v = await configView();
      return v.state === "applied" && v.reported?.links?.length === 2 ? v : undefined;
    }, 20_000);
    expect(applied.reported).toMatchObject({ links: ["thermo", "meter"], linksFrom: "cloud" });
    const voltage = await eventually(
      async () => (await telemetry("meter")).find((r) => r.name === "voltage"),
      30_000,
      "meter readings",
    );
    expect(voltage).toMatchObject({ value: 230.5, unit: "V", source: "meter" });
    // thermo was restarted with format json: now the JSON lines give readings.
    await eventually(async () => (await telemetry("thermo")).find((r) => r.name === "pressure"), 30_000, "json");
    const show = await cloudCli("devices", "config", "show", uuid);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain("thermo (serial), meter (serial)");

    const removed = await cloud.api<ConfigView>("PUT", `/api/v1/devices/${uuid}/config`, { links: [meterLink()] });
    expect(removed.status).toBe(200);
    await eventually(async () => ((await links()).map((l) => l.id).join() === "meter" ? true : undefined), 20_000);
    await eventually(async () => ((await configView()).state === "applied" ? true : undefined), 20_000);
    expect(agent.child.exitCode).toBeNull();
  }, 120_000);

  it("refuses an invalid links config at the API, naming the field", async () => {
    const dup = await cloud.api<{ error: { code: string; field: string } }>("PUT", `/api/v1/devices/${uuid}/config`, {
      links: [meterLink(), { ...meterLink(), path: "/dev/ttyS9" }],
    });
    expect(dup.status).toBe(400);
    expect(dup.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "links[1].id" });
    const bad = await cloud.api<{ error: { field: string } }>("PUT", `/api/v1/devices/${uuid}/config`, {
      links: [{ ...meterLink(), protocol: { ...meterLink().protocol, poll: [{ unitId: 1, function: "holding" }] } }],
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe("links[0].protocol.poll[0].address");
    // A serial path outside /dev, or climbing out of it, is refused when saved: the agent runs as root.
    for (const where of ["/etc/shadow", "/dev/../etc/shadow", "/dev/./ttyS0", "/dev//ttyS0", "dev/ttyS0", "/dev/"]) {
      const outside = await cloud.api<{ error: { code: string; field: string; message: string } }>(
        "PUT",
        `/api/v1/devices/${uuid}/config`,
        { links: [{ ...meterLink(), path: where }] },
      );
      expect(outside.status, where).toBe(400);
      expect(outside.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "links[0].path" });
      expect(outside.body.error.message).toContain("must be a device node under /dev such as /dev/ttyUSB0");
    }
  });

  it("rejects a desired config it cannot apply, reports the field, and keeps the last good links", async () => {
    // A cloud newer than the agent may store a protocol this agent does not know: write one
    // behind the API's back, then reconnect the agent so the cloud sends it again.
    const db = new Database(path.join(cloud.dataDir, "fieldgate.db"));
    db.pragma("busy_timeout = 5000");
    const device = db.prepare("SELECT id FROM devices WHERE uuid = ?").get(uuid) as { id: number };
    const future = { links: [{ ...meterLink(), protocol: { type: "modbus-tcp", host: "10.0.0.9" } }] };
    db.prepare("UPDATE device_config SET version = version + 1, desired_json = ? WHERE device_id = ?").run(
      JSON.stringify(future),
      device.id,
    );
    const { version } = db.prepare("SELECT version FROM device_config WHERE device_id = ?").get(device.id) as {
      version: number;
    };
    db.close();
    expect(await agent.stop()).toBe(0);
    const down = await agentCli(["links", "--config", configFile]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("LINK_AGENT_UNREACHABLE");
    agent = startAgent(configFile);
    // This cloud's own schema does not know modbus-tcp, so its API cannot show the config: read
    // what the device reported straight from the table the API reads.
    const reported = await eventually(
      () => {
        const conn = new Database(path.join(cloud.dataDir, "fieldgate.db"), { readonly: true });
        try {
          const row = conn
            .prepare("SELECT config_reported_json AS json FROM device_state WHERE device_id = ?")
            .get(device.id) as { json: string | null } | undefined;
          const r = row?.json ? (JSON.parse(row.json) as NonNullable<ConfigView["reported"]>) : undefined;
          return r?.rejectedVersion === version ? r : undefined;
        } finally {
          conn.close();
        }
      },
      30_000,
      "the agent to report the rejection",
    );
    expect(reported.error).toContain("links[0].protocol.type");
    expect(reported.version).toBe(version - 1);
    expect(reported.links).toEqual(["meter"]);
    const kept = await eventually(async () => {
      const l = await links();
      return l.length === 1 && l[0]?.state === "connected" ? l : undefined;
    }, 20_000);
    expect(kept[0]?.id).toBe("meter");
    const human = await eventually(async () => {
      const out = await agentCli(["links", "--config", configFile]);
      return /last reading voltage=230.5 V/.test(out.stdout) ? out.stdout : undefined;
    }, 20_000);
    expect(human).toMatch(/^meter {2}serial {2}connected since/m);
    expect(human).toMatch(/counters {5}readings \d+, framing errors \d+, reconnects \d+/);
  }, 120_000);
});

import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import path from "node:path";
import { promisify } from "node:util";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, cloudBin, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { connectDevice, type EnrolledDevice, enrollWithToken, registerDevice } from "../support/device-identity.js";
import { uploadImage } from "../support/firmware.js";

const run = promisify(execFile);

type Job = { id: string; status: string; reason: string | null; message: string | null };

function publish(client: MqttClient, topic: string, payload: unknown): Promise<void> {
  return new Promise((resolve, reject) =>
    client.publish(topic, JSON.stringify(payload), { qos: 1 }, (err) => (err ? reject(err) : resolve())),
  );
}

/** Every file and directory under `root` whose mode is not owner-only (0600 files, 0700 directories). */
function looseModes(root: string): string[] {
  const loose: string[] = [];
  const walk = (p: string) => {
    const stat = fs.lstatSync(p);
    const mode = stat.mode & 0o777;
    const want = stat.isDirectory() ? 0o700 : 0o600;
    if (mode !== want) loose.push(`${path.relative(root, p) || "."} ${mode.toString(8)}`);
    if (stat.isDirectory()) for (const name of fs.readdirSync(p)) walk(path.join(p, name));
  };
  walk(root);
  return loose;
}

/** Issue #12: file modes, stored images that differ from their manifest, control characters shown. */
describe("cloud hardening: file modes, firmware integrity, terminal-safe output (real cloud)", () => {
  let cloud: CloudProcess;
  let agent: AgentProcess | undefined;
  let dataDir: string;
  let storeDir: string;
  const clients: MqttClient[] = [];
  const cli = async (...args: string[]) => {
    const { stdout } = await run(process.execPath, [cloudBin, ...args, "--data-dir", cloud.dataDir], {
      env: { ...process.env, NO_COLOR: "1" },
    });
    return stdout;
  };
  const enrolled = async (): Promise<EnrolledDevice> => {
    const { uuid, token } = await registerDevice(cloud, { type: "gw-h" });
    return enrollWithToken(cloud, uuid, token);
  };
  const job = async (uuid: string, id: string) =>
    (await cloud.api<Job>("GET", `/api/v1/devices/${uuid}/jobs/${id}`)).body;

  beforeAll(async () => {
    const root = tempDir("harden");
    // Neither directory exists before the cloud makes them: their modes are the cloud's own.
    dataDir = path.join(root, "data");
    storeDir = path.join(root, "store");
    execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir], { stdio: "pipe" });
    cloud = await startCloud({ dataDir, args: ["--firmware-dir", storeDir] });
    const type = await cloud.api("POST", "/api/v1/device-types", { name: "gw-h", firmwareCompat: "acme-gw-h" });
    expect(type.status, JSON.stringify(type.body)).toBe(201);
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await agent?.stop();
    await cloud?.stop();
  });

  describe("a stored image that differs from its manifest", () => {
    let device: EnrolledDevice;
    let keepAlive: https.Agent;
    /** A GET over mTLS on one keep-alive connection; `reused` says whether it rode the previous request's socket. */
    const get = (urlPath: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; body: Buffer; reused: boolean }>((resolve, reject) => {
        const req = https.get(new URL(urlPath, cloud.url), { agent: keepAlive, headers, timeout: 10_000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), reused: req.reusedSocket }),
          );
          res.on("error", reject);
        });
        req.on("timeout", () => req.destroy(new Error(`no complete answer to ${urlPath} in 10 s`)));
        req.on("error", reject);
      });

    beforeAll(async () => {
      device = await enrolled();
      keepAlive = new https.Agent({
        keepAlive: true,
        maxSockets: 1,
        ca: cloud.caPem,
        key: device.keyPem,
        cert: device.certPem,
      });
    });
    afterAll(() => keepAlive.destroy());

    const cases: [string, string, (file: string) => void][] = [
      ["truncated", "1.0.1", (file) => fs.truncateSync(file, 1000)],
      ["extended", "1.0.2", (file) => fs.appendFileSync(file, randomBytes(100))],
      [
        "one byte flipped",
        "1.0.3",
        (file) => {
          const bytes = fs.readFileSync(file);
          bytes[10] = (bytes[10] ?? 0) ^ 0xff;
          fs.writeFileSync(file, bytes);
        },
      ],
    ];
    for (const [what, version, tamper] of cases) {
      it(`${what}: a clean FIRMWARE_IMAGE_CORRUPT (whole and Range), the connection still works, the job FAILED`, {
        timeout: 30_000,
      }, async () => {
        const image = randomBytes(4000);
        const up = await uploadImage(cloud, `name=gw-os&version=${version}&compatible=acme-gw-h`, image);
        expect(up.status, up.text).toBe(201);
        const created = await cloud.api<Job>("POST", `/api/v1/devices/${device.uuid}/jobs`, {
          firmware: `gw-os@${version}`,
        });
        expect(created.status, JSON.stringify(created.body)).toBe(201);
        const imageUrl = `/api/v1/firmware/gw-os/${version}/image`;
        // Served whole while intact, which also verifies (and caches) its sha256.
        const intact = await get(imageUrl);
        expect(intact.status).toBe(200);
        expect(intact.body.equals(image)).toBe(true);

        const [org] = fs.readdirSync(storeDir).filter((name) => !name.startsWith("."));
        tamper(path.join(storeDir, org ?? "", "gw-os", version, "image.bin"));

        for (const headers of [{}, { range: "bytes=100-" }] as Record<string, string>[]) {
          const answer = await get(imageUrl, headers);
          expect(answer.status, JSON.stringify(headers)).toBe(500);
          const error = (JSON.parse(answer.body.toString("utf8")) as { error: { code: string; message: string } })
            .error;
          expect(error.code).toBe("FIRMWARE_IMAGE_CORRUPT");
          expect(error.message).toContain(`gw-os@${version}`);
          // The same keep-alive connection answers the next request whole: nothing was left in it.
          const next = await get(`/api/v1/firmware/gw-os/${version}/manifest`);
          expect(next.status).toBe(200);
          expect(next.reused).toBe(true);
          expect(JSON.parse(next.body.toString("utf8")).manifest.version).toBe(version);
        }

        const failed = await job(device.uuid, created.body.id);
        expect(failed.status).toBe("FAILED");
        expect(failed.reason).toBe("FIRMWARE_IMAGE_CORRUPT");
        expect(failed.message).toContain(`gw-os@${version} is not served`);
        const events = await cloud.api<{ items: { code: string; severity: string }[] }>(
          "GET",
          `/api/v1/devices/${device.uuid}/events`,
        );
        expect(events.body.items).toContainEqual(
          expect.objectContaining({ code: "FIRMWARE_IMAGE_CORRUPT", severity: "error" }),
        );
        expect(
          cloud.logs.some((l) => l.includes("stored image differs from its manifest") && l.includes(version)),
        ).toBe(true);
      });
    }
  });

  it("control characters a device sent are shown as escapes by devices telemetry, events and show", {
    timeout: 30_000,
  }, async () => {
    const device = await enrolled();
    const up = await uploadImage(cloud, "name=gw-os&version=2.0.0&compatible=acme-gw-h", randomBytes(500));
    expect(up.status, up.text).toBe(201);
    const created = await cloud.api<Job>("POST", `/api/v1/devices/${device.uuid}/jobs`, { firmware: "gw-os@2.0.0" });
    expect(created.status).toBe(201);
    const client = await connectDevice(cloud, device, device.uuid);
    clients.push(client);
    const topic = (t: string) => `fieldgate/v1/${device.uuid}/${t}`;
    await publish(client, topic("telemetry"), {
      v: 1,
      stream: "a1b2c3d4e5f60718293a4b5c6d7e8f90",
      seq: 1,
      readings: [{ name: "temp", ts: Date.now(), value: 21.5, unit: "C\u001b[2J" }],
    });
    await publish(client, topic(`jobs/${created.body.id}/status`), {
      v: 1,
      ts: Date.now(),
      status: "FAILED",
      reason: "INSTALL_FAILED",
      message: "bad\u001b[2J\u009b31m\rstatus",
    });
    await eventually(async () => (await job(device.uuid, created.body.id)).status === "FAILED", 10_000, "the report");

    const telemetry = await cli("devices", "telemetry", device.uuid);
    expect(telemetry).toContain("C\\x1b[2J");
    const show = await cli("devices", "show", device.uuid);
    expect(show).toContain("bad\\x1b[2J\\x9b31m\\rstatus");
    for (const out of [telemetry, show]) for (const c of ["\u001b", "\u009b", "\r"]) expect(out).not.toContain(c);
    // JSON output keeps the value as stored (JSON escapes it).
    const json = JSON.parse(await cli("devices", "telemetry", device.uuid, "--json")) as { items: { unit: string }[] };
    expect(json.items[0]?.unit).toBe("C\u001b[2J");
  });

  it("every file and directory the cloud made is owner-only after a full run (agent, upload, job)", {
    timeout: 60_000,
  }, async () => {
    const { uuid, token } = await registerDevice(cloud, { type: "gw-h" });
    const dir = tempDir("harden-agent");
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir: path.join(dir, "data"),
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "200ms", publishInterval: "200ms" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
    });
    agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    await eventually(
      async () =>
        ((await cloud.api<{ telemetryCount: number }>("GET", `/api/v1/devices/${uuid}`)).body.telemetryCount ?? 0) > 0,
      20_000,
      "the agent's readings",
    );
    const up = await uploadImage(cloud, "name=gw-os&version=3.0.0&compatible=acme-gw-h", randomBytes(800));
    expect(up.status, up.text).toBe(201);
    const created = await cloud.api<Job>("POST", `/api/v1/devices/${uuid}/jobs`, { firmware: "gw-os@3.0.0" });
    expect(created.status).toBe(201);
    // Updates are off on this agent: it answers the job, which ends.
    await eventually(
      async () => !["CREATED", "QUEUED", "IN_PROGRESS"].includes((await job(uuid, created.body.id)).status),
      20_000,
      "the job to end",
    );
    // While the cloud runs: the database's -wal and -shm files are there too.
    expect(fs.readdirSync(dataDir)).toEqual(
      expect.arrayContaining(["fieldgate.db-wal", "fieldgate.db-shm", "cloud.lock"]),
    );
    expect(looseModes(dataDir)).toEqual([]);
    expect(fs.readdirSync(storeDir).length).toBeGreaterThan(0);
    expect(looseModes(storeDir)).toEqual([]);
  });

  it("closes a data directory and firmware store an older version left 0755", { timeout: 30_000 }, async () => {
    const root = tempDir("harden-old");
    const oldData = path.join(root, "data");
    const oldStore = path.join(root, "store");
    for (const dir of [oldData, oldStore]) {
      fs.mkdirSync(dir, { mode: 0o755 });
      fs.chmodSync(dir, 0o755);
    }
    const old = await startCloud({ dataDir: oldData, args: ["--firmware-dir", oldStore] });
    try {
      for (const dir of [oldData, oldStore]) expect((fs.statSync(dir).mode & 0o777).toString(8)).toBe("700");
    } finally {
      await old.stop();
    }
  });
});

import { execFileSync } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { canonicalManifest, firmwareKeyId, type SignedManifest } from "@fieldgate/shared";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, cloudBin, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { type CuttingProxy, startCuttingProxy } from "../support/cutting-proxy.js";
import { registerDevice } from "../support/device-identity.js";
import { LENIENT_HEALTH, uploadImage } from "../support/firmware.js";
import { agentInstall, agentRoot, type SupervisedAgent, superviseLauncher } from "../support/supervised-agent.js";

type Step = { status: string; step: string | null; reason: string | null };
type Job = { id: string; status: string; reason: string | null; message: string | null; steps?: Step[] };

const ENDED = ["SUCCEEDED", "FAILED", "ROLLED_BACK", "REJECTED"];

/**
 * Issue #5, the installers end to end with a real cloud and real agent processes: ab-slots, the
 * agent updating itself through its launcher (with a restart and a rollback), a download cut
 * mid-transfer, images refused before anything is installed, and a version that never gets healthy.
 */
describe("firmware installers, real cloud and agents", () => {
  let cloud: CloudProcess;
  let work: string;
  const agents: AgentProcess[] = [];
  const supervised: SupervisedAgent[] = [];
  let proxy: CuttingProxy | undefined;

  const health = LENIENT_HEALTH;

  const upload = (name: string, version: string, body: Buffer) =>
    uploadImage(cloud, `name=${name}&version=${version}&compatible=acme-gw-a`, body);

  const deviceConfig = async (name: string, over: Record<string, unknown>, cloudUrl?: string) => {
    const { uuid, token } = await registerDevice(cloud, { type: "gw-a" });
    const dir = tempDir(name);
    const dataDir = path.join(dir, "data");
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir,
      cloud: { url: cloudUrl ?? cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "1h" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
      health,
      ...over,
    });
    return { uuid, token, dir, dataDir, configFile };
  };
  const startDevice = async (d: { token: string; configFile: string }) => {
    const agent = startAgent(d.configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: d.token });
    agents.push(agent);
    await agent.waitForLog(/connected to /, 30_000);
    return agent;
  };
  const createJob = async (uuid: string, firmware: string) => {
    const created = await cloud.api<Job>("POST", `/api/v1/devices/${uuid}/jobs`, { firmware });
    expect(created.status, created.text).toBe(201);
    return created.body.id;
  };
  const ended = (uuid: string, id: string, timeoutMs = 60_000) =>
    eventually(
      async () => {
        const j = (await cloud.api<Job>("GET", `/api/v1/devices/${uuid}/jobs/${id}`)).body;
        return ENDED.includes(j.status) ? j : undefined;
      },
      timeoutMs,
      `job ${id} to end`,
    );
  /** An ab-slots root with the old image active in slot a. */
  const slots = (dir: string, old: Buffer) => {
    const root = path.join(dir, "slots");
    fs.mkdirSync(path.join(root, "a"), { recursive: true });
    fs.writeFileSync(path.join(root, "a", "image.bin"), old);
    fs.symlinkSync("a", path.join(root, "current"));
    return root;
  };
  /** The stored files of an uploaded image: `<store>/<org id>/<name>/<version>/`. */
  const storeDir = (name: string, version: string) => {
    const store = path.join(work, "store");
    for (const org of fs.readdirSync(store)) {
      const dir = path.join(store, org, name, version);
      if (fs.existsSync(dir)) return dir;
    }
    throw new Error(`${name}@${version} is not in the store`);
  };
  const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

  beforeAll(async () => {
    const dataDir = tempDir("inst-cloud");
    work = tempDir("inst-work");
    execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir], { stdio: "pipe" });
    cloud = await startCloud({ dataDir, args: ["--firmware-dir", path.join(work, "store")] });
    const type = await cloud.api("POST", "/api/v1/device-types", { name: "gw-a", firmwareCompat: "acme-gw-a" });
    expect(type.status).toBe(201);
  });
  afterAll(async () => {
    for (const s of supervised) await s.stop();
    for (const a of agents) await a.stop();
    await proxy?.close();
    await cloud?.stop();
  });

  it("ab-slots: a full update flips current to the new slot and the cloud's report says SUCCEEDED; a version that never gets healthy rolls back by itself", {
    timeout: 120_000,
  }, async () => {
    const image = randomBytes(200_000);
    expect((await upload("gw-os", "2.0.0", image)).status).toBe(201);
    // Its first bytes make the device's health check critical, as a broken firmware would.
    const broken = Buffer.concat([Buffer.from("BROKEN"), randomBytes(1000)]);
    expect((await upload("gw-os", "3.0.0", broken)).status).toBe(201);

    const d = await deviceConfig("inst-ab", {});
    const root = slots(d.dir, Buffer.from("old firmware"));
    const check = path.join(d.dir, "firmware-check.mjs");
    fs.writeFileSync(
      check,
      `import { readFileSync } from "node:fs";\nconst head = readFileSync(process.argv[2]).subarray(0, 6).toString();\nif (head === "BROKEN") { console.log("firmware is broken"); process.exit(2); }\nconsole.log("firmware ok");\n`,
    );
    writeAgentConfig(d.dir, {
      ...JSON.parse(fs.readFileSync(d.configFile, "utf8")),
      health: {
        ...health,
        commands: [
          {
            name: "firmware",
            command: [process.execPath, check, path.join(root, "current", "image.bin")],
            interval: "300ms",
          },
        ],
      },
      updates: { enabled: true, installer: { type: "ab-slots", root }, confirmDeadline: "8s" },
    });
    await startDevice(d);

    const id = await createJob(d.uuid, "gw-os@2.0.0");
    const done = await ended(d.uuid, id);
    expect(done.status, JSON.stringify(done)).toBe("SUCCEEDED");
    expect(fs.readlinkSync(path.join(root, "current"))).toBe("b");
    expect(sha(fs.readFileSync(path.join(root, "b", "image.bin")))).toBe(sha(image));
    expect(fs.readFileSync(path.join(root, "a", "image.bin")).toString()).toBe("old firmware");
    const steps = (done.steps ?? []).map((s) => s.step);
    for (const step of ["DOWNLOADING", "VERIFYING", "INSTALLING", "ACTIVATING", "CONFIRMING"])
      expect(steps).toContain(step);

    // 3.0.0 goes into slot a and is activated; its health check goes critical: ROLLED_BACK, b again.
    const bad = await createJob(d.uuid, "gw-os@3.0.0");
    const rolled = await ended(d.uuid, bad);
    expect(rolled, JSON.stringify(rolled)).toMatchObject({ status: "ROLLED_BACK", reason: "HEALTH_NOT_OK" });
    expect(rolled.message).toMatch(/^check "command\.firmware" critical: firmware is broken/);
    expect(rolled.steps?.map((s) => s.step)).toContain("CONFIRMING");
    expect(fs.readlinkSync(path.join(root, "current"))).toBe("b");
    expect(fs.existsSync(path.join(root, "a", "image.bin"))).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(d.dataDir, "firmware", "installed.json"), "utf8")).version).toBe(
      "2.0.0",
    );
  });

  it("agent: the agent updates itself through a restart and the new process confirms; a new agent that never confirms is replaced by the old one", {
    timeout: 240_000,
  }, async () => {
    const images = tempDir("inst-agent-images");
    const tar = (dir: string) => {
      const out = path.join(images, `${path.basename(dir)}.tgz`);
      execFileSync("tar", ["-czf", out, "-C", dir, "."]);
      return fs.readFileSync(out);
    };
    expect(
      (await upload("fieldgate-agent", "0.2.0", tar(agentInstall(path.join(images, "v020"), "0.2.0")))).status,
    ).toBe(201);
    // 0.3.0 starts and hangs: it never connects, never confirms, never exits by itself.
    const hang = agentInstall(path.join(images, "v030"), "0.3.0", "setInterval(() => {}, 1000);\n");
    expect((await upload("fieldgate-agent", "0.3.0", tar(hang))).status).toBe(201);
    // 0.4.0 crashes at once, every time: a crash loop the launcher's boot counter ends.
    const crash = agentInstall(path.join(images, "v040"), "0.4.0", "process.exit(3);\n");
    expect((await upload("fieldgate-agent", "0.4.0", tar(crash))).status).toBe(201);

    const d = await deviceConfig("inst-self", {});
    const root = agentRoot(path.join(d.dir, "agent"), "0.1.0");
    writeAgentConfig(d.dir, {
      ...JSON.parse(fs.readFileSync(d.configFile, "utf8")),
      updates: { enabled: true, installer: { type: "agent", root, maxBoots: 3 }, confirmDeadline: "25s" },
    });
    const agent = superviseLauncher(root, d.configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: d.token });
    supervised.push(agent);
    await agent.waitForLog(/connected to /, 30_000);

    const id = await createJob(d.uuid, "fieldgate-agent@0.2.0");
    const done = await ended(d.uuid, id, 120_000);
    expect(done.status, `${JSON.stringify(done)}\n${agent.logs.join("\n")}`).toBe("SUCCEEDED");
    // The old process exited for the restart; the launcher started the new one, which confirmed.
    await agent.waitForLog(/restarting into the new agent version/, 1000);
    await agent.waitForLog(/the new version runs after the restart; confirming it/, 1000);
    expect(agent.starts()).toBeGreaterThanOrEqual(2);
    expect(fs.readlinkSync(path.join(root, "current"))).toBe("b");
    expect(JSON.parse(fs.readFileSync(path.join(root, "b", "package.json"), "utf8")).version).toBe("0.2.0");
    expect(fs.existsSync(path.join(root, "trial.json"))).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(d.dataDir, "firmware", "installed.json"), "utf8")).version).toBe(
      "0.2.0",
    );

    // 0.3.0 hangs: the launcher's watchdog stops it after the deadline and restores slot b; the
    // 0.2.0 agent then reports ROLLED_BACK with the reason.
    const from = agent.logs.length;
    const bad = await createJob(d.uuid, "fieldgate-agent@0.3.0");
    const rolled = await ended(d.uuid, bad, 150_000);
    expect(rolled, `${JSON.stringify(rolled)}\n${agent.logs.slice(from).join("\n")}`).toMatchObject({
      status: "ROLLED_BACK",
      reason: "UPDATE_BOOT_FAILED",
    });
    expect(rolled.message).toMatch(/0\.3\.0 \(slot a\) did not confirm by the deadline/);
    expect(fs.readlinkSync(path.join(root, "current"))).toBe("b");
    await agent.waitForLog(/the launcher stopped it and restored slot b/, 1000, from);
    expect(JSON.parse(fs.readFileSync(path.join(d.dataDir, "firmware", "installed.json"), "utf8")).version).toBe(
      "0.2.0",
    );
    expect(fs.existsSync(path.join(root, "trial.json"))).toBe(false);

    // 0.4.0 exits at every start: after maxBoots starts the launcher restores slot b by itself.
    const loopFrom = agent.logs.length;
    const looping = await createJob(d.uuid, "fieldgate-agent@0.4.0");
    const restored = await ended(d.uuid, looping, 120_000);
    expect(restored, `${JSON.stringify(restored)}\n${agent.logs.slice(loopFrom).join("\n")}`).toMatchObject({
      status: "ROLLED_BACK",
      reason: "UPDATE_BOOT_FAILED",
    });
    expect(restored.message).toMatch(/0\.4\.0 \(slot a\) started 3 times without confirming/);
    expect(fs.readlinkSync(path.join(root, "current"))).toBe("b");
    expect(agent.logs.slice(loopFrom).filter((l) => l.includes("launcher exited with 3"))).toHaveLength(3);
  });

  it("a download cut mid-transfer resumes with Range through a proxy and the hash matches", {
    timeout: 120_000,
  }, async () => {
    const image = randomBytes(3_000_000);
    expect((await upload("big-os", "1.0.0", image)).status).toBe(201);
    proxy = await startCuttingProxy(cloud.httpPort);
    const d = await deviceConfig("inst-proxy", {}, `https://localhost:${proxy.port}`);
    const root = slots(d.dir, Buffer.from("old"));
    writeAgentConfig(d.dir, {
      ...JSON.parse(fs.readFileSync(d.configFile, "utf8")),
      updates: {
        enabled: true,
        installer: { type: "ab-slots", root },
        downloadRateLimit: "8MiB/s",
        startJitter: "1s",
      },
    });
    const agent = await startDevice(d);

    proxy.armCut(1_200_000);
    const id = await createJob(d.uuid, "big-os@1.0.0");
    const done = await ended(d.uuid, id);
    expect(done.status, `${JSON.stringify(done)}\n${agent.logs.join("\n")}`).toBe("SUCCEEDED");
    expect(proxy.cuts()).toBe(1);
    const retry = await agent.waitForLog(/firmware download interrupted at byte \d+; resuming/, 1000);
    expect(retry.have as number).toBeGreaterThan(0);
    expect(retry.have as number).toBeLessThan(image.length);
    expect(sha(fs.readFileSync(path.join(root, "b", "image.bin")))).toBe(sha(image));
    // Resumed, not started over: the bytes sent once more are at most what was in flight at the cut.
    expect(proxy.bytesToClients()).toBeLessThan(image.length + 1_200_000);
  });

  it("refuses before anything is installed: tampered image, another signing key, oversized bytes, downgrade, same version", {
    timeout: 180_000,
  }, async () => {
    for (const version of ["1.0.0", "4.0.0", "4.0.1", "4.0.2", "4.0.3"]) {
      expect((await upload("rej-os", version, randomBytes(50_000))).status).toBe(201);
    }
    // Tampered: same length, other bytes. The signed manifest's sha256 no longer matches. The cloud's
    // index is made to agree with the bytes (else the cloud refuses to serve them, FIRMWARE_IMAGE_CORRUPT,
    // test/e2e/cloud-hardening.e2e.test.ts): the agent's own checks are what is tested here.
    const tampered = path.join(storeDir("rej-os", "4.0.1"), "image.bin");
    const bytes = fs.readFileSync(tampered);
    bytes[100] = (bytes[100] ?? 0) ^ 0xff;
    fs.writeFileSync(tampered, bytes);
    // Signed by a key the device does not trust.
    const manifestFile = path.join(storeDir("rej-os", "4.0.2"), "manifest.json");
    const signed = JSON.parse(fs.readFileSync(manifestFile, "utf8")) as SignedManifest;
    const other = generateKeyPairSync("ed25519");
    const resigned: SignedManifest = {
      manifest: signed.manifest,
      signature: sign(null, Buffer.from(canonicalManifest(signed.manifest)), other.privateKey).toString("base64"),
      keyId: firmwareKeyId(other.publicKey.export({ type: "spki", format: "pem" }).toString()),
    };
    fs.writeFileSync(manifestFile, JSON.stringify(resigned));
    // Oversized: the store serves 1000 bytes more than the signed manifest's size.
    fs.appendFileSync(path.join(storeDir("rej-os", "4.0.3"), "image.bin"), randomBytes(1000));
    const db = new Database(path.join(cloud.dataDir, "fieldgate.db"));
    db.pragma("busy_timeout = 5000");
    db.prepare("UPDATE firmware_images SET size = size + 1000 WHERE name = 'rej-os' AND version = '4.0.3'").run();
    for (const version of ["4.0.1", "4.0.3"]) {
      const sha256 = createHash("sha256")
        .update(fs.readFileSync(path.join(storeDir("rej-os", version), "image.bin")))
        .digest("hex");
      db.prepare("UPDATE firmware_images SET sha256 = ? WHERE name = 'rej-os' AND version = ?").run(sha256, version);
    }
    db.close();

    const d = await deviceConfig("inst-rej", {});
    const root = slots(d.dir, Buffer.from("old firmware"));
    fs.mkdirSync(path.join(d.dataDir, "firmware"), { recursive: true });
    fs.writeFileSync(path.join(d.dataDir, "firmware", "installed.json"), JSON.stringify({ version: "2.0.0" }));
    writeAgentConfig(d.dir, {
      ...JSON.parse(fs.readFileSync(d.configFile, "utf8")),
      updates: { enabled: true, installer: { type: "ab-slots", root } },
    });
    await startDevice(d);

    const cases = [
      { firmware: "rej-os@4.0.1", status: "FAILED", reason: "FIRMWARE_HASH_MISMATCH", step: "VERIFYING" },
      { firmware: "rej-os@4.0.2", status: "FAILED", reason: "FIRMWARE_SIGNATURE_INVALID", step: "VERIFYING" },
      { firmware: "rej-os@4.0.3", status: "FAILED", reason: "FIRMWARE_SIZE_MISMATCH", step: "DOWNLOADING" },
      { firmware: "rej-os@1.0.0", status: "REJECTED", reason: "FIRMWARE_NOT_NEWER", step: "CHECKING_PERMISSIONS" },
      { firmware: "rej-os@2.0.0", status: "REJECTED", reason: "FIRMWARE_NOT_NEWER", step: "CHECKING_PERMISSIONS" },
    ];
    // The same version as the installed one, uploaded now so the job exists.
    expect((await upload("rej-os", "2.0.0", randomBytes(10_000))).status).toBe(201);
    for (const c of cases) {
      const done = await ended(d.uuid, await createJob(d.uuid, c.firmware));
      expect(done, c.firmware).toMatchObject({ status: c.status, reason: c.reason });
      const progressed = (done.steps ?? []).filter((s) => s.status === "IN_PROGRESS").map((s) => s.step);
      expect(progressed.at(-1), c.firmware).toBe(c.step);
      expect(progressed, c.firmware).not.toContain("INSTALLING");
      // Nothing was installed: the old slot is active and the other one was never written.
      expect(fs.readlinkSync(path.join(root, "current"))).toBe("a");
      expect(fs.existsSync(path.join(root, "b", "image.bin"))).toBe(false);
      expect(JSON.parse(fs.readFileSync(path.join(d.dataDir, "firmware", "installed.json"), "utf8")).version).toBe(
        "2.0.0",
      );
    }
  });
});

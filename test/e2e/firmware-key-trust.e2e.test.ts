import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../support/agent-process.js";
import { type CloudProcess, cloudBin, eventually, startCloud, tempDir } from "../support/cloud-process.js";
import { registerDevice } from "../support/device-identity.js";
import { LENIENT_HEALTH, uploadImage } from "../support/firmware.js";

type Job = { id: string; status: string; reason: string | null; message: string | null };

/**
 * Issue #11 item 7: the firmware keys a device trusts reach it over its mTLS session, so a device
 * enrolled before `firmware keygen` installs signed images, and a rotation keeps the old key
 * trusted for what it signed until it is retired. Real cloud, real agent, the CLI while the cloud runs.
 */
describe("firmware keys reach enrolled devices, real cloud and agent", () => {
  let cloud: CloudProcess;
  let agent: AgentProcess;
  let agentDataDir: string;
  let uuid: string;
  let work: string;

  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [cloudBin, "firmware", ...args, "--data-dir", cloud.dataDir, "--json"], {
      encoding: "utf8",
    });
  const upload = async (version: string) => {
    const up = await uploadImage(cloud, `name=gw-os&version=${version}&compatible=acme-gw-k`, randomBytes(5_000));
    return {
      status: up.status,
      body: JSON.parse(up.text) as { keyId?: string; error?: { code: string; message: string } },
    };
  };
  const update = async (version: string): Promise<Job> => {
    const created = await cloud.api<Job>("POST", `/api/v1/devices/${uuid}/jobs`, { firmware: `gw-os@${version}` });
    expect(created.status, created.text).toBe(201);
    return eventually(
      async () => {
        const j = (await cloud.api<Job>("GET", `/api/v1/devices/${uuid}/jobs/${created.body.id}`)).body;
        return ["SUCCEEDED", "FAILED", "ROLLED_BACK", "REJECTED"].includes(j.status) ? j : undefined;
      },
      30_000,
      `the ${version} job to end`,
    );
  };
  const deviceKeyIds = () =>
    (
      JSON.parse(fs.readFileSync(path.join(agentDataDir, "firmware-keys.json"), "utf8")) as {
        keys: { keyId: string }[];
      }
    ).keys.map((k) => k.keyId);

  beforeAll(async () => {
    work = tempDir("fwkeys-work");
    // No signing key yet: the device enrolls without one.
    cloud = await startCloud({ args: ["--firmware-dir", path.join(work, "store")] });
    expect(
      (await cloud.api("POST", "/api/v1/device-types", { name: "gw-k", firmwareCompat: "acme-gw-k" })).status,
    ).toBe(201);
    const registered = await registerDevice(cloud, { type: "gw-k" });
    uuid = registered.uuid;
    const dir = tempDir("fwkeys-agent");
    agentDataDir = path.join(dir, "data");
    const script = path.join(work, "install.sh");
    fs.writeFileSync(script, `#!/bin/sh\necho "installed $1"\n`, { mode: 0o755 });
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir: agentDataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "1h" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
      health: LENIENT_HEALTH,
      updates: { enabled: true, installer: { type: "script", command: [script, "{image}"] } },
    });
    agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: registered.token });
    await agent.waitForLog(/connected to /, 20_000);
    const identity = JSON.parse(fs.readFileSync(path.join(agentDataDir, "identity", "identity.json"), "utf8"));
    expect(identity.firmwarePublicKey).toBeUndefined();
  });
  afterAll(async () => {
    await agent?.stop();
    await cloud?.stop();
  });

  it("a device enrolled before keygen installs an image signed after it, without a cloud restart", {
    timeout: 60_000,
  }, async () => {
    const before = await upload("1.0.0");
    expect(before.status).toBe(409);
    expect(before.body.error?.message).toMatch(/firmware keygen/);

    const keygen = cli("keygen");
    expect(keygen.status, keygen.stderr).toBe(0);
    const { keyId } = JSON.parse(keygen.stdout) as { keyId: string };
    for (const version of ["2.0.0", "2.5.0", "2.6.0"]) {
      const up = await upload(version);
      expect(up.status, JSON.stringify(up.body)).toBe(201);
      expect(up.body.keyId).toBe(keyId);
    }

    const done = await update("2.0.0");
    expect(done, JSON.stringify(done)).toMatchObject({ status: "SUCCEEDED" });
    expect(deviceKeyIds()).toEqual([keyId]);
  });

  it("a rotation keeps the old key trusted for the images it signed; retiring it makes the device refuse them, naming the key", {
    timeout: 90_000,
  }, async () => {
    const oldKeyId = deviceKeyIds()[0] ?? "";
    const rotate = cli("rotate");
    expect(rotate.status, rotate.stderr).toBe(0);
    const rotated = JSON.parse(rotate.stdout) as { keyId: string; previousKeyId: string };
    expect(rotated.previousKeyId).toBe(oldKeyId);
    expect(rotated.keyId).not.toBe(oldKeyId);
    // Only the old public key is kept: nothing on the host can sign with the old key any more.
    expect(fs.readdirSync(path.join(cloud.dataDir, "firmware-signing.previous"))).toEqual([`${oldKeyId}.pub`]);
    const fresh = await upload("3.0.0");
    expect(fresh.body.keyId).toBe(rotated.keyId);

    // Signed before the rotation, installed after it.
    expect(await update("2.5.0")).toMatchObject({ status: "SUCCEEDED" });
    expect(deviceKeyIds().sort()).toEqual([oldKeyId, rotated.keyId].sort());

    const retire = cli("retire", oldKeyId);
    expect(retire.status, retire.stderr).toBe(0);
    const refused = await update("2.6.0");
    expect(refused).toMatchObject({ status: "FAILED", reason: "FIRMWARE_SIGNATURE_INVALID" });
    expect(refused.message).toContain(`signed by key ${oldKeyId}, which this device does not trust`);
    expect(deviceKeyIds()).toEqual([rotated.keyId]);

    expect(await update("3.0.0")).toMatchObject({ status: "SUCCEEDED" });
  });

  it("serves the trusted keys only to a device's client certificate, never to an operator or anyone", async () => {
    for (const auth of [true, false]) {
      const answer = await cloud.api<{ error: { code: string } }>("GET", "/api/v1/firmware-keys", undefined, auth);
      expect(answer.status, answer.text).toBe(401);
      expect(answer.body.error.code).toBe("CERT_UNKNOWN");
    }
  });

  it("the CLI refuses to retire the signing key or an unknown one, and keygen never overwrites", () => {
    const signing = deviceKeyIds()[0] ?? "";
    const current = cli("retire", signing);
    expect(current.status).toBe(2);
    expect(current.stderr).toMatch(/current signing key; run `fieldgate-cloud firmware rotate` first/);
    const unknown = cli("retire", "0123456789abcdef");
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/no rotated-out key 0123456789abcdef/);
    // Offline signing with the wrong file: the file, what is wrong and the fix, not a stack trace.
    const manifest = path.join(work, "manifest.json");
    const image = path.join(work, "image.bin");
    fs.writeFileSync(image, "image");
    const made = spawnSync(process.execPath, [
      cloudBin,
      "firmware",
      "manifest",
      image,
      "--name",
      "gw-os",
      "--version",
      "9.0.0",
      "--compatible",
      "acme-gw-k",
      "--out",
      manifest,
    ]);
    expect(made.status, String(made.stderr)).toBe(0);
    const wrongKey = spawnSync(
      process.execPath,
      [
        cloudBin,
        "firmware",
        "sign-manifest",
        "--manifest",
        manifest,
        "--key",
        path.join(cloud.dataDir, "firmware-signing.pub"),
      ],
      { encoding: "utf8" },
    );
    expect(wrongKey.status).toBe(2);
    expect(wrongKey.stderr).toMatch(
      /firmware-signing\.pub holds no private key \(it holds a PUBLIC KEY\)\. Pass the Ed25519 private key/,
    );
    expect(wrongKey.stderr).not.toMatch(/\n\s+at /);
    const again = cli("keygen");
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/firmware rotate/);
    expect(again.stderr).not.toMatch(/\n\s+at /);
  });
});

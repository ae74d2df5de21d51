import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import {
  enrollWithToken,
  factoryKeyPair,
  factoryProof,
  makeCsr,
  newUuid,
  registerDevice,
} from "../../../test/support/device-identity.js";

type ErrorAnswer = { error: { code: string; message: string; field?: string } };

describe("enrollment inside the window", () => {
  let cloud: CloudProcess;
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(() => cloud.stop());

  const enroll = (body: Record<string, unknown>) =>
    cloud.api<ErrorAnswer & { certificate: string }>("POST", "/api/v1/enroll", { v: 1, ...body }, false);

  it("issues a certificate that verifies against the CA, with CN = uuid whatever the CSR asked", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const keys = await makeCsr("CN=someone-else,O=evil");
    const res = await enroll({ uuid, method: "token", token, csr: keys.csrPem });
    expect(res.status).toBe(200);
    expect(res.text).not.toMatch(/PRIVATE KEY/);
    const dir = tempDir("verify");
    const certFile = path.join(dir, "device.crt");
    fs.writeFileSync(certFile, res.body.certificate);
    expect(execFileSync("openssl", ["verify", "-CAfile", cloud.caFile, certFile]).toString()).toContain(": OK");
    const subject = execFileSync("openssl", ["x509", "-in", certFile, "-noout", "-subject"]).toString();
    expect(subject.trim()).toBe(`subject=CN = ${uuid}`);
    expect(res.body).toMatchObject({ uuid, mqttUrl: cloud.mqttUrl.replace("localhost", "localhost") });

    const show = await cloud.api<{ certificate: { serial: string }; window: { open: boolean } }>(
      "GET",
      `/api/v1/devices/${uuid}`,
    );
    expect(show.body.window.open).toBe(false);
    expect(show.body.certificate?.serial).toMatch(/^[0-9A-F]+$/);
  });

  it("refuses a reused token: the successful enrollment closed the window", async () => {
    const { uuid, token } = await registerDevice(cloud);
    await enrollWithToken(cloud, uuid, token);
    const again = await enroll({ uuid, method: "token", token, csr: (await makeCsr()).csrPem });
    expect(again.status).toBe(403);
    expect(again.body.error.code).toBe("ENROLL_WINDOW_CLOSED");
    expect(again.body.error.message).toContain("reset-token");
  });

  it("refuses a token that belongs to another uuid", async () => {
    const a = await registerDevice(cloud);
    const b = await registerDevice(cloud);
    const res = await enroll({ uuid: b.uuid, method: "token", token: a.token, csr: (await makeCsr()).csrPem });
    expect(res.status).toBe(401);
    expect(res.body.error).toMatchObject({ code: "ENROLL_TOKEN_INVALID", field: "token" });
    // b's own token still works: one wrong try does not close the window.
    await expect(enrollWithToken(cloud, b.uuid, b.token)).resolves.toMatchObject({ uuid: b.uuid });
  });

  it("closes the window after five wrong tokens, so the sixth try fails even with the right token", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const csr = (await makeCsr()).csrPem;
    for (let i = 0; i < 5; i++) {
      const res = await enroll({ uuid, method: "token", token: `fgt_wrong${i}`, csr });
      expect(res.body.error.code).toBe("ENROLL_TOKEN_INVALID");
    }
    const sixth = await enroll({ uuid, method: "token", token, csr });
    expect(sixth.status).toBe(403);
    expect(sixth.body.error.code).toBe("ENROLL_WINDOW_CLOSED");
  });

  it("refuses a CSR whose signature does not verify, without spending the token", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const good = await makeCsr();
    const other = await makeCsr();
    // Graft another key's signature onto this CSR: it parses, but proves nothing.
    const der = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    const a = der(good.csrPem);
    const b = der(other.csrPem);
    const tampered = Buffer.concat([a.subarray(0, a.length - 72), b.subarray(b.length - 72)]);
    const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${tampered.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    const res = await enroll({ uuid, method: "token", token, csr: pem });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: "CSR_INVALID", field: "csr" });
    const garbage = await enroll({
      uuid,
      method: "token",
      token,
      csr: `-----BEGIN CERTIFICATE REQUEST-----\n${"A".repeat(80)}\n-----END CERTIFICATE REQUEST-----`,
    });
    expect(garbage.body.error.code).toBe("CSR_INVALID");
    await expect(enrollWithToken(cloud, uuid, token)).resolves.toMatchObject({ uuid });
  });

  it("answers an unknown uuid exactly like a known one whose window is closed", async () => {
    const { uuid, token } = await registerDevice(cloud);
    await enrollWithToken(cloud, uuid, token);
    const csr = (await makeCsr()).csrPem;
    const known = await enroll({ uuid, method: "token", token: "fgt_x", csr });
    const unknown = await enroll({ uuid: newUuid(), method: "token", token: "fgt_x", csr });
    expect(unknown.status).toBe(known.status);
    expect(unknown.text).toBe(known.text);
  });

  it("enrolls with a factory-key signature and rejects a replay of the same signed request", async () => {
    for (const type of ["ec", "ed25519"] as const) {
      const factory = factoryKeyPair(type);
      const { uuid } = await registerDevice(cloud, { factoryPublicKey: factory.publicPem });
      const keys = await makeCsr();
      const proof = factoryProof(uuid, keys, factory);
      const body = { uuid, method: "factory-key", csr: keys.csrPem, factory: proof };
      const first = await enroll(body);
      expect(first.status).toBe(200);
      // Reopen the window, then replay the captured request word for word.
      expect((await cloud.api("POST", `/api/v1/devices/${uuid}/reset-token`)).status).toBe(200);
      const replay = await enroll(body);
      expect(replay.status).toBe(401);
      expect(replay.body.error).toMatchObject({ code: "ENROLL_REPLAYED", field: "factory.nonce" });
      // A fresh proof from the same factory key works: a device self-enrolls after a reset.
      const keys2 = await makeCsr();
      const fresh = await enroll({
        uuid,
        method: "factory-key",
        csr: keys2.csrPem,
        factory: factoryProof(uuid, keys2, factory),
      });
      expect(fresh.status).toBe(200);
    }
  });

  it("refuses a factory proof from another key, one bound to another CSR, and a stale one", async () => {
    const factory = factoryKeyPair();
    const intruder = factoryKeyPair();
    const { uuid } = await registerDevice(cloud, { factoryPublicKey: factory.publicPem });
    const keys = await makeCsr();
    const wrongKey = await enroll({
      uuid,
      method: "factory-key",
      csr: keys.csrPem,
      factory: factoryProof(uuid, keys, intruder),
    });
    expect(wrongKey.body.error).toMatchObject({ code: "ENROLL_SIGNATURE_INVALID", field: "factory.signature" });
    const otherCsr = await makeCsr();
    const rebound = await enroll({
      uuid,
      method: "factory-key",
      csr: otherCsr.csrPem,
      factory: factoryProof(uuid, keys, factory),
    });
    expect(rebound.body.error.code).toBe("ENROLL_SIGNATURE_INVALID");
    const stale = await enroll({
      uuid,
      method: "factory-key",
      csr: keys.csrPem,
      factory: factoryProof(uuid, keys, factory, Date.now() - 60 * 60_000),
    });
    expect(stale.body.error).toMatchObject({ code: "ENROLL_STALE", field: "factory.timestamp" });
  });

  it("allows uuid-only enrollment only once the organization enables it", async () => {
    const { uuid } = await registerDevice(cloud);
    const csr = (await makeCsr()).csrPem;
    const off = await enroll({ uuid, method: "uuid-only", csr });
    expect(off.status).toBe(403);
    expect(off.body.error.code).toBe("ENROLL_METHOD_DISABLED");
    expect((await cloud.api("PATCH", "/api/v1/organization", { uuidOnlyEnrollment: true })).status).toBe(200);
    const on = await enroll({ uuid, method: "uuid-only", csr });
    expect(on.status).toBe(200);
    await cloud.api("PATCH", "/api/v1/organization", { uuidOnlyEnrollment: false });
  });

  it("rejects a malformed enrollment body with VALIDATION_FAILED naming the field", async () => {
    const res = await enroll({ uuid: "not-a-uuid", method: "token", token: "x", csr: "y".repeat(100) });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "uuid" });
    const missing = await enroll({ uuid: newUuid(), method: "token", token: "x" });
    expect(missing.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "csr" });
  });
});

describe("a short enrollment window", () => {
  let cloud: CloudProcess;
  beforeAll(async () => {
    cloud = await startCloud({ args: ["--enroll-window", "2s"] });
  });
  afterAll(() => cloud.stop());

  it("refuses enrollment once the window expires, and reset-token opens a new one", async () => {
    const { uuid, token } = await registerDevice(cloud);
    await new Promise((r) => setTimeout(r, 2300));
    const csr = (await makeCsr()).csrPem;
    const late = await cloud.api<ErrorAnswer>(
      "POST",
      "/api/v1/enroll",
      { v: 1, uuid, method: "token", token, csr },
      false,
    );
    expect(late.status).toBe(403);
    expect(late.body.error.code).toBe("ENROLL_WINDOW_CLOSED");
    const reset = await cloud.api<{ enrollmentToken: string }>("POST", `/api/v1/devices/${uuid}/reset-token`);
    expect(reset.status).toBe(200);
    expect(reset.body.enrollmentToken).not.toBe(token);
    await expect(enrollWithToken(cloud, uuid, reset.body.enrollmentToken)).resolves.toMatchObject({ uuid });
  });
});

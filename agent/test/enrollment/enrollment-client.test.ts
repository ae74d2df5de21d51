import { createHash, createPublicKey, verify } from "node:crypto";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type EnrollRequest, factoryProofMessage } from "@fieldgate/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnrollmentClient } from "../../src/enrollment/enrollment-client.js";
import { EnrollmentLoop } from "../../src/enrollment/enrollment-loop.js";
import { RejectedTokens } from "../../src/enrollment/rejected-tokens.js";
import { FactoryKey, generateFactoryKey } from "../../src/identity/factory-key.js";
import { IdentityStore } from "../../src/identity/identity-store.js";
import * as x509 from "../../src/identity/x509.js";
import { memoryLogger } from "../helpers/logger.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { tempDir } from "../helpers/tmp.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";

/** A stand-in for the cloud's enroll route over real HTTPS, recording what it received. */
describe("EnrollmentClient", () => {
  let pki: TestPki;
  let server: Server;
  let url: string;
  const received: EnrollRequest[] = [];
  let answer: "ok" | "closed" | "garbage" | "key-reused-once" | "key-reused-always" = "ok";
  const tmp = tempDir();

  beforeAll(async () => {
    pki = await createTestPki();
    server = createServer({ key: pki.server.keyPem, cert: pki.server.certPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as EnrollRequest;
        received.push(body);
        res.setHeader("content-type", "application/json");
        if (req.url !== "/api/v1/enroll") {
          res.statusCode = 404;
          return res.end("{}");
        }
        if (answer === "closed") {
          res.statusCode = 403;
          return res.end(JSON.stringify({ error: { code: "ENROLL_WINDOW_CLOSED", message: "No window" } }));
        }
        if (answer === "key-reused-once" || answer === "key-reused-always") {
          if (answer === "key-reused-once") answer = "ok";
          res.statusCode = 409;
          return res.end(JSON.stringify({ error: { code: "ENROLL_KEY_REUSED", message: "key reused", field: "csr" } }));
        }
        if (answer === "garbage") {
          res.statusCode = 502;
          return res.end("<html>bad gateway</html>");
        }
        if (body.method === "token" && body.token !== "good-token") {
          res.statusCode = 401;
          return res.end(
            JSON.stringify({ error: { code: "ENROLL_TOKEN_INVALID", message: "wrong token", field: "token" } }),
          );
        }
        const cert = await pki.signCsr(body.csr, body.uuid);
        res.end(
          JSON.stringify({
            v: 1,
            uuid: body.uuid,
            certificate: cert.certPem,
            caCertificate: pki.caPem,
            serial: cert.serial,
            notAfter: cert.notAfter.toISOString(),
            renewAfter: new Date(Date.now() + 60 * 86_400_000).toISOString(),
            mqttUrl: "mqtts://localhost:8883",
            apiUrl: url,
          }),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `https://localhost:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    tmp.cleanup();
  });

  const client = (extra: Partial<ConstructorParameters<typeof EnrollmentClient>[0]> = {}) =>
    new EnrollmentClient({
      cloudUrl: url,
      ca: pki.caPem,
      uuid: UUID,
      identity: new IdentityStore(join(tmp.dir, String(received.length))),
      ...extra,
    });

  it("enrolls with a token, trusting only the configured CA, and stores the identity", async () => {
    answer = "ok";
    const c = client({ token: "good-token" });
    expect(c.method).toBe("token");
    const identity = await c.enroll();
    expect(identity.uuid).toBe(UUID);
    expect(identity.mqttUrl).toBe("mqtts://localhost:8883");
    const sent = received.at(-1);
    expect(sent).toMatchObject({ v: 1, uuid: UUID, method: "token", token: "good-token" });
    expect(sent?.csr).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----/);
  });

  it("turns an error answer into a FieldgateError with code, message and field", async () => {
    answer = "ok";
    await expect(client({ token: "bad" }).enroll()).rejects.toMatchObject({
      code: "ENROLL_TOKEN_INVALID",
      message: "wrong token",
      field: "token",
    });
    answer = "closed";
    await expect(client({ token: "good-token" }).enroll()).rejects.toMatchObject({ code: "ENROLL_WINDOW_CLOSED" });
    answer = "garbage";
    await expect(client({ token: "good-token" }).enroll()).rejects.toMatchObject({ code: "CLOUD_UNREACHABLE" });
  });

  it("answers ENROLL_KEY_REUSED with one more try at once, for a new key, and does not loop", async () => {
    const csrKey = (csr: string) =>
      Buffer.from(new x509.Pkcs10CertificateRequest(csr).publicKey.rawData).toString("hex");
    answer = "key-reused-once";
    const before = received.length;
    const identity = await client({ token: "good-token" }).enroll();
    const tries = received.slice(before);
    expect(tries).toHaveLength(2);
    expect(csrKey(tries[0]?.csr ?? "")).not.toBe(csrKey(tries[1]?.csr ?? ""));
    expect(csrKey(tries[1]?.csr ?? "")).toBe(
      createPublicKey(identity.keyPem).export({ type: "spki", format: "der" }).toString("hex"),
    );

    answer = "key-reused-always";
    const start = received.length;
    await expect(client({ token: "good-token" }).enroll()).rejects.toMatchObject({ code: "ENROLL_KEY_REUSED" });
    expect(received.length - start).toBe(2);
  });

  it("signs a factory-key proof over the uuid and the CSR's hash", async () => {
    answer = "ok";
    const keyFile = join(tmp.dir, "factory.key");
    const pub = createPublicKey(generateFactoryKey(keyFile));
    const c = client({ factoryKey: FactoryKey.load(keyFile) });
    expect(c.method).toBe("factory-key");
    await c.enroll();
    const sent = received.at(-1) as EnrollRequest;
    expect(sent.token).toBeUndefined();
    const proof = sent.factory;
    expect(proof?.nonce).toMatch(/^[0-9a-f]{32,64}$/);
    const der = Buffer.from(sent.csr.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64");
    const msg = factoryProofMessage(
      UUID,
      createHash("sha256").update(der).digest("hex"),
      proof?.timestamp ?? 0,
      proof?.nonce ?? "",
    );
    expect(verify("sha256", Buffer.from(msg), pub, Buffer.from(proof?.signature ?? "", "base64"))).toBe(true);
  });

  it("logs the method each attempt used: a rejected token as token, the factory key after it", async () => {
    answer = "ok";
    const keyFile = join(tmp.dir, "factory-then.key");
    generateFactoryKey(keyFile);
    const dataDir = join(tmp.dir, "loop");
    const { logger, lines } = memoryLogger();
    const enroller = client({
      token: "typo-token",
      factoryKey: FactoryKey.load(keyFile),
      identity: new IdentityStore(dataDir),
      rejectedTokens: new RejectedTokens(tmp.dir),
    });
    const loop = new EnrollmentLoop({ enroller, uuid: UUID, retryMinMs: 1, retryMaxMs: 5, logger });
    await expect(loop.run()).resolves.toMatchObject({ uuid: UUID });
    const rejected = lines.find((l) => l.code === "ENROLL_TOKEN_INVALID");
    expect(rejected).toMatchObject({ method: "token" });
    expect(lines.find((l) => String(l.msg).startsWith(`enrolled ${UUID}`))).toMatchObject({ method: "factory-key" });
    expect(received.slice(-2).map((r) => r.method)).toEqual(["token", "factory-key"]);
  });

  it("a rejected token without a factory key is still the token method, refused before it is sent", async () => {
    const rejectedTokens = new RejectedTokens(tmp.dir);
    rejectedTokens.add("spent-token");
    const c = client({ token: "spent-token", rejectedTokens });
    expect(c.method).toBe("token");
    const before = received.length;
    await expect(c.enroll()).rejects.toMatchObject({ code: "ENROLL_TOKEN_INVALID" });
    expect(received.length).toBe(before);
  });

  it("falls back to uuid-only without token or factory key", () => {
    expect(client().method).toBe("uuid-only");
  });

  it("reports CLOUD_UNREACHABLE when the server's CA is not trusted", async () => {
    const other = await createTestPki();
    await expect(client({ token: "good-token", ca: other.caPem }).enroll()).rejects.toMatchObject({
      code: "CLOUD_UNREACHABLE",
    });
  });

  it("reports CLOUD_UNREACHABLE when nothing listens", async () => {
    await expect(client({ cloudUrl: "https://127.0.0.1:1", token: "good-token" }).enroll()).rejects.toMatchObject({
      code: "CLOUD_UNREACHABLE",
    });
  });
});

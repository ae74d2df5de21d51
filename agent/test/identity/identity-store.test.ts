import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { EnrollResponse } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateKeyAndCsr } from "../../src/identity/csr.js";
import { FactoryKey, generateFactoryKey } from "../../src/identity/factory-key.js";
import { IdentityStore } from "../../src/identity/identity-store.js";
import * as x509 from "../../src/identity/x509.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { tempDir } from "../helpers/tmp.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";

async function enrollResponse(pki: TestPki, csrPem: string): Promise<EnrollResponse> {
  const cert = await pki.signCsr(csrPem, UUID);
  return {
    v: 1,
    uuid: UUID,
    certificate: cert.certPem,
    caCertificate: pki.caPem,
    serial: cert.serial,
    notAfter: cert.notAfter.toISOString(),
    renewAfter: new Date(Date.now() + 60 * 86_400_000).toISOString(),
    mqttUrl: "mqtts://localhost:8883",
    apiUrl: "https://localhost:8443",
  };
}

describe("identity", () => {
  let tmp: ReturnType<typeof tempDir>;
  let pki: TestPki;
  beforeEach(async () => {
    tmp = tempDir();
    pki ??= await createTestPki();
  });
  afterEach(() => tmp.cleanup());

  it("builds a P-256 CSR with CN = uuid whose signature verifies", async () => {
    const { csrPem, keyPem, csrSha256 } = await generateKeyAndCsr(UUID);
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    expect(csr.subject).toBe(`CN=${UUID}`);
    expect(await csr.verify()).toBe(true);
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(csrSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("stores the key with mode 0600 and loads a consistent identity", async () => {
    const store = new IdentityStore(tmp.dir);
    expect(store.load()).toBeUndefined();
    const { keyPem, csrPem } = await generateKeyAndCsr(UUID);
    const saved = store.save(keyPem, await enrollResponse(pki, csrPem));
    expect(statSync(store.paths.key).mode & 0o777).toBe(0o600);
    expect(statSync(store.paths.dir).mode & 0o777).toBe(0o700);
    const loaded = store.load();
    expect(loaded?.serial).toBe(saved.serial);
    expect(new X509Certificate(loaded?.certPem ?? "").subject).toBe(`CN=${UUID}`);
    expect(JSON.parse(readFileSync(store.paths.info, "utf8"))).toMatchObject({
      uuid: UUID,
      mqttUrl: "mqtts://localhost:8883",
    });
  });

  it("refuses a key that does not match the certificate", async () => {
    const store = new IdentityStore(tmp.dir);
    const first = await generateKeyAndCsr(UUID);
    store.save(first.keyPem, await enrollResponse(pki, first.csrPem));
    const other = await generateKeyAndCsr(UUID);
    writeFileSync(store.paths.key, other.keyPem);
    expect(store.load()).toBeUndefined();
  });

  it("reset removes key, certificate and identity.json but keeps the factory key and the outbox", async () => {
    const store = new IdentityStore(tmp.dir);
    const factoryFile = join(tmp.dir, "identity", "factory.key");
    const { keyPem, csrPem } = await generateKeyAndCsr(UUID);
    store.save(keyPem, await enrollResponse(pki, csrPem));
    generateFactoryKey(factoryFile);
    writeFileSync(join(tmp.dir, "agent.db"), "outbox");
    const removed = store.reset();
    expect(removed.sort()).toEqual([store.paths.cert, store.paths.info, store.paths.key].sort());
    expect(store.load()).toBeUndefined();
    expect(existsSync(factoryFile)).toBe(true);
    expect(existsSync(join(tmp.dir, "agent.db"))).toBe(true);
  });
});

describe("factory key", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it("generates a 0600 P-256 key, prints only the public key, and refuses to overwrite", () => {
    const out = join(tmp.dir, "factory.key");
    const pub = generateFactoryKey(out);
    expect(pub).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(pub).not.toContain("PRIVATE");
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(() => generateFactoryKey(out)).toThrow(/already exists/);
  });

  it("signs the documented proof message", async () => {
    const { createPublicKey, verify } = await import("node:crypto");
    const { factoryProofMessage } = await import("@fieldgate/shared");
    const out = join(tmp.dir, "factory.key");
    const pub = createPublicKey(generateFactoryKey(out));
    const proof = FactoryKey.load(out).prove(UUID, "ab".repeat(32), 1_700_000_000_000);
    expect(proof.nonce).toMatch(/^[0-9a-f]{64}$/);
    const message = Buffer.from(factoryProofMessage(UUID, "ab".repeat(32), proof.timestamp, proof.nonce));
    expect(verify("sha256", message, pub, Buffer.from(proof.signature, "base64"))).toBe(true);
  });

  it("accepts Ed25519 and refuses other key types with CONFIG_INVALID", async () => {
    const { generateKeyPairSync, verify } = await import("node:crypto");
    const ed = generateKeyPairSync("ed25519");
    const edFile = join(tmp.dir, "ed.key");
    writeFileSync(edFile, ed.privateKey.export({ type: "pkcs8", format: "pem" }));
    const proof = FactoryKey.load(edFile).prove(UUID, "cd".repeat(32));
    const { factoryProofMessage } = await import("@fieldgate/shared");
    const message = Buffer.from(factoryProofMessage(UUID, "cd".repeat(32), proof.timestamp, proof.nonce));
    expect(verify(null, message, ed.publicKey, Buffer.from(proof.signature, "base64"))).toBe(true);

    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const rsaFile = join(tmp.dir, "rsa.key");
    writeFileSync(rsaFile, rsa.privateKey.export({ type: "pkcs8", format: "pem" }));
    expect(() => FactoryKey.load(rsaFile)).toThrow(expect.objectContaining({ code: "CONFIG_INVALID" }));
  });
});

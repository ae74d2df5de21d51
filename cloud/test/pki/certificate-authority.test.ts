import { execFileSync } from "node:child_process";
import { generateKeyPairSync, webcrypto, X509Certificate } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../../../test/support/cloud-process.js";
import { CertificateAuthority } from "../../src/pki/certificate-authority.js";
import * as x509 from "../../src/pki/x509.js";

const UUID = "0b7c2f0e-1d3a-4a8e-9f1b-2c3d4e5f6a7b";

async function csrPem(hash: "SHA-256" | "SHA-384"): Promise<string> {
  const keys = await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "CN=whatever the device asks",
    keys,
    signingAlgorithm: { name: "ECDSA", hash },
  });
  return csr.toString("pem");
}

const der = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");
const pemOf = (bytes: Buffer) =>
  `-----BEGIN CERTIFICATE REQUEST-----\n${bytes.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;

describe("CertificateAuthority", () => {
  let dir: string;
  let ca: CertificateAuthority;
  beforeAll(async () => {
    dir = tempDir("ca-unit");
    ca = new CertificateAuthority({ dir, hostnames: [] });
    await ca.start();
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("issues, for a CSR signed with SHA-256 or SHA-384, a client certificate for the CSR's key, CN = uuid, chained to the CA", async () => {
    for (const hash of ["SHA-256", "SHA-384"] as const) {
      const { csr } = await ca.verifyCsr(await csrPem(hash));
      const issued = await ca.issueDeviceCertificate(UUID, csr);
      const cert = new X509Certificate(issued.pem);
      expect(cert.subject).toBe(`CN=${UUID}`);
      expect(cert.serialNumber).toBe(issued.serial);
      expect(cert.checkIssued(new X509Certificate(ca.caPem()))).toBe(true);
      expect(cert.verify(new X509Certificate(ca.caPem()).publicKey)).toBe(true);
      expect(Buffer.from(cert.publicKey.export({ format: "der", type: "spki" }))).toEqual(
        Buffer.from(csr.publicKey.rawData),
      );
      // openssl agrees: the chain verifies for client authentication.
      const certFile = path.join(dir, `device-${hash}.crt`);
      fs.writeFileSync(certFile, issued.pem);
      const out = execFileSync("openssl", [
        "verify",
        "-CAfile",
        path.join(dir, "ca.crt"),
        "-purpose",
        "sslclient",
        certFile,
      ]).toString();
      expect(out.trim()).toBe(`${certFile}: OK`);
    }
  });

  it("gives every certificate its own serial, as node:crypto prints it", async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const { csr } = await ca.verifyCsr(await csrPem("SHA-256"));
      const issued = await ca.issueDeviceCertificate(UUID, csr);
      expect(issued.serial).toBe(new X509Certificate(issued.pem).serialNumber);
      serials.add(issued.serial);
    }
    expect(serials.size).toBe(20);
  });

  it("refuses with CSR_INVALID a CSR whose signed part was altered, an RSA key, and bytes that are no CSR", async () => {
    const good = der(await csrPem("SHA-256"));
    // The subject's last character lies inside the signed part: flip it and the signature no longer holds.
    const altered = Buffer.from(good);
    const at = altered.indexOf(Buffer.from("asks"));
    altered[at] = "A".charCodeAt(0);
    await expect(ca.verifyCsr(pemOf(altered))).rejects.toMatchObject({ code: "CSR_INVALID", field: "csr" });

    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    const rsaKeys = {
      privateKey: await webcrypto.subtle.importKey(
        "pkcs8",
        rsa.privateKey.export({ format: "der", type: "pkcs8" }),
        { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
        false,
        ["sign"],
      ),
      publicKey: await webcrypto.subtle.importKey(
        "spki",
        rsa.publicKey.export({ format: "der", type: "spki" }),
        { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
        true,
        ["verify"],
      ),
    };
    const rsaCsr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: "CN=x",
      keys: rsaKeys,
      signingAlgorithm: { name: "RSASSA-PKCS1-v1_5" },
    });
    await expect(ca.verifyCsr(rsaCsr.toString("pem"))).rejects.toMatchObject({
      code: "CSR_INVALID",
      message: expect.stringContaining("P-256"),
    });

    await expect(ca.verifyCsr(pemOf(good.subarray(0, 40)))).rejects.toMatchObject({ code: "CSR_INVALID" });
  });

  it("reissues the server certificate only for new names, keeping the newest three replaced pairs aside", async () => {
    const pki = tempDir("ca-reissue");
    const startWith = async (...hostnames: string[]) =>
      (await new CertificateAuthority({ dir: pki, hostnames }).start()).serverReissued;
    expect(await startWith("a.example")).toBe(true);
    expect(await startWith("a.example")).toBe(false);
    for (const name of ["b.example", "c.example", "d.example", "e.example"]) expect(await startWith(name)).toBe(true);
    const old = fs.readdirSync(pki).filter((f) => f.endsWith(".old"));
    expect(old.filter((f) => f.startsWith("server.crt.")).length).toBe(3);
    expect(old.filter((f) => f.startsWith("server.key.")).length).toBe(3);
    // The pair for a.example was dropped; the oldest kept is the one for b.example.
    const oldest = old.filter((f) => f.startsWith("server.crt.")).sort()[0] ?? "";
    expect(new X509Certificate(fs.readFileSync(path.join(pki, oldest))).subjectAltName).toContain("DNS:b.example");
    fs.rmSync(pki, { recursive: true, force: true });
  });
});

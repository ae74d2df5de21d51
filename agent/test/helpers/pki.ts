import { webcrypto } from "node:crypto";
import * as x509 from "../../src/identity/x509.js";

type Keys = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"];
const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

async function keyPair(): Promise<Keys> {
  return (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as unknown as Keys;
}

async function pkcs8Pem(keys: Keys): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey as unknown as webcrypto.CryptoKey));
  return `-----BEGIN PRIVATE KEY-----\n${der
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .trim()}\n-----END PRIVATE KEY-----\n`;
}

/** A throwaway PKI for loopback tests: a CA, a server certificate for localhost, and issued client certs. */
export interface TestPki {
  caPem: string;
  server: { keyPem: string; certPem: string };
  issueClient(cn: string, days?: number): Promise<{ keyPem: string; certPem: string; serial: string }>;
  /** Signs a CSR (PEM) the way the cloud does: CN forced to the uuid. */
  signCsr(csrPem: string, uuid: string): Promise<{ certPem: string; serial: string; notAfter: Date }>;
}

export async function createTestPki(): Promise<TestPki> {
  const caKeys = await keyPair();
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=fieldgate test CA",
    keys: caKeys,
    serialNumber: "01",
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  let serial = 16;
  const issue = async (
    cn: string,
    publicKey: x509.PublicKey | Keys["publicKey"],
    extensions: x509.Extension[],
    days = 1,
  ) => {
    serial += 1;
    const cert = await x509.X509CertificateGenerator.create({
      subject: `CN=${cn}`,
      issuer: ca.subject,
      publicKey,
      signingKey: caKeys.privateKey,
      serialNumber: serial.toString(16).padStart(4, "0"),
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + days * 86_400_000),
      signingAlgorithm: alg,
      extensions,
    });
    return cert;
  };
  const serverKeys = await keyPair();
  const serverCert = await issue("localhost", serverKeys.publicKey, [
    new x509.SubjectAlternativeNameExtension([
      { type: "dns", value: "localhost" },
      { type: "ip", value: "127.0.0.1" },
    ]),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
  ]);
  return {
    caPem: ca.toString("pem"),
    server: { keyPem: await pkcs8Pem(serverKeys), certPem: serverCert.toString("pem") },
    async issueClient(cn, days = 1) {
      const keys = await keyPair();
      const cert = await issue(
        cn,
        keys.publicKey,
        [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
        days,
      );
      return { keyPem: await pkcs8Pem(keys), certPem: cert.toString("pem"), serial: cert.serialNumber };
    },
    async signCsr(csrPem, uuid) {
      const csr = new x509.Pkcs10CertificateRequest(csrPem);
      if (!(await csr.verify())) throw new Error("CSR signature does not verify");
      const cert = await issue(
        uuid,
        csr.publicKey,
        [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
        90,
      );
      return { certPem: cert.toString("pem"), serial: cert.serialNumber, notAfter: cert.notAfter };
    },
  };
}

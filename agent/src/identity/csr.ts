import { createHash, webcrypto } from "node:crypto";
import * as x509 from "./x509.js";

/** A freshly generated operational key and the CSR that proves possession of it. */
export interface KeyAndCsr {
  /** PKCS#8 PEM; written only to `identity/device.key` (0600), never sent or logged. */
  keyPem: string;
  csrPem: string;
  /** SHA-256 of the CSR's DER, lowercase hex: what a factory-key proof binds. */
  csrSha256: string;
}

/** Generates a P-256 key with WebCrypto and a PKCS#10 CSR with subject CN = uuid. */
export async function generateKeyAndCsr(uuid: string): Promise<KeyAndCsr> {
  const subtle = webcrypto.subtle;
  const keys = (await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  // @peculiar/x509 types its keys with the DOM's CryptoKeyPair; Node's WebCrypto objects are the same thing.
  type X509Keys = Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]["keys"];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${uuid.toLowerCase()}`,
    keys: keys as unknown as X509Keys,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
  });
  const pkcs8 = Buffer.from(await subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .trim()}\n-----END PRIVATE KEY-----\n`;
  const der = Buffer.from(csr.rawData);
  return { keyPem, csrPem: csr.toString("pem"), csrSha256: createHash("sha256").update(der).digest("hex") };
}

import { createHash, createPublicKey, randomBytes, verify, webcrypto, X509Certificate } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FieldgateError } from "@fieldgate/shared";
import { writePublicFile, writeSecretFile } from "./secret-files.js";
import * as x509 from "./x509.js";

type CryptoKey = webcrypto.CryptoKey;

const EC_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;
const DAY_MS = 86_400_000;
/** Certificates start a little in the past so that a device whose clock lags still accepts them. */
const BACKDATE_MS = 5 * 60_000;

export interface IssuedCertificate {
  pem: string;
  /** Upper-case hex, as `node:crypto` and `openssl` print it; the registry key. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  renewAfter: Date;
}

export interface CertificateAuthorityOptions {
  dir: string;
  /** Names for the server certificate's SAN, beyond localhost and the loopback addresses. */
  hostnames: readonly string[];
  deviceCertLifetimeDays?: number;
}

/**
 * The cloud's ECDSA P-256 CA. It signs the server certificate and device certificates, and never
 * sees a device key: devices send CSRs. Keys live in `<dir>` with mode 0600.
 */
export class CertificateAuthority {
  private readonly subtle = webcrypto.subtle;
  private caKey: CryptoKey | undefined;
  private caCert: x509.X509Certificate | undefined;
  private readonly deviceLifetimeMs: number;
  /** The extensions every device certificate shares, built once (the key identifier hashes the CA key). */
  private deviceExtensions: DeviceExtensions | undefined;

  constructor(private readonly options: CertificateAuthorityOptions) {
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    this.deviceLifetimeMs = (options.deviceCertLifetimeDays ?? 90) * DAY_MS;
  }

  get caKeyFile(): string {
    return path.join(this.options.dir, "ca.key");
  }
  get caCertFile(): string {
    return path.join(this.options.dir, "ca.crt");
  }
  get serverKeyFile(): string {
    return path.join(this.options.dir, "server.key");
  }
  get serverCertFile(): string {
    return path.join(this.options.dir, "server.crt");
  }

  /** Loads the CA and server certificate, creating them on first start; reissues the server certificate when its names change. */
  async start(): Promise<{ created: boolean; serverReissued: boolean }> {
    let created = false;
    if (fs.existsSync(this.caKeyFile) && fs.existsSync(this.caCertFile)) {
      this.caKey = await this.importKey(fs.readFileSync(this.caKeyFile, "utf8"));
      this.caCert = new x509.X509Certificate(fs.readFileSync(this.caCertFile, "utf8"));
    } else {
      await this.createCa();
      created = true;
    }
    const serverReissued = await this.ensureServerCertificate();
    return { created, serverReissued };
  }

  caPem(): string {
    return this.requireCa().cert.toString("pem");
  }

  serverKeyPem(): string {
    return fs.readFileSync(this.serverKeyFile, "utf8");
  }

  serverCertPem(): string {
    return fs.readFileSync(this.serverCertFile, "utf8");
  }

  /**
   * Verifies a PKCS#10 CSR (parse, P-256 key, self-signature) and returns its SPKI public key.
   * The subject it asks for is ignored: the CA decides the subject.
   */
  async verifyCsr(csrPem: string): Promise<{ csr: x509.Pkcs10CertificateRequest; sha256Hex: string }> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch {
      throw new FieldgateError("CSR_INVALID", "csr is not a PEM PKCS#10 certificate request", "csr");
    }
    const alg = csr.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
    if (alg.name !== "ECDSA" || alg.namedCurve !== "P-256") {
      throw new FieldgateError("CSR_INVALID", "csr must carry an ECDSA P-256 public key", "csr");
    }
    // Verified with node:crypto rather than WebCrypto: a fifth of the cost, in the enrollment storm.
    let ok = false;
    try {
      const hash = CSR_HASHES[(csr.signatureAlgorithm as { hash?: { name?: string } }).hash?.name ?? ""];
      const key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: "der", type: "spki" });
      const signed = x509.csrSignedPart(new Uint8Array(csr.rawData));
      ok = hash !== undefined && verify(hash, signed, key, Buffer.from(csr.signature));
    } catch {
      ok = false;
    }
    if (!ok)
      throw new FieldgateError("CSR_INVALID", "csr signature does not verify (proof of key possession failed)", "csr");
    return { csr, sha256Hex: createHash("sha256").update(Buffer.from(csr.rawData)).digest("hex") };
  }

  /** Issues a client certificate with CN = uuid for the CSR's key, whatever subject the CSR asked for. */
  async issueDeviceCertificate(
    uuid: string,
    csr: x509.Pkcs10CertificateRequest,
    now = new Date(),
  ): Promise<IssuedCertificate> {
    const { key, cert } = this.requireCa();
    const notBefore = new Date(now.getTime() - BACKDATE_MS);
    const notAfter = new Date(now.getTime() + this.deviceLifetimeMs);
    this.deviceExtensions ??= await deviceCertificateExtensions(cert);
    const [basicConstraints, keyUsage, extendedKeyUsage, authorityKeyId] = this.deviceExtensions;
    const serialNumber = randomSerial();
    const issued = await x509.X509CertificateGenerator.create({
      serialNumber,
      subject: `CN=${uuid}`,
      issuer: cert.subject,
      notBefore,
      notAfter,
      publicKey: csr.publicKey,
      signingKey: key,
      signingAlgorithm: SIGNING,
      extensions: [
        basicConstraints,
        keyUsage,
        extendedKeyUsage,
        new x509.SubjectAlternativeNameExtension([{ type: "url", value: `urn:uuid:${uuid}` }]),
        authorityKeyId,
      ],
    });
    const pem = issued.toString("pem");
    // Renew at two thirds of the lifetime (docs/architecture.md, "Identity and enrollment"), counted from issuance:
    // the backdating is for clock skew, not lifetime.
    const renewAfter = new Date(now.getTime() + (this.deviceLifetimeMs * 2) / 3);
    // randomSerial() has no leading zero byte, so its hex is the DER integer's, as node:crypto prints it.
    return { pem, serial: serialNumber.toUpperCase(), notBefore, notAfter, renewAfter };
  }

  private async createCa(): Promise<void> {
    const keys = await this.subtle.generateKey(EC_P256, true, ["sign", "verify"]);
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `CN=fieldgate device CA ${randomBytes(4).toString("hex")}, O=fieldgate`,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + 20 * 365 * DAY_MS),
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    writeSecretFile(this.caKeyFile, await this.exportKey(keys.privateKey));
    writePublicFile(this.caCertFile, cert.toString("pem"));
    // Re-import as non-extractable: nothing in the process can export the CA key afterwards.
    this.caKey = await this.importKey(fs.readFileSync(this.caKeyFile, "utf8"));
    this.caCert = cert;
  }

  private serverNames(): string[] {
    return [...new Set(["localhost", os.hostname(), ...this.options.hostnames])].sort();
  }

  private async ensureServerCertificate(): Promise<boolean> {
    const { key, cert } = this.requireCa();
    const wanted = this.serverNames();
    const namesFile = path.join(this.options.dir, "server.names.json");
    if (fs.existsSync(this.serverCertFile) && fs.existsSync(this.serverKeyFile) && fs.existsSync(namesFile)) {
      const current = JSON.parse(fs.readFileSync(namesFile, "utf8")) as string[];
      const existing = new X509Certificate(fs.readFileSync(this.serverCertFile));
      const fresh = new Date(existing.validTo).getTime() - Date.now() > 30 * DAY_MS;
      if (fresh && JSON.stringify(current) === JSON.stringify(wanted)) return false;
    }
    const keys = await this.subtle.generateKey(EC_P256, true, ["sign", "verify"]);
    const now = Date.now();
    const altNames: x509.JsonGeneralNames = [
      ...wanted.map((value) => ({ type: isIp(value) ? ("ip" as const) : ("dns" as const), value })),
      { type: "ip", value: "127.0.0.1" },
      { type: "ip", value: "::1" },
    ];
    const server = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: "CN=fieldgate cloud",
      issuer: cert.subject,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + 397 * DAY_MS),
      publicKey: keys.publicKey,
      signingKey: key,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(altNames),
        await x509.AuthorityKeyIdentifierExtension.create(cert),
      ],
    });
    writeSecretFile(this.serverKeyFile, await this.exportKey(keys.privateKey));
    writePublicFile(this.serverCertFile, `${server.toString("pem")}\n`);
    writePublicFile(namesFile, JSON.stringify(wanted));
    return true;
  }

  private requireCa(): { key: CryptoKey; cert: x509.X509Certificate } {
    if (!this.caKey || !this.caCert) throw new Error("CertificateAuthority.start() has not run");
    return { key: this.caKey, cert: this.caCert };
  }

  private async exportKey(key: CryptoKey): Promise<string> {
    const der = Buffer.from(await this.subtle.exportKey("pkcs8", key));
    return `-----BEGIN PRIVATE KEY-----\n${der.toString("base64").replace(/.{64}/g, "$&\n").trim()}\n-----END PRIVATE KEY-----\n`;
  }

  private async importKey(pem: string): Promise<CryptoKey> {
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
    return this.subtle.importKey("pkcs8", der, EC_P256, false, ["sign"]);
  }
}

/** CSR signature hashes accepted, by their WebCrypto name. */
const CSR_HASHES: Record<string, string> = { "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512" };

type DeviceExtensions = [x509.Extension, x509.Extension, x509.Extension, x509.Extension];

async function deviceCertificateExtensions(ca: x509.X509Certificate): Promise<DeviceExtensions> {
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    await x509.AuthorityKeyIdentifierExtension.create(ca),
  ];
}

/** 128 random bits, top bit clear so the DER integer stays positive (RFC 5280 §4.1.2.2). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString("hex");
}

function isIp(value: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(value) || value.includes(":");
}

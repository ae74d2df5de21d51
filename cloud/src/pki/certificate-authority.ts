import { createHash, createPublicKey, randomBytes, verify, webcrypto, X509Certificate } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FieldgateError } from "@fieldgate/shared";
import { assertKeyMatches, readCertificateFile, readPrivateKeyFile } from "./key-files.js";
import { publicKeyFingerprint } from "./key-fingerprint.js";
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
    const haveKey = fs.existsSync(this.caKeyFile);
    const haveCert = fs.existsSync(this.caCertFile);
    if (haveKey && haveCert) {
      await this.loadCa();
    } else if (haveKey || haveCert) {
      // A new CA here would silently orphan every enrolled device.
      const [missing, present] = haveKey ? [this.caCertFile, this.caKeyFile] : [this.caKeyFile, this.caCertFile];
      throw new FieldgateError(
        "CONFIG_INVALID",
        `${missing} is missing while ${present} exists. ${CA_FILES.fix}`,
        CA_FILES.field,
      );
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
  async verifyCsr(
    csrPem: string,
  ): Promise<{ csr: x509.Pkcs10CertificateRequest; sha256Hex: string; publicKeySha256: string }> {
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
    return {
      csr,
      sha256Hex: createHash("sha256").update(Buffer.from(csr.rawData)).digest("hex"),
      publicKeySha256: publicKeyFingerprint(new Uint8Array(csr.publicKey.rawData)),
    };
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

  /** Loads the CA pair, checked: PEM, a certificate, not expired, P-256, and the key is the certificate's. */
  private async loadCa(): Promise<void> {
    const cert = readCertificateFile(this.caCertFile, CA_FILES);
    const key = readPrivateKeyFile(this.caKeyFile, CA_FILES);
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw new FieldgateError(
        "CONFIG_INVALID",
        `${this.caKeyFile} is not an ECDSA P-256 key. ${CA_FILES.fix}`,
        CA_FILES.field,
      );
    }
    assertKeyMatches(cert, this.caCertFile, key, this.caKeyFile, CA_FILES);
    this.caKey = await this.importKey(key.export({ type: "pkcs8", format: "pem" }).toString());
    this.caCert = new x509.X509Certificate(cert.toString());
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
    const haveCert = fs.existsSync(this.serverCertFile);
    if (haveCert && fs.existsSync(this.serverKeyFile)) {
      const existing = this.checkedServerCertificate();
      const fresh = new Date(existing.validTo).getTime() - Date.now() > 30 * DAY_MS;
      if (fresh && JSON.stringify(readNames(namesFile)) === JSON.stringify(wanted)) return false;
    }
    if (haveCert) this.keepServerPairAside();
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

  /**
   * The server pair, checked: a certificate (expired is fine: it is reissued), its key, issued by
   * this CA. A broken pair is an error rather than silently replaced: it means tampering or a bad copy.
   */
  private checkedServerCertificate(): X509Certificate {
    const cert = readCertificateFile(this.serverCertFile, SERVER_FILES, new Date(), { allowExpired: true });
    const key = readPrivateKeyFile(this.serverKeyFile, SERVER_FILES);
    assertKeyMatches(cert, this.serverCertFile, key, this.serverKeyFile, SERVER_FILES);
    const ca = new X509Certificate(this.caPem());
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
      throw new FieldgateError(
        "CONFIG_INVALID",
        `${this.serverCertFile} was not issued by ${this.caCertFile}. ${SERVER_FILES.fix}`,
        SERVER_FILES.field,
      );
    }
    return cert;
  }

  /**
   * Before a reissue: the old pair stays beside, as `server.crt.<time>.old` (the key 0600). Only the
   * newest few are kept: a host whose name changes at every start (a container) would pile them up.
   */
  private keepServerPairAside(): void {
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    fs.copyFileSync(this.serverCertFile, `${this.serverCertFile}.${stamp}.old`);
    if (fs.existsSync(this.serverKeyFile)) {
      const oldKey = `${this.serverKeyFile}.${stamp}.old`;
      writeSecretFile(oldKey, fs.readFileSync(this.serverKeyFile));
    }
    const stamps = fs
      .readdirSync(this.options.dir)
      .filter((name) => /^server\.crt\..+\.old$/.test(name))
      .map((name) => name.slice("server.crt.".length, -".old".length))
      .sort();
    for (const old of stamps.slice(0, -KEPT_SERVER_PAIRS)) {
      fs.rmSync(`${this.serverCertFile}.${old}.old`, { force: true });
      fs.rmSync(`${this.serverKeyFile}.${old}.old`, { force: true });
    }
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

/** How many replaced server pairs stay in `pki/`. */
const KEPT_SERVER_PAIRS = 3;

const CA_FILES = {
  field: "data-dir",
  fix: "Restore pki/ from a backup of this data directory. Only if that is impossible: move pki/ away and restart for a new CA; every device must then enroll again",
};
const SERVER_FILES = {
  field: "data-dir",
  fix: "Move server.crt and server.key out of pki/; the cloud issues a new pair from its CA at the next start",
};

function readNames(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return undefined;
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

import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { EnrollResponse } from "@fieldgate/shared";
import { writeFileAtomic } from "./atomic-file.js";

/** What `identity/identity.json` records about the operational certificate. */
export interface IdentityInfo {
  uuid: string;
  serial: string;
  notAfter: string;
  renewAfter: string;
  mqttUrl: string;
  apiUrl: string;
  enrolledAt: string;
  /** The firmware signing public key (PEM) the cloud handed over at enrollment, if it had one. */
  firmwarePublicKey?: string;
}

/** The operational identity, loaded: PEMs for mTLS plus the recorded info. */
export interface Identity extends IdentityInfo {
  keyPem: string;
  certPem: string;
  caPem: string;
}

/** Paths of the identity files inside a data directory. */
export function identityPaths(dataDir: string) {
  const dir = join(dataDir, "identity");
  return {
    dir,
    key: join(dir, "device.key"),
    cert: join(dir, "device.crt"),
    ca: join(dir, "ca.crt"),
    info: join(dir, "identity.json"),
  };
}

/**
 * Keeps the operational identity in `<dataDir>/identity/`. `identity.json` is written last and is the
 * commit marker: without it (or if key and certificate disagree) the device is not enrolled.
 */
export class IdentityStore {
  readonly paths: ReturnType<typeof identityPaths>;

  constructor(readonly dataDir: string) {
    this.paths = identityPaths(dataDir);
  }

  /** The stored identity, or `undefined` if the device is not (consistently) enrolled. */
  load(): Identity | undefined {
    if (!existsSync(this.paths.info)) return undefined;
    try {
      const info = JSON.parse(readFileSync(this.paths.info, "utf8")) as IdentityInfo;
      const keyPem = readFileSync(this.paths.key, "utf8");
      const certPem = readFileSync(this.paths.cert, "utf8");
      const caPem = readFileSync(this.paths.ca, "utf8");
      // A crash between renames could pair a new key with an old certificate; refuse that pair.
      if (!new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem))) return undefined;
      return { ...info, keyPem, certPem, caPem };
    } catch {
      return undefined;
    }
  }

  /** Only the recorded info (for `status`): does not read the private key. */
  loadInfo(): IdentityInfo | undefined {
    try {
      return JSON.parse(readFileSync(this.paths.info, "utf8")) as IdentityInfo;
    } catch {
      return undefined;
    }
  }

  /** Stores a new identity from an enrollment answer and the key generated for it. */
  save(keyPem: string, response: EnrollResponse, now: Date = new Date()): Identity {
    mkdirSync(this.paths.dir, { recursive: true, mode: 0o700 });
    // Removing the marker first means a crash mid-save reads as "not enrolled", never as a mixed identity.
    rmSync(this.paths.info, { force: true });
    writeFileAtomic(this.paths.key, keyPem, 0o600);
    writeFileAtomic(this.paths.cert, response.certificate, 0o600);
    writeFileAtomic(this.paths.ca, response.caCertificate, 0o600);
    const info: IdentityInfo = {
      uuid: response.uuid.toLowerCase(),
      serial: response.serial,
      notAfter: response.notAfter,
      renewAfter: response.renewAfter,
      mqttUrl: response.mqttUrl,
      apiUrl: response.apiUrl,
      enrolledAt: now.toISOString(),
      ...(response.firmwarePublicKey !== undefined && { firmwarePublicKey: response.firmwarePublicKey }),
    };
    writeFileAtomic(this.paths.info, `${JSON.stringify(info, null, 2)}\n`, 0o600);
    return { ...info, keyPem, certPem: response.certificate, caPem: response.caCertificate };
  }

  /**
   * Factory reset of the operational identity: removes key, certificate and identity.json.
   * The CA certificate, the factory key (which lives outside this folder) and the outbox stay.
   */
  reset(): string[] {
    const removed: string[] = [];
    for (const p of [this.paths.info, this.paths.key, this.paths.cert]) {
      if (existsSync(p)) {
        rmSync(p, { force: true });
        removed.push(p);
      }
    }
    return removed;
  }
}

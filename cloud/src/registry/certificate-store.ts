import type Database from "better-sqlite3";
import type { IssuedCertificate } from "../pki/certificate-authority.js";
import { certificateKeyFingerprint } from "../pki/key-fingerprint.js";

/** A device's certificate as the registry hands it on: times in epoch milliseconds. */
export interface StoredCertificate {
  serial: string;
  issuedAt: number;
  notAfter: number;
}

/** A certificate in the device's history, with its revocation if any. */
export interface CertificateHistoryEntry extends StoredCertificate {
  revokedAt: number | null;
  revokeReason: string | null;
}

/**
 * The current certificate's expiry for the device aliased `d` in a device query: the newest
 * unrevoked one, as `CertificateStore.currentCertificate`. Kept here so every statement on
 * `certificates` lives in this module.
 */
export const CURRENT_CERTIFICATE_NOT_AFTER_SQL = `(SELECT c.not_after FROM certificates c WHERE c.device_id = d.id AND c.revoked_at IS NULL
  ORDER BY c.issued_at DESC, c.rowid DESC LIMIT 1)`;

interface CertificateRow {
  serial: string;
  issued_at: number;
  not_after: number;
}

/**
 * The `certificates` table: the only module that issues SQL against it, used only by the device
 * registry. Writes join the caller's transaction; nothing SQLite-specific leaves it.
 */
export class CertificateStore {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(
    private readonly db: Database.Database,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Records a certificate just issued to the device for the key with this fingerprint. */
  issueCertificate(deviceId: number, issued: IssuedCertificate, publicKeySha256: string): void {
    this.statement(
      "INSERT INTO certificates (serial, device_id, issued_at, not_after, pem, public_key_sha256) VALUES (?, ?, ?, ?, ?, ?)",
    ).run(issued.serial, deviceId, this.clock(), issued.notAfter.getTime(), issued.pem, publicKeySha256);
  }

  /** The device's current certificate: the newest unrevoked one. */
  currentCertificate(deviceId: number): StoredCertificate | undefined {
    const row = this.statement(
      "SELECT serial, issued_at, not_after FROM certificates WHERE device_id = ? AND revoked_at IS NULL ORDER BY issued_at DESC, rowid DESC LIMIT 1",
    ).get(deviceId) as CertificateRow | undefined;
    return row && { serial: row.serial, issuedAt: row.issued_at, notAfter: row.not_after };
  }

  /** Every certificate issued to the device, newest first. */
  certificateHistory(deviceId: number): CertificateHistoryEntry[] {
    const rows = this.statement(
      "SELECT serial, issued_at, not_after, revoked_at, revoke_reason FROM certificates WHERE device_id = ? ORDER BY issued_at DESC, rowid DESC",
    ).all(deviceId) as (CertificateRow & { revoked_at: number | null; revoke_reason: string | null })[];
    return rows.map((r) => ({
      serial: r.serial,
      issuedAt: r.issued_at,
      notAfter: r.not_after,
      revokedAt: r.revoked_at,
      revokeReason: r.revoke_reason,
    }));
  }

  /** Marks every unrevoked certificate of the device revoked; returns how many were. */
  revokeCertificates(deviceId: number, reason: string): number {
    return this.statement(
      "UPDATE certificates SET revoked_at = ?, revoke_reason = ? WHERE device_id = ? AND revoked_at IS NULL",
    ).run(this.clock(), reason, deviceId).changes;
  }

  /**
   * Whether any certificate of the device, current, superseded or revoked, was issued for the key
   * with this fingerprint. Rows stored before fingerprints were recorded are fingerprinted from
   * their PEM.
   */
  keyWasCertified(deviceId: number, publicKeySha256: string): boolean {
    const rows = this.statement(
      "SELECT public_key_sha256, pem FROM certificates WHERE device_id = ? AND (public_key_sha256 = ? OR public_key_sha256 IS NULL)",
    ).all(deviceId, publicKeySha256) as { public_key_sha256: string | null; pem: string }[];
    return rows.some((r) => (r.public_key_sha256 ?? certificateKeyFingerprint(r.pem)) === publicKeySha256);
  }

  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}

import { type Kysely, sql } from "kysely";
import type { IssuedCertificate } from "../pki/certificate-authority.js";
import { certificateKeyFingerprint } from "../pki/key-fingerprint.js";
import type { CloudDatabase, Executor, SqlDialect } from "../storage/cloud-database.js";

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

/** The `certificates` table as stored. */
export interface CertificatesTable {
  serial: string;
  device_id: number;
  issued_at: number;
  not_after: number;
  revoked_at: number | null;
  revoke_reason: string | null;
  pem: string;
  public_key_sha256: string | null;
}

type CertificateTables = {
  certificates: CertificatesTable;
};

/**
 * Newest first. Certificates issued in the same millisecond: the unrevoked one is the newer (an
 * issue revokes the ones before it), then the later revoked. SQLite keeps its insertion order as
 * the last word; PostgreSQL has no such column, and the serial at least makes the order stable.
 */
function newestFirst(dialect: SqlDialect, alias: string): string {
  const last = dialect === "sqlite" ? `${alias}.rowid DESC` : `${alias}.serial DESC`;
  return `${alias}.issued_at DESC, (CASE WHEN ${alias}.revoked_at IS NULL THEN 1 ELSE 0 END) DESC, ${alias}.revoked_at DESC, ${last}`;
}

/**
 * The current certificate's expiry for the device aliased `d` in a device query: the newest
 * unrevoked one, as `CertificateStore.currentCertificate`. Kept here so every statement on
 * `certificates` lives in this module.
 */
export function currentCertificateNotAfterSql(dialect: SqlDialect): string {
  return `(SELECT c.not_after FROM certificates c WHERE c.device_id = d.id AND c.revoked_at IS NULL
  ORDER BY ${newestFirst(dialect, "c")} LIMIT 1)`;
}

/**
 * The `certificates` table: the only module that issues SQL against it, used only by the device
 * registry. Every method runs on `executor` when given (the caller's transaction).
 */
export class CertificateStore {
  private readonly db: Kysely<CertificateTables>;
  private readonly dialect: SqlDialect;

  constructor(
    database: CloudDatabase,
    private readonly clock: () => number = Date.now,
  ) {
    this.db = database.kysely.withTables<CertificateTables>();
    this.dialect = database.dialect;
  }

  private on(executor: Executor | undefined): Kysely<CertificateTables> {
    return executor ?? this.db;
  }

  /** Records a certificate just issued to the device for the key with this fingerprint. */
  async issueCertificate(
    deviceId: number,
    issued: IssuedCertificate,
    publicKeySha256: string,
    executor?: Executor,
  ): Promise<void> {
    await this.on(executor)
      .insertInto("certificates")
      .values({
        serial: issued.serial,
        device_id: deviceId,
        issued_at: this.clock(),
        not_after: issued.notAfter.getTime(),
        pem: issued.pem,
        public_key_sha256: publicKeySha256,
      })
      .execute();
  }

  /** The device's current certificate: the newest unrevoked one. */
  async currentCertificate(deviceId: number, executor?: Executor): Promise<StoredCertificate | undefined> {
    const row = await this.on(executor)
      .selectFrom("certificates as c")
      .select(["c.serial", "c.issued_at", "c.not_after"])
      .where("c.device_id", "=", deviceId)
      .where("c.revoked_at", "is", null)
      .orderBy(sql.raw(newestFirst(this.dialect, "c")))
      .limit(1)
      .executeTakeFirst();
    return row && { serial: row.serial, issuedAt: row.issued_at, notAfter: row.not_after };
  }

  /** Every certificate issued to the device, newest first. */
  async certificateHistory(deviceId: number, executor?: Executor): Promise<CertificateHistoryEntry[]> {
    const rows = await this.on(executor)
      .selectFrom("certificates as c")
      .select(["c.serial", "c.issued_at", "c.not_after", "c.revoked_at", "c.revoke_reason"])
      .where("c.device_id", "=", deviceId)
      .orderBy(sql.raw(newestFirst(this.dialect, "c")))
      .execute();
    return rows.map((r) => ({
      serial: r.serial,
      issuedAt: r.issued_at,
      notAfter: r.not_after,
      revokedAt: r.revoked_at,
      revokeReason: r.revoke_reason,
    }));
  }

  /** Marks every unrevoked certificate of the device revoked; returns how many were. */
  async revokeCertificates(deviceId: number, reason: string, executor?: Executor): Promise<number> {
    const revoked = await this.on(executor)
      .updateTable("certificates")
      .set({ revoked_at: this.clock(), revoke_reason: reason })
      .where("device_id", "=", deviceId)
      .where("revoked_at", "is", null)
      .returning("serial")
      .execute();
    return revoked.length;
  }

  /**
   * Whether any certificate of the device, current, superseded or revoked, was issued for the key
   * with this fingerprint. Rows stored before fingerprints were recorded are fingerprinted from
   * their PEM.
   */
  async keyWasCertified(deviceId: number, publicKeySha256: string, executor?: Executor): Promise<boolean> {
    const rows = await this.on(executor)
      .selectFrom("certificates")
      .select(["public_key_sha256", "pem"])
      .where("device_id", "=", deviceId)
      .where((eb) => eb.or([eb("public_key_sha256", "=", publicKeySha256), eb("public_key_sha256", "is", null)]))
      .execute();
    return rows.some((r) => (r.public_key_sha256 ?? certificateKeyFingerprint(r.pem)) === publicKeySha256);
  }
}

import { createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import {
  ENROLL_CHECK_DIGEST,
  type EnrollCheckRequest,
  type EnrollCheckResponse,
  type EnrollRequest,
  type EnrollResponse,
  FieldgateError,
  factoryProofMessage,
  type RenewRequest,
  SCHEMA_VERSION,
} from "@fieldgate/shared";
import type { Kysely } from "kysely";
import { secretMatches } from "../credentials/secrets.js";
import type { CertificateAuthority, IssuedCertificate } from "../pki/certificate-authority.js";
import type { DeviceRegistry, DeviceRow } from "../registry/device-registry.js";
import { affectedRows, type CloudDatabase } from "../storage/cloud-database.js";

/** How far a factory-signed request's timestamp may be from the cloud's clock. */
export const FACTORY_PROOF_MAX_SKEW_MS = 5 * 60_000;

/** The table this module owns: factory-proof nonces seen, kept until their proof would be stale. */
export type EnrollmentTables = {
  enrollment_nonces: { device_id: number; nonce: string; expires_at: number };
};

export interface EnrollmentEndpoints {
  mqttUrl: string;
  apiUrl: string;
}

/**
 * Enrollment: inside an open window, a device proves its right (token, factory-key signature or,
 * where the organization allows it, its uuid alone) and gets a certificate for the key in its CSR.
 */
export class EnrollmentService {
  private standInKey: string | undefined;
  private readonly db: Kysely<EnrollmentTables>;

  constructor(
    database: CloudDatabase,
    private readonly registry: DeviceRegistry,
    private readonly ca: CertificateAuthority,
    private readonly clock: () => number = Date.now,
    /** The firmware signing public key handed to devices, when the cloud has one (issue #5). */
    private readonly firmwarePublicKey: () => string | undefined = () => undefined,
  ) {
    this.db = database.kysely.withTables<EnrollmentTables>();
  }

  async enroll(request: EnrollRequest, endpoints: EnrollmentEndpoints): Promise<EnrollResponse> {
    const uuid = request.uuid.toLowerCase();
    await this.openWindowRow(uuid);
    const { csr, sha256Hex, publicKeySha256 } = await this.ca.verifyCsr(request.csr);
    // Re-read after the await: another request may have used or closed the window meanwhile.
    const row = await this.openWindowRow(uuid);
    await this.checkProof(row, request, sha256Hex);
    // After the proof, so only the device's rightful holder learns that a key was refused.
    await this.registry.assertKeyNotUsed(row.id, publicKeySha256);
    const issued = await this.ca.issueDeviceCertificate(uuid, csr, new Date(this.clock()));

    // Issuing awaited; only the request that still sees the same window may spend it.
    const revoked = await this.registry.spendWindow(uuid, row, issued, publicKeySha256);
    if (revoked > 0) this.registry.notifyRevoked(uuid, "superseded");
    return this.answer(uuid, issued, endpoints);
  }

  private answer(uuid: string, issued: IssuedCertificate, endpoints: EnrollmentEndpoints): EnrollResponse {
    const firmwarePublicKey = this.firmwarePublicKey();
    return {
      ...(firmwarePublicKey !== undefined && { firmwarePublicKey }),
      v: SCHEMA_VERSION,
      uuid,
      certificate: issued.pem,
      caCertificate: this.ca.caPem(),
      serial: issued.serial,
      notAfter: issued.notAfter.toISOString(),
      renewAfter: issued.renewAfter.toISOString(),
      mqttUrl: endpoints.mqttUrl,
      apiUrl: endpoints.apiUrl,
    };
  }

  /**
   * Issues a new certificate for a new key to a device that proved itself with its current one.
   * The old certificate is superseded but its live session is not dropped: the agent moves to the
   * new one itself, so no reading is lost in the switch.
   */
  async renew(
    device: DeviceRow,
    currentSerial: string,
    request: RenewRequest,
    endpoints: EnrollmentEndpoints,
  ): Promise<EnrollResponse> {
    if (device.retired_at !== null) throw new FieldgateError("CERT_REVOKED", "the device was retired");
    const { csr, publicKeySha256 } = await this.ca.verifyCsr(request.csr);
    await this.registry.assertKeyNotUsed(device.id, publicKeySha256);
    const issued = await this.ca.issueDeviceCertificate(device.uuid, csr, new Date(this.clock()));
    await this.registry.renewCertificate(device.id, currentSerial, issued, publicKeySha256);
    return this.answer(device.uuid, issued, endpoints);
  }

  /**
   * For `doctor`: with a valid token or factory-key proof, says whether the window is open and the
   * device enrolled; anything else (unknown uuid, wrong proof) gets `{verified: false}`, alike.
   * Wrong proofs are not counted: a 256-bit token cannot be guessed, and a field engineer's typo
   * must not close the window.
   */
  async check(request: EnrollCheckRequest): Promise<EnrollCheckResponse> {
    // The same work whether or not the uuid exists or has a factory key: one probe row, one hash,
    // one signature check (against a stand-in key when there is none), so time tells nothing.
    const row = await this.registry.enrollmentProbe(request.uuid);
    const now = this.clock();
    let verified = false;
    if (request.method === "token" && request.token !== undefined) {
      verified = secretMatches(request.token, row.token_hash) && row.id !== null;
    } else if (request.method === "factory-key" && request.factory) {
      const { timestamp, nonce, signature } = request.factory;
      const message = factoryProofMessage(request.uuid.toLowerCase(), ENROLL_CHECK_DIGEST, timestamp, nonce);
      const signed = verifyFactorySignature(row.factory_public_key ?? this.standInFactoryKey(), message, signature);
      verified = signed && row.factory_public_key !== null && Math.abs(now - timestamp) <= FACTORY_PROOF_MAX_SKEW_MS;
      if (verified && row.id !== null) {
        verified = await this.spendNonce(row.id, nonce, timestamp + 2 * FACTORY_PROOF_MAX_SKEW_MS);
      }
    }
    if (row.id === null || !verified) return { verified: false };
    const open = row.window_expires_at !== null && row.window_expires_at > now;
    return {
      verified: true,
      windowOpen: open,
      windowExpiresAt: open && row.window_expires_at !== null ? new Date(row.window_expires_at).toISOString() : null,
      enrolled: await this.registry.isEnrolled(row.id),
    };
  }

  /** A P-256 public key no device has, made on first use: what a check without a key verifies against. */
  private standInFactoryKey(): string {
    this.standInKey ??= generateKeyPairSync("ec", { namedCurve: "prime256v1" })
      .publicKey.export({ type: "spki", format: "pem" })
      .toString();
    return this.standInKey;
  }

  /**
   * The device row if its window is open; otherwise the same answer, after the same work, whether
   * or not the uuid exists (the probe row has one shape either way; the full row is read only
   * for an open window).
   */
  private async openWindowRow(uuid: string): Promise<DeviceRow> {
    const probe = await this.registry.enrollmentProbe(uuid);
    if (probe.window_expires_at === null || probe.window_expires_at <= this.clock()) throw this.closed();
    const row = await this.registry.findByUuid(uuid);
    if (!row || row.window_expires_at === null || row.window_expires_at <= this.clock()) throw this.closed();
    return row;
  }

  private closed(): FieldgateError {
    return new FieldgateError("ENROLL_WINDOW_CLOSED");
  }

  /**
   * Records a factory-proof nonce until its proof would be stale; false when it was seen before.
   * One conditional insert, so of two requests replaying one nonce exactly one records it.
   */
  private async spendNonce(deviceId: number, nonce: string, expiresAt: number): Promise<boolean> {
    const result = await this.db
      .insertInto("enrollment_nonces")
      .values({ device_id: deviceId, nonce, expires_at: expiresAt })
      .onConflict((oc) => oc.columns(["device_id", "nonce"]).doNothing())
      .executeTakeFirst();
    return affectedRows(result) > 0;
  }

  private async checkProof(row: DeviceRow, request: EnrollRequest, csrSha256Hex: string): Promise<void> {
    switch (request.method) {
      case "token": {
        if (request.token === undefined)
          throw new FieldgateError("VALIDATION_FAILED", "token is required for method token", "token");
        if (!secretMatches(request.token, row.token_hash)) await this.fail(row, "ENROLL_TOKEN_INVALID", "token");
        return;
      }
      case "factory-key": {
        const proof = request.factory;
        if (!proof)
          throw new FieldgateError("VALIDATION_FAILED", "factory is required for method factory-key", "factory");
        if (Math.abs(this.clock() - proof.timestamp) > FACTORY_PROOF_MAX_SKEW_MS) {
          throw new FieldgateError("ENROLL_STALE", undefined, "factory.timestamp");
        }
        const message = factoryProofMessage(row.uuid, csrSha256Hex, proof.timestamp, proof.nonce);
        if (!row.factory_public_key || !verifyFactorySignature(row.factory_public_key, message, proof.signature)) {
          await this.fail(row, "ENROLL_SIGNATURE_INVALID", "factory.signature");
        }
        await this.db.deleteFrom("enrollment_nonces").where("expires_at", "<", this.clock()).execute();
        const fresh = await this.spendNonce(row.id, proof.nonce, proof.timestamp + 2 * FACTORY_PROOF_MAX_SKEW_MS);
        if (!fresh) throw new FieldgateError("ENROLL_REPLAYED", undefined, "factory.nonce");
        return;
      }
      case "uuid-only": {
        if (!(await this.registry.organization(row.org_id)).uuidOnlyEnrollment) {
          throw new FieldgateError(
            "ENROLL_METHOD_DISABLED",
            "uuid-only enrollment is disabled for this organization; enroll with a token or a factory key",
            "method",
          );
        }
        return;
      }
    }
  }

  /** Counts a wrong proof (the registry closes the window after MAX_FAILED_ATTEMPTS). */
  private async fail(
    row: DeviceRow,
    code: "ENROLL_TOKEN_INVALID" | "ENROLL_SIGNATURE_INVALID",
    field: string,
  ): Promise<never> {
    await this.registry.countWrongProof(row.id);
    throw new FieldgateError(code, undefined, field);
  }
}

function verifyFactorySignature(publicKeyPem: string, message: string, signatureB64: string): boolean {
  try {
    const key = createPublicKey(publicKeyPem);
    const signature = Buffer.from(signatureB64, "base64");
    const data = Buffer.from(message, "utf8");
    // Ed25519 signs the message itself; ECDSA keys sign its SHA-256 digest (DER signature).
    return key.asymmetricKeyType === "ed25519"
      ? verify(null, data, key, signature)
      : verify("sha256", data, key, signature);
  } catch {
    return false;
  }
}

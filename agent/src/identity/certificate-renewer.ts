import { EventEmitter } from "node:events";
import { EnrollResponse, FieldgateError, SchemaValidator } from "@fieldgate/shared";
import type { Logger } from "pino";
import { errorFromAnswer } from "../enrollment/enrollment-client.js";
import { Backoff } from "../retry/backoff.js";
import { apiUrl, postJson } from "../transport/https-json.js";
import { generateKeyAndCsr } from "./csr.js";
import type { Identity, IdentityStore } from "./identity-store.js";

export interface CertificateRenewerOptions {
  /** Base URL of the cloud API. */
  cloudUrl: string;
  identityStore: IdentityStore;
  logger: Logger;
  retryMinMs: number;
  retryMaxMs: number;
  random?: () => number;
  now?: () => number;
  timeoutMs?: number;
}

export interface CertificateRenewerEvents {
  /** A new certificate is stored; the session should move to it. */
  renewed: [Identity];
  /** The certificate can no longer be renewed (expired, revoked): the device must enroll again. */
  lost: [FieldgateError];
}

const validator = new SchemaValidator();

/**
 * Renews the operational certificate at two thirds of its life, plus jitter so a fleet enrolled in
 * one afternoon does not renew in one second. Each renewal is a new key and a CSR sent over mTLS
 * with the current certificate. Failures retry with backoff; an expired or revoked certificate
 * cannot renew and is reported as lost.
 */
export class CertificateRenewer extends EventEmitter<CertificateRenewerEvents> {
  private timer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private readonly now: () => number;
  private readonly random: () => number;
  private lastFailure: string | undefined;

  constructor(private readonly options: CertificateRenewerOptions) {
    super();
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.backoff = new Backoff({ minMs: options.retryMinMs, maxMs: options.retryMaxMs, random: this.random });
  }

  /** Schedules the renewal of this identity (replacing any earlier schedule). */
  start(identity: Identity): void {
    this.stop();
    const renewAfter = Date.parse(identity.renewAfter);
    const notAfter = Date.parse(identity.notAfter);
    // Jitter: up to a tenth of the time between renewal and expiry.
    const jitter = this.random() * Math.max(0, notAfter - renewAfter) * 0.1;
    this.schedule(identity, Math.max(0, renewAfter - this.now()) + jitter);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(identity: Identity, delayMs: number): void {
    // setTimeout holds at most about 24.8 days; longer waits are taken in steps.
    const step = Math.min(delayMs, 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (step < delayMs) this.schedule(identity, delayMs - step);
      else void this.attempt(identity);
    }, step);
    this.timer.unref?.();
  }

  private async attempt(identity: Identity): Promise<void> {
    const { logger } = this.options;
    if (Date.parse(identity.notAfter) <= this.now()) {
      this.emit("lost", new FieldgateError("CERT_EXPIRED"));
      return;
    }
    try {
      const renewed = await this.renew(identity);
      this.backoff.reset();
      this.lastFailure = undefined;
      logger.info(
        { uuid: renewed.uuid, serial: renewed.serial, previous: identity.serial, notAfter: renewed.notAfter },
        `certificate renewed: ${renewed.serial}, valid until ${renewed.notAfter}`,
      );
      this.emit("renewed", renewed);
      this.start(renewed);
    } catch (err) {
      const error = err instanceof FieldgateError ? err : new FieldgateError("INTERNAL", (err as Error).message);
      if (error.code === "CERT_EXPIRED" || error.code === "CERT_REVOKED" || error.code === "CERT_UNKNOWN") {
        this.emit("lost", error);
        return;
      }
      const delay = this.backoff.next();
      const line = `certificate renewal failed (${error.code}: ${error.message}); retrying in ${Math.round(delay / 1000)}s`;
      if (error.code !== this.lastFailure) logger.warn({ code: error.code }, line);
      else logger.debug({ code: error.code }, line);
      this.lastFailure = error.code;
      this.schedule(identity, delay);
    }
  }

  /** One renewal: new key, CSR, POST /api/v1/renew over mTLS, then the identity is stored. */
  async renew(identity: Identity): Promise<Identity> {
    const { keyPem, csrPem } = await generateKeyAndCsr(identity.uuid);
    const { status, json } = await postJson(
      apiUrl(this.options.cloudUrl, "/api/v1/renew"),
      { v: 1, csr: csrPem },
      { ca: identity.caPem, key: identity.keyPem, cert: identity.certPem },
      this.options.timeoutMs,
    );
    if (status < 200 || status >= 300) throw errorFromAnswer(status, json);
    let response: EnrollResponse;
    try {
      response = validator.parse(EnrollResponse, json);
    } catch (err) {
      throw new FieldgateError("INTERNAL", `the cloud's renewal answer is malformed: ${(err as Error).message}`);
    }
    if (response.uuid !== identity.uuid)
      throw new FieldgateError("INTERNAL", `the cloud renewed ${response.uuid}, not ${identity.uuid}`);
    return this.options.identityStore.save(keyPem, response);
  }
}

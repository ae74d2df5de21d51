import { type ErrorCode, FieldgateError } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { Identity } from "../identity/identity-store.js";
import { Backoff, sleep } from "../retry/backoff.js";
import { enrollmentAdvice } from "./enrollment-advice.js";
import type { Enroller } from "./enrollment-client.js";

/** Dependencies of the daemon's enrollment loop. */
export interface EnrollmentLoopOptions {
  enroller: Enroller;
  uuid: string;
  retryMinMs: number;
  retryMaxMs: number;
  logger: Logger;
  random?: () => number;
  /** Told about every failed attempt (for status.json). */
  onError?: (error: FieldgateError) => void;
  /** An identity stored meanwhile by another process (`fieldgate-agent enroll`), adopted instead of enrolling. */
  stored?: () => Identity | undefined;
}

/**
 * Tries to enroll until it succeeds or is stopped, with full-jitter backoff between retryMin and
 * retryMax. It logs one line per distinct condition (a repeat of the same code stays at debug),
 * so a device waiting for its window does not flood the log.
 */
export class EnrollmentLoop {
  private readonly abort = new AbortController();
  private lastCode: ErrorCode | undefined;

  constructor(private readonly options: EnrollmentLoopOptions) {}

  /** Resolves with the identity once enrolled, or `undefined` if stopped first. */
  async run(): Promise<Identity | undefined> {
    const { enroller, uuid, logger } = this.options;
    const backoff = new Backoff({
      minMs: this.options.retryMinMs,
      maxMs: this.options.retryMaxMs,
      ...(this.options.random && { random: this.options.random }),
    });
    const every = Math.round(this.options.retryMaxMs / 1000);
    while (!this.abort.signal.aborted) {
      const stored = this.options.stored?.();
      if (stored) {
        logger.info(
          { uuid, serial: stored.serial },
          `using the identity enrolled by \`fieldgate-agent enroll\` (${stored.serial})`,
        );
        return stored;
      }
      // Read before the attempt: a rejected token changes the method of the next one.
      const method = enroller.method;
      try {
        const identity = await enroller.enroll();
        logger.info(
          { uuid, serial: identity.serial, notAfter: identity.notAfter, method },
          `enrolled ${uuid} (method ${method}), certificate ${identity.serial} valid until ${identity.notAfter}`,
        );
        return identity;
      } catch (err) {
        const error =
          err instanceof FieldgateError ? err : new FieldgateError("INTERNAL", (err as Error).message ?? String(err));
        this.options.onError?.(error);
        const line = `${describe(error.code, uuid)}: ${enrollmentAdvice(error.code, uuid)}; retrying every ≤${every}s`;
        if (error.code !== this.lastCode) {
          logger.warn({ code: error.code, uuid, method, detail: error.message }, line);
          this.lastCode = error.code;
        } else {
          logger.debug({ code: error.code, uuid }, line);
        }
      }
      await sleep(backoff.next(), this.abort.signal);
    }
    return undefined;
  }

  stop(): void {
    this.abort.abort();
  }
}

function describe(code: ErrorCode, uuid: string): string {
  switch (code) {
    case "ENROLL_WINDOW_CLOSED":
      return `enrollment window closed for ${uuid}`;
    case "ENROLL_TOKEN_INVALID":
      return `enrollment token rejected for ${uuid}`;
    case "CLOUD_UNREACHABLE":
      return `cloud unreachable while enrolling ${uuid}`;
    default:
      return `enrollment of ${uuid} failed with ${code}`;
  }
}

import {
  type EnrollMethod,
  type EnrollRequest,
  EnrollResponse,
  FieldgateError,
  isErrorCode,
  SchemaValidator,
} from "@fieldgate/shared";
import { generateKeyAndCsr } from "../identity/csr.js";
import type { FactoryKey } from "../identity/factory-key.js";
import type { Identity, IdentityStore } from "../identity/identity-store.js";
import { apiUrl, postJson } from "../transport/https-json.js";
import type { RejectedTokens } from "./rejected-tokens.js";

/** How the enrollment client reaches the cloud and proves its right to enroll. */
export interface EnrollmentClientOptions {
  /** Base URL of the cloud API, e.g. `https://localhost:8443`. */
  cloudUrl: string;
  /** PEM of the only CA to trust for the API; the system store when absent. */
  ca?: string | Buffer;
  uuid: string;
  token?: string;
  factoryKey?: FactoryKey;
  identity: IdentityStore;
  /** Request timeout; a slow cloud is `CLOUD_UNREACHABLE`. */
  timeoutMs?: number;
  /** The daemon passes this so a rejected token is never sent again; the one-shot CLI does not. */
  rejectedTokens?: RejectedTokens;
}

/** Something that can enroll the device once; the loop and the CLI depend on this, tests fake it. */
export interface Enroller {
  /** The proof the next attempt will use. */
  readonly method: EnrollMethod;
  enroll(): Promise<Identity>;
}

const validator = new SchemaValidator();

/**
 * POSTs an `EnrollRequest` to `/api/v1/enroll` over HTTPS and stores the resulting identity.
 * Uses `node:https` rather than fetch because only it can pin a private CA per request.
 */
export class EnrollmentClient implements Enroller {
  constructor(private readonly options: EnrollmentClientOptions) {}

  /**
   * A usable token first, then the factory key; uuid-only only when neither is configured. A
   * rejected token without a factory key stays "token": the attempt is refused without sending it.
   */
  get method(): EnrollMethod {
    if (this.usableToken()) return "token";
    if (this.options.factoryKey) return "factory-key";
    return this.options.token ? "token" : "uuid-only";
  }

  /** Generates a fresh key and CSR, enrolls, saves the identity. Throws `FieldgateError` with the cloud's code. */
  async enroll(): Promise<Identity> {
    const { factoryKey } = this.options;
    const token = this.usableToken();
    if (!token && !factoryKey && this.options.token) {
      // Sending it again would only count another wrong try against the window.
      throw new FieldgateError(
        "ENROLL_TOKEN_INVALID",
        "the configured token was rejected earlier and is not sent again; configure the new token from `fieldgate-cloud devices reset-token`, or run `fieldgate-agent enroll`",
        "enrollment.token",
      );
    }
    try {
      return await this.attempt(token);
    } catch (err) {
      // The cloud refuses a key one of the device's certificates already had. Every attempt makes
      // a new key, so one more try settles it; a second refusal is not about the key and is thrown.
      if (!(err instanceof FieldgateError) || err.code !== "ENROLL_KEY_REUSED") throw err;
      return this.attempt(token);
    }
  }

  /** One request with a key and CSR generated for it. */
  private async attempt(token: string | undefined): Promise<Identity> {
    const { uuid, factoryKey, rejectedTokens } = this.options;
    const { keyPem, csrPem, csrSha256 } = await generateKeyAndCsr(uuid);
    const body: EnrollRequest = { v: 1, uuid: uuid.toLowerCase(), method: this.method, csr: csrPem };
    if (this.method === "token" && token) body.token = token;
    if (this.method === "factory-key" && factoryKey) body.factory = factoryKey.prove(uuid, csrSha256);
    const { status, json } = await postJson(
      apiUrl(this.options.cloudUrl, "/api/v1/enroll"),
      body,
      this.options.ca === undefined ? {} : { ca: this.options.ca },
      this.options.timeoutMs,
    );
    if (status < 200 || status >= 300) {
      const error = errorFromAnswer(status, json);
      if (token && error.code === "ENROLL_TOKEN_INVALID") rejectedTokens?.add(token);
      throw error;
    }
    let response: EnrollResponse;
    try {
      response = validator.parse(EnrollResponse, json);
    } catch (err) {
      const detail = err instanceof FieldgateError ? err.message : String(err);
      throw new FieldgateError("INTERNAL", `the cloud's enrollment answer is malformed: ${detail}`);
    }
    if (response.uuid.toLowerCase() !== uuid.toLowerCase()) {
      throw new FieldgateError("INTERNAL", `the cloud issued a certificate for ${response.uuid}, not ${uuid}`);
    }
    return this.options.identity.save(keyPem, response);
  }

  private usableToken(): string | undefined {
    const { token, rejectedTokens } = this.options;
    return token && !rejectedTokens?.has(token) ? token : undefined;
  }
}

/** Turns `{error:{code,message,field?}}` (or anything else) into a `FieldgateError`. */
export function errorFromAnswer(status: number, json: unknown): FieldgateError {
  const error = (json as { error?: { code?: unknown; message?: unknown; field?: unknown } } | undefined)?.error;
  if (error && isErrorCode(error.code)) {
    return new FieldgateError(
      error.code,
      typeof error.message === "string" ? error.message : undefined,
      typeof error.field === "string" ? error.field : undefined,
    );
  }
  if (status >= 500) return new FieldgateError("CLOUD_UNREACHABLE", `the cloud answered HTTP ${status}`);
  return new FieldgateError("INTERNAL", `unexpected HTTP ${status} from the enrollment endpoint`);
}

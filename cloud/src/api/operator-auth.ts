import { FieldgateError } from "@fieldgate/shared";
import type { FastifyRequest } from "fastify";
import type { ApiCredentials, Principal } from "../credentials/api-credentials.js";

/**
 * Reads `Authorization: Basic base64(credentialId:secret)` or `Bearer credentialId:secret`
 * and returns the principal; throws AUTH_REQUIRED (401) for anything else.
 */
export function authenticateOperator(request: FastifyRequest, credentials: ApiCredentials): Principal {
  const header = request.headers.authorization ?? "";
  const [scheme, value] = header.split(" ", 2);
  let pair: string | undefined;
  if (scheme?.toLowerCase() === "basic" && value) pair = Buffer.from(value, "base64").toString("utf8");
  else if (scheme?.toLowerCase() === "bearer" && value) pair = value;
  const colon = pair?.indexOf(":") ?? -1;
  if (!pair || colon <= 0) {
    throw new FieldgateError("AUTH_REQUIRED", "send Authorization: Basic with credentialId:secret", "authorization");
  }
  const principal = credentials.authenticate(pair.slice(0, colon), pair.slice(colon + 1));
  if (!principal) throw new FieldgateError("AUTH_REQUIRED", "unknown credential or wrong secret", "authorization");
  return principal;
}

/** Write routes need the admin role until the role table of issue #3 arrives. */
export function requireWrite(principal: Principal): void {
  if (principal.role !== "admin") throw new FieldgateError("FORBIDDEN", "this credential is read-only");
}

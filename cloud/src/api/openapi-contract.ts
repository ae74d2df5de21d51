import { ErrorResponse } from "@fieldgate/shared";
import type { FastifyInstance, RouteOptions } from "fastify";
import { ROUTE_RIGHTS, type RouteRight, routeKey } from "../access/route-rights.js";

/** OpenAPI security schemes: an operator's credential or session, or a device's client certificate. */
export const SECURITY_SCHEMES = {
  basicAuth: { type: "http", scheme: "basic", description: "API credential: credentialId:secret" },
  bearerAuth: { type: "http", scheme: "bearer", description: "session token from POST /api/v1/auth/login" },
  hostCredential: {
    type: "http",
    scheme: "basic",
    description:
      "the host credential (credentialId:secret from <data-dir>/host-credential.json); only it may use these routes",
  },
  deviceCertificate: {
    type: "mutualTLS",
    description: "the device's client certificate from enrollment, presented in the TLS handshake",
  },
} as const;

/** The OpenAPI `security` of a route, from its scope in ROUTE_RIGHTS: the table is the one source. */
export function securityOf(right: RouteRight): Record<string, string[]>[] {
  if (right.scope === "public") return [];
  if (right.scope === "device-mtls") return [{ deviceCertificate: [] }];
  if (right.scope === "host") return [{ hostCredential: [] }];
  return [{ basicAuth: [] }, { bearerAuth: [] }];
}

/** The error answers a route can give, by what its scope checks; routes may list more (409, 413, 416, 429). */
export function errorStatusesOf(right: RouteRight, url: string): number[] {
  const statuses = [400];
  if (right.scope !== "public") statuses.push(401);
  // A source that sent too many wrong operator credentials is throttled (auth-throttle.ts).
  if (right.scope !== "public" && right.scope !== "device-mtls") statuses.push(429);
  if (right.permission || right.scope === "device-mtls") statuses.push(403);
  if (url.includes("/:")) statuses.push(404);
  return statuses;
}

/**
 * Completes every /api/v1 route's OpenAPI description from ROUTE_RIGHTS as it is added: its
 * security, and the error responses its access check and validation can give.
 */
export function installOpenApiContract(app: FastifyInstance): void {
  app.addHook("onRoute", (route: RouteOptions) => {
    if (!route.url.startsWith("/api/v1/")) return;
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter((m) => m !== "HEAD");
    const right = methods.map((m) => ROUTE_RIGHTS[routeKey(m, route.url)]).find((r) => r !== undefined);
    if (!right) return;
    const schema = (route.schema ?? {}) as Record<string, unknown> & { response?: Record<string, unknown> };
    const response = { ...schema.response };
    for (const status of errorStatusesOf(right, route.url)) response[status] ??= ErrorResponse;
    route.schema = { ...schema, security: securityOf(right), response };
  });
}

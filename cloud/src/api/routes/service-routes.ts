import {
  EnrollCheckRequest,
  EnrollCheckResponse,
  EnrollRequest,
  EnrollResponse,
  ErrorResponse,
  FieldgateError,
  LoginBody,
  LoginResponse,
  RenewRequest,
  WhoAmI,
} from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ROLE_PERMISSIONS } from "../../access/roles.js";
import { LoginThrottledError, type UserRecord } from "../../users/user-directory.js";
import { clearSessionCookie, csrfTokenFor, setSessionCookie } from "../session-cookie.js";
import { groupRef, iso, principalOf, type RouteContext } from "./route-context.js";

const errors = {
  400: ErrorResponse,
  401: ErrorResponse,
  403: ErrorResponse,
  404: ErrorResponse,
  409: ErrorResponse,
  429: ErrorResponse,
};

/** Liveness, OpenAPI, device enrollment and operator sessions. */
export function registerServiceRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    "/api/v1/health",
    {
      schema: { tags: ["service"], response: { 200: Type.Object({ status: Type.String(), version: Type.String() }) } },
    },
    async () => ({ status: "ok", version: ctx.version }),
  );

  app.get(
    "/api/v1/openapi.json",
    {
      schema: {
        tags: ["service"],
        summary: "This API's OpenAPI 3.1 document",
        response: { 200: Type.Object({ openapi: Type.String() }, { additionalProperties: true }) },
      },
    },
    async () => app.swagger(),
  );

  app.post<{ Body: EnrollRequest }>(
    "/api/v1/enroll",
    {
      schema: {
        tags: ["devices"],
        summary: "Enroll a device inside its window: CSR in, certificate out",
        body: EnrollRequest,
        response: { 200: EnrollResponse, ...errors },
      },
    },
    async (request) => {
      const result = await ctx.enrollment.enroll(request.body, endpointsFor(ctx, request));
      request.log.info({ uuid: result.uuid, serial: result.serial, method: request.body.method }, "device enrolled");
      return result;
    },
  );

  app.post<{ Body: EnrollCheckRequest }>(
    "/api/v1/enroll/check",
    {
      schema: {
        tags: ["devices"],
        summary: "For doctor: is the window open? Answered only to a valid token or factory-key proof",
        body: EnrollCheckRequest,
        response: { 200: EnrollCheckResponse, ...errors },
      },
    },
    async (request) => ctx.enrollment.check(request.body),
  );

  app.post<{ Body: RenewRequest }>(
    "/api/v1/renew",
    {
      schema: {
        tags: ["devices"],
        summary:
          "Renew a device certificate over mTLS: the current certificate authenticates, a CSR for a new key comes in",
        body: RenewRequest,
        response: { 200: EnrollResponse, ...errors },
      },
    },
    async (request) => {
      const caller = request.deviceCertificate;
      if (!caller) throw new FieldgateError("CERT_UNKNOWN", "present the device certificate (mTLS)");
      const result = await ctx.enrollment.renew(caller.device, caller.serial, request.body, endpointsFor(ctx, request));
      request.log.info(
        { uuid: result.uuid, serial: result.serial, previous: caller.serial },
        "device certificate renewed",
      );
      return result;
    },
  );

  app.post<{ Body: LoginBody }>(
    "/api/v1/auth/login",
    {
      schema: {
        tags: ["auth"],
        summary: "Log in with email and password; a session valid 12 hours, as a token or (the console) a cookie",
        body: LoginBody,
        response: { 200: LoginResponse, ...errors },
      },
    },
    async (request, reply) => {
      const { token, expiresAt, user } = await ctx.users
        .login(request.body.email, request.body.password)
        .catch((error) => {
          if (error instanceof LoginThrottledError) void reply.header("retry-after", String(error.retryAfterSeconds));
          throw error;
        });
      request.log.info({ userId: user.id, session: request.body.session ?? "token" }, "user logged in");
      const answer = { expiresAt: new Date(expiresAt).toISOString(), user: await userView(ctx, user) };
      if (request.body.session !== "cookie") return { token, ...answer };
      setSessionCookie(reply, token, expiresAt);
      return { csrfToken: csrfTokenFor(token), ...answer };
    },
  );

  app.post(
    "/api/v1/auth/logout",
    { schema: { tags: ["auth"], summary: "End the current session", response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      const header = request.headers.authorization ?? "";
      if (header.toLowerCase().startsWith("bearer fgu_")) await ctx.users.logout(header.slice(7).trim());
      if (request.cookieSession) {
        await ctx.users.logout(request.cookieSession);
        clearSessionCookie(reply);
      }
      // The session's live streams end now, not at their next ping.
      await ctx.live.recheck();
      return reply.status(204).send();
    },
  );

  app.get(
    "/api/v1/auth/whoami",
    {
      schema: {
        tags: ["auth"],
        summary: "Who the credential is and what it holds where",
        response: { 200: WhoAmI, ...errors },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const user = principal.kind === "user" ? await ctx.users.get(principal.orgId, userIdOf(principal.id)) : undefined;
      return {
        kind: principal.kind,
        id: principal.id,
        organization: (await ctx.registry.organization(principal.orgId)).name,
        grants: await Promise.all(
          principal.grants.map(async (g) => ({
            group: await groupRef(ctx, principal.orgId, g.path),
            role: g.role,
            permissions: [...ROLE_PERMISSIONS[g.role]],
          })),
        ),
        ...(user && { user: { email: user.email, name: user.name } }),
        ...(request.cookieSession && { csrfToken: csrfTokenFor(request.cookieSession) }),
      };
    },
  );
}

function userIdOf(principalId: string): number {
  return Number(principalId.slice("user:".length));
}

/** Where an enrolled device reaches the broker and the API: the host it used, unless configured. */
function endpointsFor(ctx: RouteContext, request: FastifyRequest) {
  const host = request.hostname.replace(/^\[|\]$/g, "");
  const mqttHost = host.includes(":") ? `[${host}]` : host;
  return { mqttUrl: ctx.mqttUrl ?? `mqtts://${mqttHost}:${ctx.mqttPort()}`, apiUrl: `https://${request.host}` };
}

export async function userView(ctx: RouteContext, user: UserRecord) {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    roles: await Promise.all(
      user.roles.map(async (r) => ({ group: await groupRef(ctx, user.orgId, r.groupPath), role: r.role })),
    ),
    createdAt: new Date(user.createdAt).toISOString(),
    lastLoginAt: iso(user.lastLoginAt),
  };
}

import type { TLSSocket } from "node:tls";
import { FieldgateError } from "@fieldgate/shared";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AccessPolicy, HostPrincipal, Principal, Reach } from "../access/access-policy.js";
import type { HostPermission, Permission } from "../access/roles.js";
import { ROUTE_RIGHTS, type RouteRight, routeKey } from "../access/route-rights.js";
import { type ApiCredentials, credentialNotFound } from "../credentials/api-credentials.js";
import { HOST_CREDENTIAL_PREFIX, type HostCredentials } from "../credentials/host-credentials.js";
import { type DeviceTypes, typeNotFound } from "../device-types/device-types.js";
import { type GroupRow, type GroupTree, groupNotFound } from "../groups/group-tree.js";
import { type DeviceRegistry, type DeviceRow, deviceNotFound } from "../registry/device-registry.js";
import { type Rollouts, rolloutNotFound } from "../rollouts/rollouts.js";
import type { UserDirectory } from "../users/user-directory.js";
import { CSRF_HEADER, csrfMatches, SESSION_COOKIE } from "./session-cookie.js";

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
    /** The host credential's principal, on `host` routes only. */
    hostPrincipal?: HostPrincipal;
    /** The device named in the path, loaded by the access check. */
    device?: DeviceRow;
    /** The group named by the route's `target` body field, resolved and checked. */
    targetGroup?: GroupRow;
    /** The device behind a verified client certificate, on `device-mtls` routes. */
    deviceCertificate?: { device: DeviceRow; serial: string };
    /** The session token of a console request authenticated by its cookie. */
    cookieSession?: string;
  }
}

export interface AccessDeps {
  policy: AccessPolicy;
  credentials: ApiCredentials;
  hostCredentials: HostCredentials;
  users: UserDirectory;
  groups: GroupTree;
  types: DeviceTypes;
  registry: DeviceRegistry;
  rollouts: Rollouts;
}

/**
 * Enforces ROUTE_RIGHTS on every request: authentication before the body is parsed (so a caller
 * without credentials learns nothing, not even validation errors), authorization once the path
 * and body are validated. A route missing from the table stops the server at start-up.
 */
export function installAccessControl(app: FastifyInstance, deps: AccessDeps): void {
  app.addHook("onRoute", (route) => {
    if (!route.url.startsWith("/api/v1/")) return;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === "HEAD") continue;
      if (!ROUTE_RIGHTS[routeKey(method, route.url)])
        throw new Error(`route ${method} ${route.url} has no entry in ROUTE_RIGHTS`);
    }
  });

  app.addHook("onRequest", async (request) => {
    const right = rightOf(request);
    if (!right || right.scope === "public") return;
    if (right.scope === "device-mtls") {
      request.deviceCertificate = await authenticateDevice(request, deps);
      return;
    }
    if (right.scope === "host") {
      request.hostPrincipal = await authenticateHost(request, deps, right.permission as HostPermission);
      return;
    }
    request.principal = await authenticate(request, deps);
  });

  app.addHook("preHandler", async (request) => {
    const right = rightOf(request);
    const principal = request.principal;
    if (!right || !principal || !right.permission) return;
    const { policy, groups } = deps;
    const { orgId } = principal;
    const params = request.params as { uuid?: string; id?: number | string };
    const uuid = String(params.uuid);
    const id = Number(params.id);
    // Host permissions appear only on `host` routes, which set no `principal`.
    const permission = right.permission as Permission;
    // An object outside the caller's scope gets the answer an unknown id gets (requireOn).
    const requireOn = (paths: readonly string[], notFound: () => FieldgateError, reach?: Reach) =>
      policy.requireOn(principal, permission, paths, notFound, reach);
    switch (right.scope) {
      case "org":
        policy.require(principal, permission, (await groups.root(orgId)).path);
        break;
      case "device": {
        const row = await deps.registry.row(orgId, uuid);
        requireOn([await deps.registry.groupPath(row)], () => deviceNotFound(uuid));
        request.device = row;
        break;
      }
      case "group":
        requireOn([(await groups.get(orgId, id)).path], () => groupNotFound(id), "scope-and-above");
        break;
      case "type":
        requireOn([(await deps.types.get(orgId, id)).groupPath], () => typeNotFound(id), "scope-and-above");
        break;
      case "credential":
        requireOn([(await deps.credentials.get(orgId, String(params.id))).groupPath], () =>
          credentialNotFound(String(params.id)),
        );
        break;
      case "rollout":
        requireOn(await deps.rollouts.groupPaths(orgId, id), () => rolloutNotFound(id));
        break;
      case "list":
        if (policy.scopes(principal, permission).length === 0) {
          throw new FieldgateError("FORBIDDEN", `this credential lacks ${permission} everywhere`);
        }
        break;
    }
    if (right.target) {
      const ref = (request.body as Record<string, unknown> | undefined)?.[right.target];
      if (typeof ref === "string" || typeof ref === "number") {
        const target = await groups.resolve(orgId, ref);
        requireOn([target.path], () => groupNotFound(ref), "scope-and-above");
        request.targetGroup = target;
      }
    }
  });
}

/**
 * A device by its client certificate: verified against the CA by TLS, and the registry's current
 * (newest unrevoked) certificate of the device it names.
 */
async function authenticateDevice(
  request: FastifyRequest,
  deps: AccessDeps,
): Promise<{ device: DeviceRow; serial: string }> {
  const socket = request.raw.socket as TLSSocket;
  const peer = typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate() : undefined;
  if (!peer?.subject) throw new FieldgateError("CERT_UNKNOWN", "present the device certificate (mTLS)");
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? "");
    if (reason === "CERT_HAS_EXPIRED") throw new FieldgateError("CERT_EXPIRED");
    throw new FieldgateError("CERT_UNKNOWN", "the client certificate is not from this cloud's CA");
  }
  const device = await deps.registry.findByUuid(String(peer.subject.CN ?? ""));
  const current = device ? await deps.registry.currentCertificate(device.id) : undefined;
  if (!device || !current || current.serial !== peer.serialNumber.toUpperCase()) {
    throw new FieldgateError("CERT_REVOKED", "this certificate is revoked or superseded; renew with the current one");
  }
  return { device, serial: current.serial };
}

/**
 * A `host` route: only a host credential holding `permission`. A valid tenant credential or user
 * session gets FORBIDDEN worded as on a `list` route where it holds the permission nowhere, so the
 * refusal says nothing the OpenAPI document does not; a wrong one gets AUTH_REQUIRED as anywhere.
 */
async function authenticateHost(
  request: FastifyRequest,
  deps: Pick<AccessDeps, "users" | "credentials" | "hostCredentials">,
  permission: HostPermission,
): Promise<HostPrincipal> {
  const pair = credentialPair(request.headers.authorization ?? "");
  if (pair?.id.startsWith(HOST_CREDENTIAL_PREFIX)) {
    const host = await deps.hostCredentials.authenticate(pair.id, pair.secret);
    if (!host) throw new FieldgateError("AUTH_REQUIRED", "unknown credential or wrong secret", "authorization");
    if (host.permissions.includes(permission)) return host;
  } else await authenticate(request, deps);
  throw new FieldgateError("FORBIDDEN", `this credential lacks ${permission} everywhere`);
}

/** `id:secret` from `Basic` or `Bearer` (not a `fgu_` session token), or undefined. */
function credentialPair(header: string): { id: string; secret: string } | undefined {
  const space = header.indexOf(" ");
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  let pair: string | undefined;
  if (scheme === "basic" && value) pair = Buffer.from(value, "base64").toString("utf8");
  else if (scheme === "bearer" && value && !value.startsWith("fgu_")) pair = value;
  const colon = pair?.indexOf(":") ?? -1;
  if (!pair || colon <= 0) return undefined;
  return { id: pair.slice(0, colon), secret: pair.slice(colon + 1) };
}

function rightOf(request: FastifyRequest): RouteRight | undefined {
  const url = request.routeOptions.url;
  // Fastify answers HEAD with the GET route: it needs exactly the GET route's right.
  const method = request.method === "HEAD" ? "GET" : request.method;
  return url ? ROUTE_RIGHTS[routeKey(method, url)] : undefined;
}

/** Methods that change nothing: a cookie session needs no CSRF token for them. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * `Authorization: Basic base64(credentialId:secret)`, `Bearer credentialId:secret`, or
 * `Bearer <session token>` from `POST /auth/login`; without an Authorization header, the
 * console's session cookie, whose state-changing requests must carry its CSRF token.
 */
export async function authenticate(
  request: FastifyRequest,
  deps: Pick<AccessDeps, "users" | "credentials">,
): Promise<Principal> {
  const header = request.headers.authorization ?? "";
  const cookie = request.cookies?.[SESSION_COOKIE];
  if (!header && cookie) {
    const principal = await deps.users.principalForSession(cookie);
    if (!principal)
      throw new FieldgateError("AUTH_REQUIRED", "the session expired or was ended; log in again", "authorization");
    const csrf = request.headers[CSRF_HEADER];
    if (!SAFE_METHODS.has(request.method) && !csrfMatches(cookie, typeof csrf === "string" ? csrf : undefined)) {
      throw new FieldgateError("CSRF_INVALID", "send the X-CSRF-Token header the login answered", "x-csrf-token");
    }
    request.cookieSession = cookie;
    return principal;
  }
  const space = header.indexOf(" ");
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  let pair: string | undefined;
  if (scheme === "basic" && value) pair = Buffer.from(value, "base64").toString("utf8");
  else if (scheme === "bearer" && value.startsWith("fgu_")) {
    const principal = await deps.users.principalForSession(value);
    if (!principal)
      throw new FieldgateError("AUTH_REQUIRED", "the session expired or was ended; log in again", "authorization");
    return principal;
  } else if (scheme === "bearer" && value) pair = value;
  const colon = pair?.indexOf(":") ?? -1;
  if (!pair || colon <= 0) {
    throw new FieldgateError("AUTH_REQUIRED", "send Authorization: Basic with credentialId:secret", "authorization");
  }
  const credential = await deps.credentials.authenticate(pair.slice(0, colon), pair.slice(colon + 1));
  if (!credential) throw new FieldgateError("AUTH_REQUIRED", "unknown credential or wrong secret", "authorization");
  return {
    kind: "credential",
    id: credential.id,
    orgId: credential.orgId,
    grants: [{ groupId: credential.groupId, path: credential.groupPath, role: credential.role }],
  };
}

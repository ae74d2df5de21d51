import type { TLSSocket } from "node:tls";
import { FieldgateError } from "@fieldgate/shared";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AccessPolicy, Principal } from "../access/access-policy.js";
import { ROUTE_RIGHTS, type RouteRight, routeKey } from "../access/route-rights.js";
import type { ApiCredentials } from "../credentials/api-credentials.js";
import type { DeviceTypes } from "../device-types/device-types.js";
import type { GroupRow, GroupTree } from "../groups/group-tree.js";
import type { DeviceRegistry, DeviceRow } from "../registry/device-registry.js";
import type { Rollouts } from "../rollouts/rollouts.js";
import type { UserDirectory } from "../users/user-directory.js";

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
    /** The device named in the path, loaded by the access check. */
    device?: DeviceRow;
    /** The group named by the route's `target` body field, resolved and checked. */
    targetGroup?: GroupRow;
    /** The device behind a verified client certificate, on `device-mtls` routes. */
    deviceCertificate?: { device: DeviceRow; serial: string };
  }
}

export interface AccessDeps {
  policy: AccessPolicy;
  credentials: ApiCredentials;
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
      request.deviceCertificate = authenticateDevice(request, deps);
      return;
    }
    request.principal = authenticate(request, deps);
  });

  app.addHook("preHandler", async (request) => {
    const right = rightOf(request);
    const principal = request.principal;
    if (!right || !principal || !right.permission) return;
    const { policy, groups } = deps;
    const params = request.params as { uuid?: string; id?: number | string };
    switch (right.scope) {
      case "org":
        policy.require(principal, right.permission, groups.root(principal.orgId).path);
        break;
      case "device": {
        const row = deps.registry.row(principal.orgId, String(params.uuid));
        policy.require(principal, right.permission, deps.registry.groupPath(row));
        request.device = row;
        break;
      }
      case "group":
        policy.require(principal, right.permission, groups.get(principal.orgId, Number(params.id)).path);
        break;
      case "type":
        policy.require(principal, right.permission, deps.types.get(principal.orgId, Number(params.id)).groupPath);
        break;
      case "credential":
        policy.require(principal, right.permission, deps.credentials.get(principal.orgId, String(params.id)).groupPath);
        break;
      case "rollout":
        for (const path of deps.rollouts.groupPaths(principal.orgId, Number(params.id))) {
          policy.require(principal, right.permission, path);
        }
        break;
      case "list":
        if (policy.scopes(principal, right.permission).length === 0) {
          throw new FieldgateError("FORBIDDEN", `this credential lacks ${right.permission} everywhere`);
        }
        break;
    }
    if (right.target) {
      const ref = (request.body as Record<string, unknown> | undefined)?.[right.target];
      if (typeof ref === "string" || typeof ref === "number") {
        const target = groups.resolve(principal.orgId, ref);
        policy.require(principal, right.permission, target.path);
        request.targetGroup = target;
      }
    }
  });
}

/**
 * A device by its client certificate: verified against the CA by TLS, and the registry's current
 * (newest unrevoked) certificate of the device it names.
 */
function authenticateDevice(request: FastifyRequest, deps: AccessDeps): { device: DeviceRow; serial: string } {
  const socket = request.raw.socket as TLSSocket;
  const peer = typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate() : undefined;
  if (!peer?.subject) throw new FieldgateError("CERT_UNKNOWN", "present the device certificate (mTLS)");
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? "");
    if (reason === "CERT_HAS_EXPIRED") throw new FieldgateError("CERT_EXPIRED");
    throw new FieldgateError("CERT_UNKNOWN", "the client certificate is not from this cloud's CA");
  }
  const device = deps.registry.findByUuid(String(peer.subject.CN ?? ""));
  const current = device ? deps.registry.currentCertificate(device.id) : undefined;
  if (!device || !current || current.serial !== peer.serialNumber.toUpperCase()) {
    throw new FieldgateError("CERT_REVOKED", "this certificate is revoked or superseded; renew with the current one");
  }
  return { device, serial: current.serial };
}

function rightOf(request: FastifyRequest): RouteRight | undefined {
  const url = request.routeOptions.url;
  return url ? ROUTE_RIGHTS[routeKey(request.method, url)] : undefined;
}

/**
 * `Authorization: Basic base64(credentialId:secret)`, `Bearer credentialId:secret`, or
 * `Bearer <session token>` from `POST /auth/login`.
 */
function authenticate(request: FastifyRequest, deps: AccessDeps): Principal {
  const header = request.headers.authorization ?? "";
  const space = header.indexOf(" ");
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  let pair: string | undefined;
  if (scheme === "basic" && value) pair = Buffer.from(value, "base64").toString("utf8");
  else if (scheme === "bearer" && value.startsWith("fgu_")) {
    const principal = deps.users.principalForSession(value);
    if (!principal)
      throw new FieldgateError("AUTH_REQUIRED", "the session expired or was ended; log in again", "authorization");
    return principal;
  } else if (scheme === "bearer" && value) pair = value;
  const colon = pair?.indexOf(":") ?? -1;
  if (!pair || colon <= 0) {
    throw new FieldgateError("AUTH_REQUIRED", "send Authorization: Basic with credentialId:secret", "authorization");
  }
  const credential = deps.credentials.authenticate(pair.slice(0, colon), pair.slice(colon + 1));
  if (!credential) throw new FieldgateError("AUTH_REQUIRED", "unknown credential or wrong secret", "authorization");
  return {
    kind: "credential",
    id: credential.id,
    orgId: credential.orgId,
    grants: [{ groupId: credential.groupId, path: credential.groupPath, role: credential.role }],
  };
}

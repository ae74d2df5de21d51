import type { HostPermission, Permission } from "./roles.js";

/**
 * How a route finds the group its permission is checked on:
 * - `public`: no credential (liveness, OpenAPI, enrollment, login);
 * - `authenticated`: any valid credential, no permission (whoami, logout);
 * - `device-mtls`: a device, by its current client certificate (renewal);
 * - `org`: the organization's root group (organization settings, users);
 * - `device`, `group`, `type`, `credential`: the group of the resource named in the path;
 * - `rollout`: every group the rollout's devices are in (the right on a rollout is the right on all of them);
 * - `list`: the handler filters rows to the principal's scopes; the principal must hold the
 *   permission somewhere.
 * - `host`: the cloud as a whole (organizations): only a host credential, holding the host
 *   permission; any tenant credential or user session gets FORBIDDEN, as for a `list` route
 *   where it holds the permission nowhere.
 * `target` names a body field holding a group the request also writes into (create in, move to).
 */
export type RouteScope =
  | "public"
  | "authenticated"
  | "device-mtls"
  | "org"
  | "device"
  | "group"
  | "type"
  | "credential"
  | "rollout"
  | "list"
  | "host";

export interface RouteRight {
  scope: RouteScope;
  /** A HostPermission exactly on `host` routes. */
  permission?: Permission | HostPermission;
  target?: "group" | "parent";
}

/** Every route under /api/v1, keyed "METHOD /path". The server refuses to start with a route missing here; each route's OpenAPI security and error responses come from here too (api/openapi-contract.ts). */
export const ROUTE_RIGHTS: Readonly<Record<string, RouteRight>> = {
  "GET /api/v1/health": { scope: "public" },
  "GET /api/v1/openapi.json": { scope: "public" },
  "POST /api/v1/enroll": { scope: "public" },
  "POST /api/v1/enroll/check": { scope: "public" },
  "POST /api/v1/renew": { scope: "device-mtls" },
  "POST /api/v1/auth/login": { scope: "public" },
  "POST /api/v1/auth/logout": { scope: "authenticated" },
  "GET /api/v1/auth/whoami": { scope: "authenticated" },

  // Tenants, for whoever runs the cloud: the host credential (host-credential.json) only.
  "POST /api/v1/organizations": { scope: "host", permission: "organizations:write" },
  "GET /api/v1/organizations": { scope: "host", permission: "organizations:read" },

  "GET /api/v1/organization": { scope: "org", permission: "org:read" },
  "PATCH /api/v1/organization": { scope: "org", permission: "org:write" },

  "POST /api/v1/devices": { scope: "list", permission: "devices:write", target: "group" },
  "GET /api/v1/devices": { scope: "list", permission: "devices:read" },
  "GET /api/v1/devices/export": { scope: "list", permission: "devices:read" },
  // Live updates: the stream filters every event to what the principal may read.
  "GET /api/v1/live": { scope: "list", permission: "devices:read" },
  // Bulk series: every row is checked against devices:write on the groups it touches.
  "POST /api/v1/devices/bulk/import": { scope: "list", permission: "devices:write" },
  "POST /api/v1/devices/bulk/edit": { scope: "list", permission: "devices:write" },
  "POST /api/v1/devices/bulk/transfer": { scope: "list", permission: "devices:write" },
  "POST /api/v1/devices/bulk/replace": { scope: "list", permission: "devices:write" },
  "POST /api/v1/devices/bulk/delete": { scope: "list", permission: "devices:write" },
  "GET /api/v1/devices/:uuid": { scope: "device", permission: "devices:read" },
  "PATCH /api/v1/devices/:uuid": { scope: "device", permission: "devices:write", target: "group" },
  "DELETE /api/v1/devices/:uuid": { scope: "device", permission: "devices:write" },
  "POST /api/v1/devices/:uuid/reset-token": { scope: "device", permission: "devices:write" },
  "GET /api/v1/devices/:uuid/telemetry": { scope: "device", permission: "devices:read" },
  "GET /api/v1/devices/:uuid/events": { scope: "device", permission: "devices:read" },
  "GET /api/v1/devices/:uuid/health": { scope: "device", permission: "devices:read" },
  "GET /api/v1/devices/:uuid/certificates": { scope: "device", permission: "devices:read" },
  "GET /api/v1/devices/:uuid/logs": { scope: "device", permission: "devices:read" },
  "GET /api/v1/devices/:uuid/config": { scope: "device", permission: "devices:read" },
  "PUT /api/v1/devices/:uuid/config": { scope: "device", permission: "devices:write" },
  // Single-device update jobs: starting one needs firmware:write on the device's group.
  "POST /api/v1/devices/:uuid/jobs": { scope: "device", permission: "firmware:write" },
  "GET /api/v1/devices/:uuid/jobs": { scope: "device", permission: "devices:read" },
  "GET /api/v1/devices/:uuid/jobs/:id": { scope: "device", permission: "devices:read" },

  "POST /api/v1/groups": { scope: "list", permission: "groups:write", target: "parent" },
  "GET /api/v1/groups": { scope: "list", permission: "groups:read" },
  "GET /api/v1/groups/:id": { scope: "group", permission: "groups:read" },
  "PATCH /api/v1/groups/:id": { scope: "group", permission: "groups:write" },
  "POST /api/v1/groups/:id/move": { scope: "group", permission: "groups:write", target: "parent" },
  "DELETE /api/v1/groups/:id": { scope: "group", permission: "groups:write" },

  "POST /api/v1/device-types": { scope: "list", permission: "types:write", target: "group" },
  "GET /api/v1/device-types": { scope: "list", permission: "types:read" },
  "GET /api/v1/device-types/:id": { scope: "type", permission: "types:read" },
  "PATCH /api/v1/device-types/:id": { scope: "type", permission: "types:write" },
  "DELETE /api/v1/device-types/:id": { scope: "type", permission: "types:write" },

  "POST /api/v1/credentials": { scope: "list", permission: "credentials:write", target: "group" },
  "GET /api/v1/credentials": { scope: "list", permission: "credentials:read" },
  "GET /api/v1/credentials/:id": { scope: "credential", permission: "credentials:read" },
  "POST /api/v1/credentials/:id/regenerate": { scope: "credential", permission: "credentials:write" },
  "DELETE /api/v1/credentials/:id": { scope: "credential", permission: "credentials:write" },

  "POST /api/v1/users": { scope: "org", permission: "users:write" },
  "GET /api/v1/users": { scope: "org", permission: "users:read" },
  "GET /api/v1/users/:id": { scope: "org", permission: "users:read" },
  "PATCH /api/v1/users/:id": { scope: "org", permission: "users:write" },
  "DELETE /api/v1/users/:id": { scope: "org", permission: "users:write" },

  // Images belong to an organization, not a group: handlers scope rows to the principal's org.
  "POST /api/v1/firmware": { scope: "list", permission: "firmware:write" },
  "GET /api/v1/firmware": { scope: "list", permission: "firmware:read" },
  "GET /api/v1/firmware/:name/:version": { scope: "list", permission: "firmware:read" },
  "DELETE /api/v1/firmware/:name/:version": { scope: "list", permission: "firmware:write" },
  // Devices fetch only images of their organization that list their type's firmware-compat id.
  "GET /api/v1/firmware/:name/:version/manifest": { scope: "device-mtls" },
  "GET /api/v1/firmware/:name/:version/image": { scope: "device-mtls" },
  // The firmware keys a device trusts reach it only here, over its own mTLS session.
  "GET /api/v1/firmware-keys": { scope: "device-mtls" },
  // Rollouts: created over the devices the caller may update; steered with the right on all of them.
  "POST /api/v1/rollouts": { scope: "list", permission: "firmware:write" },
  "GET /api/v1/rollouts": { scope: "list", permission: "firmware:read" },
  "GET /api/v1/rollouts/:id": { scope: "rollout", permission: "firmware:read" },
  "GET /api/v1/rollouts/:id/devices": { scope: "rollout", permission: "firmware:read" },
  "POST /api/v1/rollouts/:id/pause": { scope: "rollout", permission: "firmware:write" },
  "POST /api/v1/rollouts/:id/resume": { scope: "rollout", permission: "firmware:write" },
  "POST /api/v1/rollouts/:id/abort": { scope: "rollout", permission: "firmware:write" },
};

export function routeKey(method: string, url: string): string {
  return `${method.toUpperCase()} ${url}`;
}

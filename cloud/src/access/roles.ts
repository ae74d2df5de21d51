/**
 * Predefined roles and what each may do. A role is held on a group and applies to that group's
 * whole subtree. This table is the only place rights are defined; routes name a permission.
 */
export const ROLES = ["viewer", "device-manager", "firmware-manager", "admin"] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = [
  "devices:read",
  "devices:write",
  "groups:read",
  "groups:write",
  "types:read",
  "types:write",
  "firmware:read",
  "firmware:write",
  "users:read",
  "users:write",
  "credentials:read",
  "credentials:write",
  "org:read",
  "org:write",
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/**
 * Rights over the whole cloud, held only by host credentials (credentials/host-credentials.ts).
 * They are not in PERMISSIONS, so no role has them and no tenant credential or user can be
 * given them: roles are held on a group, and these rights are above every organization.
 */
export const HOST_PERMISSIONS = ["organizations:read", "organizations:write"] as const;
export type HostPermission = (typeof HOST_PERMISSIONS)[number];

const READ_ALL: Permission[] = PERMISSIONS.filter((p) => p.endsWith(":read"));

export const ROLE_PERMISSIONS: Readonly<Record<Role, ReadonlySet<Permission>>> = {
  viewer: new Set(READ_ALL),
  // Devices, their tokens, config and bulk series; device types describe devices, so they go with them.
  "device-manager": new Set<Permission>([...READ_ALL, "devices:write", "types:write"]),
  "firmware-manager": new Set<Permission>([...READ_ALL, "firmware:write"]),
  admin: new Set(PERMISSIONS),
};

/** The read permission of a resource kind: who lacks it may not learn that such an object exists. */
export function readPermissionOf(permission: Permission): Permission {
  return permission.replace(/:write$/, ":read") as Permission;
}

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}

/** True when `granted` is at least as strong as `wanted`: used so nobody hands out more than they hold. */
export function roleCovers(granted: Role, wanted: Role): boolean {
  const mine = ROLE_PERMISSIONS[granted];
  return [...ROLE_PERMISSIONS[wanted]].every((p) => mine.has(p));
}

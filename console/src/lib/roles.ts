/**
 * What each role allows, per area, for the users and credentials pages. The same table as
 * cloud/src/access/roles.ts (ROLE_PERMISSIONS; a test compares them): the console cannot import
 * cloud code, and `whoami` lists the permissions of the session's own grants only.
 */
export const ROLE_NAMES = ["viewer", "device-manager", "firmware-manager", "admin"] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

/** The areas a permission names (`devices:write` is the area `devices`), with their labels. */
export const AREAS = [
  ["devices", "Devices"],
  ["groups", "Groups"],
  ["types", "Device types"],
  ["firmware", "Firmware"],
  ["users", "Users"],
  ["credentials", "API credentials"],
  ["org", "Organization"],
] as const;
export type Area = (typeof AREAS)[number][0];

const READ_ALL = AREAS.map(([area]) => `${area}:read`);

export const ROLE_PERMISSIONS: Readonly<Record<RoleName, readonly string[]>> = {
  viewer: READ_ALL,
  "device-manager": [...READ_ALL, "devices:write", "types:write"],
  "firmware-manager": [...READ_ALL, "firmware:write"],
  admin: [...READ_ALL, ...AREAS.map(([area]) => `${area}:write`)],
};

export const ROLE_SUMMARY: Readonly<Record<RoleName, string>> = {
  viewer: "reads everything in its groups, changes nothing",
  "device-manager": "devices, their tokens and bulk series, and device types",
  "firmware-manager": "firmware images and rollouts",
  admin: "everything, including groups, users and API credentials",
};

/** "R/W", "R" or "" (no access) for one role on one area. */
export function accessOf(role: string, area: Area): "R/W" | "R" | "" {
  const permissions = ROLE_PERMISSIONS[role as RoleName] ?? [];
  if (permissions.includes(`${area}:write`)) return "R/W";
  if (permissions.includes(`${area}:read`)) return "R";
  return "";
}

/** The areas a role may change, or "read only": a short line for a table cell. */
export function writableAreas(role: string): string {
  const areas = AREAS.filter(([area]) => accessOf(role, area) === "R/W").map(([, label]) => label);
  return areas.length > 0 ? areas.join(", ") : "none";
}

import { FieldgateError } from "@fieldgate/shared";
import {
  type HostPermission,
  type Permission,
  ROLE_PERMISSIONS,
  type Role,
  readPermissionOf,
  roleCovers,
} from "./roles.js";

/** A role held on a group (and so on its subtree). `path` is the group's materialized path. */
export interface Grant {
  groupId: number;
  path: string;
  role: Role;
}

/** How far an object's existence may show: the principal's scope, or also the groups above it. */
export type Reach = "scope" | "scope-and-above";

/** Who is calling: an API credential (one grant) or a logged-in user (any number of grants). */
export interface Principal {
  kind: "credential" | "user";
  id: string;
  orgId: number;
  grants: readonly Grant[];
}

/**
 * The operator who runs the cloud, by its host credential: in no organization, with no grants,
 * holding only host rights. Only `host` routes authenticate it; every other route refuses it.
 */
export interface HostPrincipal {
  kind: "host";
  id: string;
  permissions: readonly HostPermission[];
}

/**
 * Decides what a principal may do where. A grant covers a group when the group's path starts with
 * the grant's path. Resources of another organization are never "forbidden": callers report them
 * as not found, so nothing about other tenants leaks.
 */
export class AccessPolicy {
  can(principal: Principal, permission: Permission, groupPath: string): boolean {
    return principal.grants.some((g) => groupPath.startsWith(g.path) && ROLE_PERMISSIONS[g.role].has(permission));
  }

  require(principal: Principal, permission: Permission, groupPath: string): void {
    if (!this.can(principal, permission, groupPath)) {
      throw new FieldgateError("FORBIDDEN", `this credential lacks ${permission} on that group`);
    }
  }

  /**
   * `require` on an object filed in `groupPaths` (all of them for a rollout): where the principal
   * may not even read it, the object is reported absent with `notFound()` — the very error an
   * unknown id gets — so a scoped caller cannot tell what exists outside its scope. Where it may
   * read but not do this, the answer is FORBIDDEN: it knows the object exists already.
   */
  requireOn(
    principal: Principal,
    permission: Permission,
    groupPaths: readonly string[],
    notFound: () => FieldgateError,
    reach: Reach = "scope",
  ): void {
    if (!groupPaths.every((p) => this.sees(principal, permission, p, reach))) throw notFound();
    for (const path of groupPaths) this.require(principal, permission, path);
  }

  /**
   * Whether the principal may know that objects of `permission`'s kind filed in this group exist:
   * it may read there, or (`reach` "scope-and-above") the group is above one of its own — groups
   * and the types defined on them, which every full name and device view in its scope shows.
   */
  sees(principal: Principal, permission: Permission, groupPath: string, reach: Reach = "scope"): boolean {
    if (this.can(principal, readPermissionOf(permission), groupPath)) return true;
    return reach === "scope-and-above" && principal.grants.some((g) => g.path.startsWith(groupPath));
  }

  /** The subtree roots where the principal holds `permission`, without nested duplicates. */
  scopes(principal: Principal, permission: Permission): string[] {
    const paths = principal.grants
      .filter((g) => ROLE_PERMISSIONS[g.role].has(permission))
      .map((g) => g.path)
      .sort((a, b) => a.length - b.length);
    return paths.filter((p, i) => !paths.slice(0, i).some((q) => p.startsWith(q)));
  }

  /**
   * An SQL condition restricting `pathColumn` to the principal's scopes (false when there are none).
   * A subtree "/1/4/" is the range ["/1/4/", "/1/40"): '0' follows '/' in ASCII, so the range holds
   * exactly the paths with that prefix, and an index on the path serves it.
   */
  sqlScope(principal: Principal, permission: Permission, pathColumn: string): { clause: string; params: string[] } {
    const scopes = this.scopes(principal, permission);
    // A condition both backends read as false (PostgreSQL takes no integer for a boolean).
    if (scopes.length === 0) return { clause: "1 = 0", params: [] };
    return {
      clause: `(${scopes.map(() => `(${pathColumn} >= ? AND ${pathColumn} < ?)`).join(" OR ")})`,
      params: scopes.flatMap((p) => [p, subtreeEnd(p)]),
    };
  }

  /** Refuses granting `role` on `groupPath` unless the principal holds at least that role there. */
  requireDelegable(principal: Principal, role: Role, groupPath: string): void {
    const held = principal.grants.filter((g) => groupPath.startsWith(g.path));
    if (!held.some((g) => roleCovers(g.role, role))) {
      throw new FieldgateError("FORBIDDEN", `you cannot grant ${role} on a group where you do not hold it`, "role");
    }
  }
}

/** The first path after every path that starts with `prefix` (which ends in "/"). */
export function subtreeEnd(prefix: string): string {
  return `${prefix.slice(0, -1)}0`;
}

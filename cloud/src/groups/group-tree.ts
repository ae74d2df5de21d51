import { FieldgateError } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import { subtreeEnd } from "../access/access-policy.js";
import type { Executor } from "../storage/cloud-database.js";

/** A group row as stored. `path` is the chain of ids, "/1/4/9/". */
export interface GroupRow {
  id: number;
  org_id: number;
  parent_id: number | null;
  name: string;
  description: string;
  timezone: string;
  path: string;
  created_at: number;
}

/** A group as the API shows it. `fullName` is the chain of names, "default/plant-a/line-1". */
export interface GroupView {
  id: number;
  name: string;
  fullName: string;
  description: string;
  timezone: string;
  parentId: number | null;
  createdAt: string;
  devices: number;
  subgroups: number;
}

export interface GroupFields {
  name?: string;
  description?: string;
  timezone?: string;
}

/** What a recursive delete removed, so the caller can revoke sessions and say what happened. */
export interface DeletedSubtree {
  groups: number;
  devices: string[];
}

/**
 * The group tree of each organization: create, edit, move and delete, with materialized paths so
 * that "this group and everything under it" is one range query.
 */
export class GroupTree {
  constructor(
    private readonly db: Database.Database,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Creates the root group of a new organization. */
  createRoot(orgId: number, name: string): GroupRow {
    return this.db.transaction(() => {
      const id = Number(
        this.db
          .prepare("INSERT INTO groups (org_id, parent_id, name, path, created_at) VALUES (?, NULL, ?, '', ?)")
          .run(orgId, name, this.clock()).lastInsertRowid,
      );
      this.db.prepare("UPDATE groups SET path = ? WHERE id = ?").run(`/${id}/`, id);
      return this.get(orgId, id);
    })();
  }

  root(orgId: number, _executor?: Executor): GroupRow {
    const row = this.db.prepare("SELECT * FROM groups WHERE org_id = ? AND parent_id IS NULL").get(orgId) as
      | GroupRow
      | undefined;
    if (!row) throw new Error(`organization ${orgId} has no root group`);
    return row;
  }

  /** The group, or GROUP_NOT_FOUND; a group of another organization is reported the same way. */
  get(orgId: number, id: number, _executor?: Executor): GroupRow {
    const row = this.db.prepare("SELECT * FROM groups WHERE id = ? AND org_id = ?").get(id, orgId) as
      | GroupRow
      | undefined;
    if (!row) throw groupNotFound(id);
    return row;
  }

  /** Resolves "plant-a/line-1" (below the root) or "default/plant-a/line-1" (from the root) to a group. */
  byName(orgId: number, fullName: string): GroupRow {
    const parts = fullName.split("/").filter(Boolean);
    let current = this.root(orgId);
    if (parts[0] === current.name) parts.shift();
    for (const part of parts) {
      const child = this.db.prepare("SELECT * FROM groups WHERE parent_id = ? AND name = ?").get(current.id, part) as
        | GroupRow
        | undefined;
      if (!child) throw groupNotFound(fullName);
      current = child;
    }
    return current;
  }

  /** Resolves a reference that is either a numeric id or a name path. */
  resolve(orgId: number, ref: string | number, _executor?: Executor): GroupRow {
    return typeof ref === "number" || /^\d+$/.test(ref) ? this.get(orgId, Number(ref)) : this.byName(orgId, ref);
  }

  create(orgId: number, parentId: number, fields: Required<Pick<GroupFields, "name">> & GroupFields): GroupRow {
    const parent = this.get(orgId, parentId);
    if (fields.timezone !== undefined) assertTimezone(fields.timezone);
    return this.db.transaction(() => {
      this.assertFreeName(parent.id, fields.name);
      const id = Number(
        this.db
          .prepare(
            "INSERT INTO groups (org_id, parent_id, name, description, timezone, path, created_at) VALUES (?, ?, ?, ?, ?, '', ?)",
          )
          .run(
            orgId,
            parent.id,
            fields.name,
            fields.description ?? "",
            fields.timezone ?? parent.timezone,
            this.clock(),
          ).lastInsertRowid,
      );
      this.db.prepare("UPDATE groups SET path = ? WHERE id = ?").run(`${parent.path}${id}/`, id);
      return this.get(orgId, id);
    })();
  }

  edit(orgId: number, id: number, fields: GroupFields): GroupRow {
    const row = this.get(orgId, id);
    if (fields.timezone !== undefined) assertTimezone(fields.timezone);
    if (fields.name !== undefined && fields.name !== row.name && row.parent_id !== null)
      this.assertFreeName(row.parent_id, fields.name);
    this.db
      .prepare(
        "UPDATE groups SET name = coalesce(?, name), description = coalesce(?, description), timezone = coalesce(?, timezone) WHERE id = ?",
      )
      .run(fields.name ?? null, fields.description ?? null, fields.timezone ?? null, id);
    return this.get(orgId, id);
  }

  /** Moves a group and its subtree under a new parent; every descendant's path follows. */
  move(orgId: number, id: number, newParentId: number): GroupRow {
    const row = this.get(orgId, id);
    const parent = this.get(orgId, newParentId);
    if (row.parent_id === null) throw new FieldgateError("GROUP_MOVE_INVALID", "the root group cannot move", "group");
    if (parent.path.startsWith(row.path)) {
      throw new FieldgateError(
        "GROUP_MOVE_INVALID",
        "a group cannot move under itself or its own sub-groups",
        "parent",
      );
    }
    if (parent.id === row.parent_id) return row;
    this.db.transaction(() => {
      this.assertFreeName(parent.id, row.name);
      const newPath = `${parent.path}${row.id}/`;
      this.db
        .prepare("UPDATE groups SET path = ? || substr(path, ?) WHERE path >= ? AND path < ?")
        .run(newPath, row.path.length + 1, row.path, subtreeEnd(row.path));
      this.db.prepare("UPDATE groups SET parent_id = ? WHERE id = ?").run(parent.id, row.id);
    })();
    return this.get(orgId, id);
  }

  /**
   * Deletes a group. Refused while it holds devices or sub-groups unless `recursive`, which removes
   * the subtree with its devices (and all their data), device types and credentials scoped there.
   */
  delete(orgId: number, id: number, recursive: boolean): DeletedSubtree {
    const row = this.get(orgId, id);
    if (row.parent_id === null)
      throw new FieldgateError("GROUP_MOVE_INVALID", "the root group cannot be deleted", "group");
    const range = [row.path, subtreeEnd(row.path)];
    return this.db.transaction(() => {
      const groupIds = (
        this.db
          .prepare("SELECT id FROM groups WHERE path >= ? AND path < ? ORDER BY length(path) DESC")
          .all(...range) as { id: number }[]
      ).map((g) => g.id);
      const devices = (
        this.db
          .prepare(`SELECT uuid FROM devices WHERE group_id IN (${groupIds.map(() => "?").join(",")})`)
          .all(...groupIds) as { uuid: string }[]
      ).map((d) => d.uuid);
      if (!recursive && (devices.length > 0 || groupIds.length > 1)) {
        throw new FieldgateError(
          "GROUP_NOT_EMPTY",
          `the group holds ${devices.length} device(s) and ${groupIds.length - 1} sub-group(s); delete them first or use --recursive`,
        );
      }
      const inList = groupIds.map(() => "?").join(",");
      this.db.prepare(`DELETE FROM devices WHERE group_id IN (${inList})`).run(...groupIds);
      this.db.prepare(`DELETE FROM device_types WHERE group_id IN (${inList})`).run(...groupIds);
      this.db.prepare(`DELETE FROM api_credentials WHERE group_id IN (${inList})`).run(...groupIds);
      const del = this.db.prepare("DELETE FROM groups WHERE id = ?");
      for (const g of groupIds) del.run(g);
      return { groups: groupIds.length, devices };
    })();
  }

  /** Groups of the organization inside an SQL scope on `g.path`, as the API shows them. */
  list(orgId: number, scope: { clause: string; params: string[] }): GroupView[] {
    const rows = this.db
      .prepare(
        `SELECT g.*, (SELECT count(*) FROM devices d WHERE d.group_id = g.id) AS devices,
                (SELECT count(*) FROM groups c WHERE c.parent_id = g.id) AS subgroups
         FROM groups g WHERE g.org_id = ? AND ${scope.clause} ORDER BY g.path`,
      )
      .all(orgId, ...scope.params) as (GroupRow & { devices: number; subgroups: number })[];
    const names = this.names(orgId);
    return rows.map((r) => this.toView(r, names, r.devices, r.subgroups));
  }

  view(orgId: number, id: number): GroupView {
    const row = this.get(orgId, id);
    const counts = this.db
      .prepare(
        "SELECT (SELECT count(*) FROM devices WHERE group_id = ?) AS devices, (SELECT count(*) FROM groups WHERE parent_id = ?) AS subgroups",
      )
      .get(id, id) as { devices: number; subgroups: number };
    return this.toView(row, this.names(orgId), counts.devices, counts.subgroups);
  }

  /** "default/plant-a/line-1" for a path "/1/4/9/". */
  fullName(orgId: number, path: string, _executor?: Executor): string {
    const names = this.names(orgId);
    return pathIds(path)
      .map((id) => names.get(id) ?? String(id))
      .join("/");
  }

  private names(orgId: number): Map<number, string> {
    const rows = this.db.prepare("SELECT id, name FROM groups WHERE org_id = ?").all(orgId) as {
      id: number;
      name: string;
    }[];
    return new Map(rows.map((r) => [r.id, r.name]));
  }

  private toView(row: GroupRow, names: Map<number, string>, devices: number, subgroups: number): GroupView {
    return {
      id: row.id,
      name: row.name,
      fullName: pathIds(row.path)
        .map((id) => names.get(id) ?? String(id))
        .join("/"),
      description: row.description,
      timezone: row.timezone,
      parentId: row.parent_id,
      createdAt: new Date(row.created_at).toISOString(),
      devices,
      subgroups,
    };
  }

  private assertFreeName(parentId: number, name: string): void {
    if (this.db.prepare("SELECT 1 FROM groups WHERE parent_id = ? AND name = ?").get(parentId, name)) {
      throw new FieldgateError("GROUP_EXISTS", `a sibling group is already named ${JSON.stringify(name)}`, "name");
    }
  }
}

function pathIds(path: string): number[] {
  return path.split("/").filter(Boolean).map(Number);
}

function assertTimezone(tz: string): void {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
  } catch {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `timezone ${JSON.stringify(tz)} is not an IANA time zone like Europe/Berlin`,
      "timezone",
    );
  }
}

/** What an unknown group reference gets (by id or by name); also a group outside the caller's scope. */
export function groupNotFound(ref: string | number): FieldgateError {
  const shown = typeof ref === "number" || /^\d+$/.test(ref) ? String(Number(ref)) : JSON.stringify(ref);
  return new FieldgateError("GROUP_NOT_FOUND", `no group ${shown}`, "group");
}

import type Database from "better-sqlite3";
import { type GroupRow, groupNotFound } from "./group-tree.js";

/**
 * Synchronous group reads on the embedded database, for the stores that are still synchronous
 * (registry, bulk) while issue #14 converts them; they move to the async GroupTree then, and this goes.
 */
export class EmbeddedGroupLookup {
  constructor(
    private readonly db: Database.Database,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Creates the root group of a new organization (inside the caller's transaction). */
  createRoot(orgId: number, name: string): GroupRow {
    const id = Number(
      this.db
        .prepare("INSERT INTO groups (org_id, parent_id, name, path, created_at) VALUES (?, NULL, ?, '', ?)")
        .run(orgId, name, this.clock()).lastInsertRowid,
    );
    this.db.prepare("UPDATE groups SET path = ? WHERE id = ?").run(`/${id}/`, id);
    return this.get(orgId, id);
  }

  /** A sub-group, for the synchronous stores' tests; the API creates groups through GroupTree. */
  create(orgId: number, parentId: number, fields: { name: string }): GroupRow {
    const parent = this.get(orgId, parentId);
    const id = Number(
      this.db
        .prepare("INSERT INTO groups (org_id, parent_id, name, timezone, path, created_at) VALUES (?, ?, ?, ?, '', ?)")
        .run(orgId, parent.id, fields.name, parent.timezone, this.clock()).lastInsertRowid,
    );
    this.db.prepare("UPDATE groups SET path = ? WHERE id = ?").run(`${parent.path}${id}/`, id);
    return this.get(orgId, id);
  }

  root(orgId: number): GroupRow {
    const row = this.db.prepare("SELECT * FROM groups WHERE org_id = ? AND parent_id IS NULL").get(orgId) as
      | GroupRow
      | undefined;
    if (!row) throw new Error(`organization ${orgId} has no root group`);
    return row;
  }

  get(orgId: number, id: number): GroupRow {
    const row = this.db.prepare("SELECT * FROM groups WHERE id = ? AND org_id = ?").get(id, orgId) as
      | GroupRow
      | undefined;
    if (!row) throw groupNotFound(id);
    return row;
  }

  resolve(orgId: number, ref: string | number): GroupRow {
    if (typeof ref === "number" || /^\d+$/.test(ref)) return this.get(orgId, Number(ref));
    const parts = ref.split("/").filter(Boolean);
    let current = this.root(orgId);
    if (parts[0] === current.name) parts.shift();
    for (const part of parts) {
      const child = this.db.prepare("SELECT * FROM groups WHERE parent_id = ? AND name = ?").get(current.id, part) as
        | GroupRow
        | undefined;
      if (!child) throw groupNotFound(ref);
      current = child;
    }
    return current;
  }

  fullName(orgId: number, path: string): string {
    const rows = this.db.prepare("SELECT id, name FROM groups WHERE org_id = ?").all(orgId) as {
      id: number;
      name: string;
    }[];
    const names = new Map(rows.map((r) => [r.id, r.name]));
    return path
      .split("/")
      .filter(Boolean)
      .map((id) => names.get(Number(id)) ?? id)
      .join("/");
  }
}

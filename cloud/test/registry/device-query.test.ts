import { describe, expect, it } from "vitest";
import { AccessPolicy, type Principal } from "../../src/access/access-policy.js";
import { EmbeddedGroupLookup } from "../../src/groups/embedded-group-lookup.js";
import { buildDeviceQuery, type DeviceFilters, type SqlScope } from "../../src/registry/device-query.js";
import { DeviceRegistry } from "../../src/registry/device-registry.js";
import { openDatabase } from "../../src/storage/database.js";

const everywhere: SqlScope = { clause: "1", params: [] };

describe("buildDeviceQuery (SQL text)", () => {
  it("binds every user value and never splices it into the SQL", () => {
    const evil = "x'; DROP TABLE devices; --";
    const filters: DeviceFilters = {
      uuid: "ABC",
      name: evil,
      location: evil,
      tags: [evil],
      type: evil,
      status: "ok",
      online: true,
      lastSeenFrom: 1,
      lastSeenTo: 2,
      firmwareVersion: evil,
      q: evil,
      group: { id: 4, path: "/1/4/", includeSubgroups: true },
    };
    const query = buildDeviceQuery(7, everywhere, filters);
    for (const statement of [query.count, query.select, query.page({ key: evil, id: 3 }, 10)]) {
      expect(statement.sql).not.toContain("DROP");
      expect(statement.sql).not.toContain("/1/4/");
      expect(statement.sql.split("?").length - 1).toBe(statement.params.length);
    }
    expect(query.select.params).toContain(evil);
    expect(query.select.params).toContain("%x'; drop table devices; --%");
    expect(query.select.params.slice(0, 3)).toEqual([7, "abc", "abc~"]);
  });

  it("keeps the access scope as the first condition", () => {
    const query = buildDeviceQuery(1, { clause: "(g.path >= ? AND g.path < ?)", params: ["/1/4/", "/1/40"] }, {});
    expect(query.count.sql).toContain("WHERE (d.org_id = ?) AND ((g.path >= ? AND g.path < ?))");
    expect(query.count.params).toEqual([1, "/1/4/", "/1/40"]);
  });

  it("sorts only by whitelisted columns, ascending or with - descending, with the id as tie-break", () => {
    expect(buildDeviceQuery(1, everywhere, {}).select.sql).toMatch(/ORDER BY d\.created_at ASC, d\.id ASC$/);
    expect(buildDeviceQuery(1, everywhere, { sort: "-lastSeen" }).select.sql).toMatch(
      /ORDER BY coalesce\(d\.last_seen, -1\) DESC, d\.id DESC$/,
    );
    for (const sort of ["health", "name; DROP TABLE devices", "--name", "created_at"]) {
      expect(() => buildDeviceQuery(1, everywhere, { sort })).toThrow(
        expect.objectContaining({ code: "VALIDATION_FAILED", field: "sort" }),
      );
    }
  });

  it("a group without sub-groups means that group only; with them, its path range", () => {
    const exact = buildDeviceQuery(1, everywhere, { group: { id: 4, path: "/1/4/", includeSubgroups: false } });
    expect(exact.count.sql).toContain("(d.group_id = ?)");
    expect(exact.count.params).toEqual([1, 4]);
    const tree = buildDeviceQuery(1, everywhere, { group: { id: 4, path: "/1/4/", includeSubgroups: true } });
    expect(tree.count.sql).toContain("(g.path >= ? AND g.path < ?)");
    expect(tree.count.params).toEqual([1, "/1/4/", "/1/40"]);
  });
});

describe("buildDeviceQuery on SQLite", () => {
  const db = openDatabase(":memory:");
  const groups = new EmbeddedGroupLookup(db);
  let now = Date.parse("2026-01-01T00:00:00Z");
  const registry = new DeviceRegistry(db, groups, 600_000, () => now++);
  const org = registry.ensureDefaultOrganization();
  const root = groups.root(org);
  const plant = groups.create(org, root.id, { name: "plant" });
  const line = groups.create(org, plant.id, { name: "line" });
  const other = groups.create(org, root.id, { name: "other" });
  const typeId = Number(
    db
      .prepare("INSERT INTO device_types (org_id, group_id, name, created_at) VALUES (?, ?, 'sensor', 0)")
      .run(org, root.id).lastInsertRowid,
  );
  const add = (uuid: string, groupId: number, fields: Record<string, unknown> = {}, extra = "") => {
    registry.create(org, { uuid, ...fields }, { groupId, typeId: fields.typed ? typeId : null });
    if (extra) db.prepare(`UPDATE devices SET ${extra} WHERE uuid = ?`).run(uuid);
  };
  add(
    "00000000-0000-4000-8000-000000000001",
    plant.id,
    { name: "Alpha", tags: ["a", "b"], typed: true },
    "health = 'ok', online = 1, last_seen = 1000, firmware_version = '1.0.0'",
  );
  add(
    "00000000-0000-4000-8000-000000000002",
    line.id,
    { name: "beta", location: "hall 2", tags: ["b"] },
    "health = 'critical', last_seen = 3000",
  );
  add("10000000-0000-4000-8000-000000000003", other.id, { name: "gamma", comment: "100%" }, "health = 'warning'");

  const uuids = (filters: DeviceFilters, scope = everywhere) => {
    const q = buildDeviceQuery(org, scope, filters);
    return (db.prepare(q.select.sql).all(...q.select.params) as { uuid: string }[]).map((r) => r.uuid.slice(-1));
  };

  it("filters on each column", () => {
    expect(uuids({})).toEqual(["1", "2", "3"]);
    expect(uuids({ uuid: "1000" })).toEqual(["3"]);
    expect(uuids({ uuid: "00000000-0000-4000-8000-000000000002" })).toEqual(["2"]);
    expect(uuids({ name: "ALP" })).toEqual(["1"]);
    expect(uuids({ location: "hall" })).toEqual(["2"]);
    expect(uuids({ tags: ["b"] })).toEqual(["1", "2"]);
    expect(uuids({ tags: ["a", "b"] })).toEqual(["1"]);
    expect(uuids({ type: "sensor" })).toEqual(["1"]);
    expect(uuids({ type: typeId })).toEqual(["1"]);
    expect(uuids({ type: "nothing" })).toEqual([]);
    expect(uuids({ group: { id: plant.id, path: plant.path, includeSubgroups: false } })).toEqual(["1"]);
    expect(uuids({ group: { id: plant.id, path: plant.path, includeSubgroups: true } })).toEqual(["1", "2"]);
    expect(uuids({ status: "critical" })).toEqual(["2"]);
    expect(uuids({ online: true })).toEqual(["1"]);
    expect(uuids({ online: false })).toEqual(["2", "3"]);
    expect(uuids({ lastSeenFrom: 2000 })).toEqual(["2"]);
    expect(uuids({ lastSeenTo: 2000 })).toEqual(["1"]);
    expect(uuids({ firmwareVersion: "1.0.0" })).toEqual(["1"]);
    expect(uuids({ q: "100%" })).toEqual(["3"]);
    expect(uuids({ q: "%" })).toEqual(["3"]);
  });

  it("sorts and walks keyset pages in the same order as the full select", () => {
    expect(uuids({ sort: "-status" })).toEqual(["2", "3", "1"]);
    expect(uuids({ sort: "name" })).toEqual(["1", "2", "3"]);
    expect(uuids({ sort: "-lastSeen" })).toEqual(["2", "1", "3"]);
    for (const sort of ["lastSeen", "-name", "type", "-firmwareVersion", "group"]) {
      const q = buildDeviceQuery(org, everywhere, { sort });
      const walked: string[] = [];
      let cursor: { key: string | number | null; id: number } | undefined;
      for (;;) {
        const page = q.page(cursor, 1);
        const rows = db.prepare(page.sql).all(...page.params) as {
          uuid: string;
          id: number;
          sort_key: string | number;
        }[];
        if (rows.length === 0) break;
        walked.push(...rows.map((r) => r.uuid.slice(-1)));
        const last = rows[rows.length - 1];
        cursor = last && { key: last.sort_key, id: last.id };
      }
      expect(walked, sort).toEqual(uuids({ sort }));
    }
  });

  it("never leaves the access scope, whatever the group filter", () => {
    const principal: Principal = {
      kind: "credential",
      id: "c",
      orgId: org,
      grants: [{ groupId: plant.id, path: plant.path, role: "viewer" }],
    };
    const scope = new AccessPolicy().sqlScope(principal, "devices:read", "g.path");
    expect(uuids({}, scope)).toEqual(["1", "2"]);
    expect(uuids({ group: { id: other.id, path: other.path, includeSubgroups: true } }, scope)).toEqual([]);
    expect(uuids({ group: { id: root.id, path: root.path, includeSubgroups: true } }, scope)).toEqual(["1", "2"]);
    expect(uuids({ group: { id: root.id, path: root.path, includeSubgroups: false } }, scope)).toEqual([]);
  });
});

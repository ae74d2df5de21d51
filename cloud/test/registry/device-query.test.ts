import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccessPolicy, type Principal } from "../../src/access/access-policy.js";
import type { GroupRow } from "../../src/groups/group-tree.js";
import {
  asKyselySql,
  buildDeviceQuery,
  type DeviceFilters,
  type SqlScope,
  type SqlStatement,
} from "../../src/registry/device-query.js";
import { openRegistry, type RegistryFixture } from "./registry-fixture.js";

const everywhere: SqlScope = { clause: "1 = 1", params: [] };

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

describe("buildDeviceQuery on the suite's backend", () => {
  let fixture: RegistryFixture;
  let org: number;
  let root: GroupRow;
  let plant: GroupRow;
  let other: GroupRow;
  let typeId: number;

  beforeAll(async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    fixture = await openRegistry({ clock: () => now++ });
    const { registry, groups, database } = fixture;
    org = fixture.orgId;
    root = fixture.root;
    plant = await groups.create(org, root.id, { name: "plant" });
    const line = await groups.create(org, plant.id, { name: "line" });
    other = await groups.create(org, root.id, { name: "other" });
    ({ id: typeId } = (await database.kysely
      .withTables<{
        device_types: { id?: number; org_id: number; group_id: number; name: string; created_at: number };
      }>()
      .insertInto("device_types")
      .values({ org_id: org, group_id: root.id, name: "sensor", created_at: 0 })
      .returning("id")
      .executeTakeFirstOrThrow()) as { id: number });
    const add = async (
      uuid: string,
      groupId: number,
      fields: Record<string, unknown>,
      stored: Record<string, unknown>,
    ) => {
      await registry.create(org, { uuid, ...fields }, { groupId, typeId: fields.typed ? typeId : null });
      await database.kysely
        .withTables<{ devices: Record<string, unknown> }>()
        .updateTable("devices")
        .set(stored)
        .where("uuid", "=", uuid)
        .execute();
    };
    await add(
      "00000000-0000-4000-8000-000000000001",
      plant.id,
      { name: "Alpha", tags: ["a", "b"], typed: true },
      { health: "ok", online: 1, last_seen: 1000, firmware_version: "1.0.0" },
    );
    await add(
      "00000000-0000-4000-8000-000000000002",
      line.id,
      { name: "beta", location: "hall 2", tags: ["b"] },
      { health: "critical", last_seen: 3000 },
    );
    await add(
      "10000000-0000-4000-8000-000000000003",
      other.id,
      { name: "gamma", comment: "100%" },
      { health: "warning" },
    );
  });
  afterAll(() => fixture.dispose());

  const rowsOf = async <R>(statement: SqlStatement) =>
    (await asKyselySql<R>(statement).execute(fixture.database.kysely)).rows;
  const uuids = async (filters: DeviceFilters, scope = everywhere) => {
    const q = buildDeviceQuery(org, scope, filters, fixture.database.dialect);
    return (await rowsOf<{ uuid: string }>(q.select)).map((r) => r.uuid.slice(-1));
  };

  it("filters on each column", async () => {
    expect(await uuids({})).toEqual(["1", "2", "3"]);
    expect(await uuids({ uuid: "1000" })).toEqual(["3"]);
    expect(await uuids({ uuid: "00000000-0000-4000-8000-000000000002" })).toEqual(["2"]);
    expect(await uuids({ name: "ALP" })).toEqual(["1"]);
    expect(await uuids({ location: "hall" })).toEqual(["2"]);
    expect(await uuids({ location: "HALL" })).toEqual(["2"]);
    expect(await uuids({ tags: ["b"] })).toEqual(["1", "2"]);
    expect(await uuids({ tags: ["a", "b"] })).toEqual(["1"]);
    expect(await uuids({ type: "sensor" })).toEqual(["1"]);
    expect(await uuids({ type: typeId })).toEqual(["1"]);
    expect(await uuids({ type: "nothing" })).toEqual([]);
    expect(await uuids({ group: { id: plant.id, path: plant.path, includeSubgroups: false } })).toEqual(["1"]);
    expect(await uuids({ group: { id: plant.id, path: plant.path, includeSubgroups: true } })).toEqual(["1", "2"]);
    expect(await uuids({ status: "critical" })).toEqual(["2"]);
    expect(await uuids({ online: true })).toEqual(["1"]);
    expect(await uuids({ online: false })).toEqual(["2", "3"]);
    expect(await uuids({ lastSeenFrom: 2000 })).toEqual(["2"]);
    expect(await uuids({ lastSeenTo: 2000 })).toEqual(["1"]);
    expect(await uuids({ firmwareVersion: "1.0.0" })).toEqual(["1"]);
    expect(await uuids({ q: "100%" })).toEqual(["3"]);
    expect(await uuids({ q: "%" })).toEqual(["3"]);
    expect(await uuids({ q: "GAMMA" })).toEqual(["3"]);
  });

  it("sorts and walks keyset pages in the same order as the full select", async () => {
    expect(await uuids({ sort: "-status" })).toEqual(["2", "3", "1"]);
    expect(await uuids({ sort: "name" })).toEqual(["1", "2", "3"]);
    expect(await uuids({ sort: "-lastSeen" })).toEqual(["2", "1", "3"]);
    for (const sort of ["lastSeen", "-name", "type", "-firmwareVersion", "group", "-status", "online"]) {
      const q = buildDeviceQuery(org, everywhere, { sort }, fixture.database.dialect);
      const walked: string[] = [];
      let cursor: { key: string | number | null; id: number } | undefined;
      for (;;) {
        const rows = await rowsOf<{ uuid: string; id: number; sort_key: string | number }>(q.page(cursor, 1));
        if (rows.length === 0) break;
        walked.push(...rows.map((r) => r.uuid.slice(-1)));
        const last = rows[rows.length - 1];
        cursor = last && { key: last.sort_key, id: last.id };
      }
      expect(walked, sort).toEqual(await uuids({ sort }));
    }
  });

  it("never leaves the access scope, whatever the group filter", async () => {
    const principal: Principal = {
      kind: "credential",
      id: "c",
      orgId: org,
      grants: [{ groupId: plant.id, path: plant.path, role: "viewer" }],
    };
    const policy = new AccessPolicy();
    const scope = policy.sqlScope(principal, "devices:read", "g.path");
    expect(await uuids({}, scope)).toEqual(["1", "2"]);
    expect(await uuids({ group: { id: other.id, path: other.path, includeSubgroups: true } }, scope)).toEqual([]);
    expect(await uuids({ group: { id: root.id, path: root.path, includeSubgroups: true } }, scope)).toEqual(["1", "2"]);
    expect(await uuids({ group: { id: root.id, path: root.path, includeSubgroups: false } }, scope)).toEqual([]);
    const nowhere = policy.sqlScope({ ...principal, grants: [] }, "devices:read", "g.path");
    expect(await uuids({}, nowhere)).toEqual([]);
  });
});

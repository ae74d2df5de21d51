import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LOCAL_POSTGRES, openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { DeviceTypes } from "../../src/device-types/device-types.js";
import { type GroupDependent, type GroupRow, GroupTree } from "../../src/groups/group-tree.js";
import { GroupDeviceMembers } from "../../src/registry/group-members.js";
import type { CloudDatabase } from "../../src/storage/cloud-database.js";
import { addDevice, addOrganization } from "./foreign-rows.js";

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

describe("GroupTree", () => {
  let test: TestDatabase;
  let database: CloudDatabase;
  let groups: GroupTree;
  let types: DeviceTypes;
  let orgId: number;
  let root: GroupRow;
  const now = Date.parse("2026-03-01T10:00:00Z");

  beforeEach(async () => {
    test = await openTestDatabase();
    database = test.database;
    const members = new GroupDeviceMembers(database);
    const dependents: GroupDependent[] = [];
    groups = new GroupTree(database, members, () => now, dependents);
    types = new DeviceTypes(database, groups, {
      deviceCountsByType: async (ids) => {
        const rows = await database.kysely
          .withTables<{ devices: { type_id: number | null } }>()
          .selectFrom("devices")
          .select((eb) => ["type_id", eb.fn.countAll<number>().as("n")])
          .where("type_id", "in", [...ids])
          .groupBy("type_id")
          .execute();
        return new Map(rows.map((r) => [r.type_id as number, Number(r.n)]));
      },
    });
    dependents.push(types);
    orgId = await addOrganization(database, "acme");
    root = await groups.createRoot(orgId, "acme");
  });

  afterEach(async () => {
    await test.dispose();
  });

  it("builds a tree whose groups inherit the parent's time zone and show full names and counts", async () => {
    const plant = await groups.create(orgId, root.id, { name: "plant-a", timezone: "Europe/Berlin" });
    const line = await groups.create(orgId, plant.id, { name: "line-1" });
    await addDevice(database, orgId, line.id, uuid(1));
    await addDevice(database, orgId, line.id, uuid(2));

    expect(root.path).toBe(`/${root.id}/`);
    expect(line.path).toBe(`/${root.id}/${plant.id}/${line.id}/`);
    expect(line.timezone).toBe("Europe/Berlin");
    expect(await groups.byName(orgId, "plant-a/line-1")).toEqual(line);
    expect(await groups.resolve(orgId, "acme/plant-a")).toEqual(plant);
    expect(await groups.resolve(orgId, String(line.id))).toEqual(line);
    expect(await groups.view(orgId, plant.id)).toMatchObject({
      fullName: "acme/plant-a",
      devices: 0,
      subgroups: 1,
      createdAt: new Date(now).toISOString(),
    });
    expect(await groups.view(orgId, line.id)).toMatchObject({ fullName: "acme/plant-a/line-1", devices: 2 });
    const listed = await groups.list(orgId, [root.path]);
    expect(listed.map((g) => [g.fullName, g.devices, g.subgroups])).toEqual([
      ["acme", 0, 1],
      ["acme/plant-a", 0, 1],
      ["acme/plant-a/line-1", 2, 0],
    ]);
    await expect(groups.byName(orgId, "plant-a/nope")).rejects.toMatchObject({ code: "GROUP_NOT_FOUND" });
    await expect(groups.create(orgId, root.id, { name: "x", timezone: "Mars/Olympus" })).rejects.toMatchObject({
      code: "VALIDATION_FAILED",
      field: "timezone",
    });
  });

  it("keeps organizations apart: another tenant's group is not found", async () => {
    const other = await addOrganization(database, "other");
    const otherRoot = await groups.createRoot(other, "other");
    await expect(groups.get(orgId, otherRoot.id)).rejects.toMatchObject({ code: "GROUP_NOT_FOUND" });
    await expect(groups.create(orgId, otherRoot.id, { name: "x" })).rejects.toMatchObject({
      code: "GROUP_NOT_FOUND",
    });
    expect((await groups.list(orgId, [root.path, otherRoot.path])).map((g) => g.id)).toEqual([root.id]);
  });

  it("lists exactly the subtrees of the scopes, never a sibling whose id starts with the same digits", async () => {
    const made: GroupRow[] = [];
    for (let i = 0; i < 25; i++) made.push(await groups.create(orgId, root.id, { name: `g${i}` }));
    // A group whose id is a prefix of another's: "/1/2/" must not reach "/1/21/".
    const short = made.find((g) => made.some((o) => o.id !== g.id && String(o.id).startsWith(String(g.id))));
    if (!short) throw new Error("no id is a prefix of another");
    const child = await groups.create(orgId, short.id, { name: "child" });
    const listed = await groups.list(orgId, [short.path]);
    expect(listed.map((g) => g.id)).toEqual([short.id, child.id]);
    expect(await groups.list(orgId, [])).toEqual([]);
  });

  it("refuses a second sibling of the same name, also when the creates race", async () => {
    await groups.create(orgId, root.id, { name: "plant" });
    await expect(groups.create(orgId, root.id, { name: "plant" })).rejects.toMatchObject({ code: "GROUP_EXISTS" });
    const other = await groups.create(orgId, root.id, { name: "other" });
    await expect(groups.edit(orgId, other.id, { name: "plant" })).rejects.toMatchObject({ code: "GROUP_EXISTS" });

    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => groups.create(orgId, root.id, { name: "raced" })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results.filter((r) => r.status === "rejected")) {
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: "GROUP_EXISTS" });
    }
  });

  it("edits only the fields given", async () => {
    const plant = await groups.create(orgId, root.id, { name: "plant", description: "old", timezone: "Asia/Tokyo" });
    const edited = await groups.edit(orgId, plant.id, { description: "new" });
    expect(edited).toMatchObject({ name: "plant", description: "new", timezone: "Asia/Tokyo" });
  });

  it("moves a subtree, every path following, and refuses a move under itself or of the root", async () => {
    const a = await groups.create(orgId, root.id, { name: "a" });
    const a1 = await groups.create(orgId, a.id, { name: "a1" });
    const a11 = await groups.create(orgId, a1.id, { name: "a11" });
    const b = await groups.create(orgId, root.id, { name: "b" });

    const moved = await groups.move(orgId, a.id, b.id);
    expect(moved.path).toBe(`${b.path}${a.id}/`);
    expect(moved.parent_id).toBe(b.id);
    expect((await groups.get(orgId, a11.id)).path).toBe(`${b.path}${a.id}/${a1.id}/${a11.id}/`);
    expect(await groups.fullName(orgId, (await groups.get(orgId, a11.id)).path)).toBe("acme/b/a/a1/a11");

    await expect(groups.move(orgId, b.id, a11.id)).rejects.toMatchObject({ code: "GROUP_MOVE_INVALID" });
    await expect(groups.move(orgId, root.id, b.id)).rejects.toMatchObject({ code: "GROUP_MOVE_INVALID" });
    const sameName = await groups.create(orgId, root.id, { name: "a" });
    await expect(groups.move(orgId, sameName.id, b.id)).rejects.toMatchObject({ code: "GROUP_EXISTS" });
  });

  it("lets only one of two crossing moves happen, so the tree never loops", async () => {
    const a = await groups.create(orgId, root.id, { name: "a" });
    const b = await groups.create(orgId, root.id, { name: "b" });
    const results = await Promise.allSettled([groups.move(orgId, a.id, b.id), groups.move(orgId, b.id, a.id)]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const after = [await groups.get(orgId, a.id), await groups.get(orgId, b.id)];
    // Exactly one sits under the other, and both are still below the root.
    expect(after.filter((g) => g.parent_id === root.id)).toHaveLength(1);
    for (const g of after) expect(g.path.startsWith(root.path)).toBe(true);
  });

  it("refuses to delete a group holding devices or sub-groups unless recursive, and the root always", async () => {
    const plant = await groups.create(orgId, root.id, { name: "plant" });
    const line = await groups.create(orgId, plant.id, { name: "line" });
    await addDevice(database, orgId, line.id, uuid(1));
    await expect(groups.delete(orgId, line.id, false)).rejects.toMatchObject({
      code: "GROUP_NOT_EMPTY",
      message: expect.stringContaining("1 device(s) and 0 sub-group(s)"),
    });
    await expect(groups.delete(orgId, plant.id, false)).rejects.toMatchObject({
      message: expect.stringContaining("1 device(s) and 1 sub-group(s)"),
    });
    await expect(groups.delete(orgId, root.id, true)).rejects.toMatchObject({ code: "GROUP_MOVE_INVALID" });
    const empty = await groups.create(orgId, root.id, { name: "empty" });
    expect(await groups.delete(orgId, empty.id, false)).toEqual({ groups: 1, devices: [] });
    await expect(groups.get(orgId, empty.id)).rejects.toMatchObject({ code: "GROUP_NOT_FOUND" });
  });

  it("deletes a subtree recursively with its devices and device types, and nothing outside it", async () => {
    const plant = await groups.create(orgId, root.id, { name: "plant" });
    const line = await groups.create(orgId, plant.id, { name: "line" });
    const kept = await groups.create(orgId, root.id, { name: "kept" });
    const type = await types.create(orgId, plant.id, { name: "gw" });
    const keptType = await types.create(orgId, kept.id, { name: "sensor" });
    await addDevice(database, orgId, plant.id, uuid(1), type.id);
    await addDevice(database, orgId, line.id, uuid(2), type.id);
    await addDevice(database, orgId, kept.id, uuid(3), keptType.id);

    const deleted = await groups.delete(orgId, plant.id, true);
    expect(deleted.groups).toBe(2);
    expect([...deleted.devices].sort()).toEqual([uuid(1), uuid(2)]);
    await expect(groups.get(orgId, line.id)).rejects.toMatchObject({ code: "GROUP_NOT_FOUND" });
    await expect(types.get(orgId, type.id)).rejects.toMatchObject({ code: "TYPE_NOT_FOUND" });
    expect(await types.get(orgId, keptType.id)).toMatchObject({ name: "sensor", devices: 1 });
    expect((await groups.list(orgId, [root.path])).map((g) => [g.fullName, g.devices])).toEqual([
      ["acme", 0],
      ["acme/kept", 1],
    ]);
  });
});

describe("GroupTree on PostgreSQL", () => {
  it("serves a subtree range from an index on the path", async () => {
    const test = await openTestDatabase(LOCAL_POSTGRES);
    try {
      const plan = await test.database.kysely.transaction().execute(async (trx) => {
        // The table is tiny; forbid the sequential scan to see which index the planner would use.
        await sql`SET LOCAL enable_seqscan = off`.execute(trx);
        const rows = await sql<{
          "QUERY PLAN": string;
        }>`EXPLAIN SELECT id FROM groups WHERE path >= ${"/1/2/"} AND path < ${"/1/20"}`.execute(trx);
        return rows.rows.map((r) => r["QUERY PLAN"]).join("\n");
      });
      expect(plan).toMatch(/Index (Only )?Scan.* on groups_path/);
    } finally {
      await test.dispose();
    }
  });
});

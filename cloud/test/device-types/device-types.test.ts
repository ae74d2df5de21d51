import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { DeviceTypes } from "../../src/device-types/device-types.js";
import { type GroupDependent, type GroupRow, GroupTree } from "../../src/groups/group-tree.js";
import { GroupDeviceMembers } from "../../src/registry/group-members.js";
import type { CloudDatabase } from "../../src/storage/cloud-database.js";
import { addDevice, addOrganization } from "../groups/foreign-rows.js";

describe("DeviceTypes", () => {
  let test: TestDatabase;
  let database: CloudDatabase;
  let groups: GroupTree;
  let types: DeviceTypes;
  let orgId: number;
  let root: GroupRow;
  let plant: GroupRow;

  beforeEach(async () => {
    test = await openTestDatabase();
    database = test.database;
    const dependents: GroupDependent[] = [];
    groups = new GroupTree(database, new GroupDeviceMembers(database), Date.now, dependents);
    // The registry's count, as it answers it: devices per type.
    types = new DeviceTypes(
      database,
      groups,
      {
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
      },
      () => 1_000,
    );
    dependents.push(types);
    orgId = await addOrganization(database, "acme");
    root = await groups.createRoot(orgId, "acme");
    plant = await groups.create(orgId, root.id, { name: "plant" });
  });

  afterEach(async () => {
    await test.dispose();
  });

  it("creates a type on a group with defaults, resolves it by id or name, and counts its devices", async () => {
    const created = await types.create(orgId, plant.id, {
      name: "gw",
      keepaliveMinutes: 15,
      defaultLinks: [{ id: "a" }],
    });
    expect(created).toMatchObject({
      name: "gw",
      description: "",
      groupId: plant.id,
      groupPath: plant.path,
      keepaliveMinutes: 15,
      firmwareCompat: "gw",
      defaultLinks: [{ id: "a" }],
      healthThresholds: null,
      createdAt: 1_000,
      devices: 0,
    });
    await addDevice(database, orgId, plant.id, "00000000-0000-4000-8000-000000000001", created.id);
    expect((await types.resolve(orgId, "gw")).devices).toBe(1);
    expect((await types.resolve(orgId, String(created.id))).name).toBe("gw");
    await expect(types.resolve(orgId, "nope")).rejects.toMatchObject({ code: "TYPE_NOT_FOUND" });
    await expect(types.create(orgId, root.id, { name: "gw" })).rejects.toMatchObject({ code: "TYPE_EXISTS" });
    expect(await types.firmwareCompat(created.id)).toBe("gw");
    expect(await types.firmwareCompat(created.id + 1000)).toBeUndefined();
    expect(await types.firmwareCompats(orgId)).toEqual(new Map([[created.id, "gw"]]));
    expect(await types.nameOf(created.id)).toEqual({ id: created.id, name: "gw" });
  });

  it("lists by name the types inside the scopes only", async () => {
    const other = await groups.create(orgId, root.id, { name: "other" });
    await types.create(orgId, plant.id, { name: "zeta" });
    await types.create(orgId, root.id, { name: "alpha" });
    await types.create(orgId, other.id, { name: "mid" });
    expect((await types.list(orgId, [root.path])).map((t) => t.name)).toEqual(["alpha", "mid", "zeta"]);
    expect((await types.list(orgId, [plant.path, other.path])).map((t) => t.name)).toEqual(["mid", "zeta"]);
    expect(await types.list(orgId, [])).toEqual([]);
  });

  it("edits only the fields given, clears with null, and refuses a taken name", async () => {
    const gw = await types.create(orgId, plant.id, { name: "gw", description: "d", keepaliveMinutes: 5 });
    await types.create(orgId, plant.id, { name: "sensor" });
    const edited = await types.edit(orgId, gw.id, { firmwareCompat: "gw-b", keepaliveMinutes: null });
    expect(edited).toMatchObject({ name: "gw", description: "d", firmwareCompat: "gw-b", keepaliveMinutes: null });
    await expect(types.edit(orgId, gw.id, { name: "sensor" })).rejects.toMatchObject({ code: "TYPE_EXISTS" });
    await expect(types.edit(orgId, gw.id + 1000, { name: "x" })).rejects.toMatchObject({ code: "TYPE_NOT_FOUND" });
  });

  it("deletes a type no device uses and refuses one in use", async () => {
    const gw = await types.create(orgId, plant.id, { name: "gw" });
    const unused = await types.create(orgId, plant.id, { name: "unused" });
    await addDevice(database, orgId, plant.id, "00000000-0000-4000-8000-000000000001", gw.id);
    await expect(types.delete(orgId, gw.id)).rejects.toMatchObject({ code: "TYPE_IN_USE" });
    await types.delete(orgId, unused.id);
    await expect(types.get(orgId, unused.id)).rejects.toMatchObject({ code: "TYPE_NOT_FOUND" });
  });

  it("keeps organizations apart", async () => {
    const gw = await types.create(orgId, plant.id, { name: "gw" });
    const other = await addOrganization(database, "other");
    await groups.createRoot(other, "other");
    await expect(types.get(other, gw.id)).rejects.toMatchObject({ code: "TYPE_NOT_FOUND" });
    await expect(types.resolve(other, "gw")).rejects.toMatchObject({ code: "TYPE_NOT_FOUND" });
  });
});

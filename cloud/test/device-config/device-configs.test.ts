import { type DesiredConfigMessage, SchemaValidator } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { DeviceConfigs } from "../../src/device-config/device-configs.js";
import { GroupTree } from "../../src/groups/group-tree.js";
import { GroupDeviceMembers } from "../../src/registry/group-members.js";
import type { CloudDatabase } from "../../src/storage/cloud-database.js";
import { addDevice, addOrganization } from "../groups/foreign-rows.js";

describe("DeviceConfigs", () => {
  let test: TestDatabase;
  let database: CloudDatabase;
  let configs: DeviceConfigs;
  let device: { id: number; uuid: string };
  const published: { uuid: string; message: DesiredConfigMessage }[] = [];
  const now = Date.parse("2026-03-01T10:00:00Z");

  /** What ingest stores when the device answers on `config/reported`. */
  const report = async (body: Record<string, unknown>) => {
    const state = database.kysely.withTables<{
      device_state: { device_id: number; config_reported_json: string | null; updated_at: number };
    }>();
    await state
      .insertInto("device_state")
      .values({
        device_id: device.id,
        config_reported_json: JSON.stringify({ v: 1, ts: now, ...body }),
        updated_at: now,
      })
      .onConflict((oc) =>
        oc.column("device_id").doUpdateSet((eb) => ({ config_reported_json: eb.ref("excluded.config_reported_json") })),
      )
      .execute();
  };

  beforeEach(async () => {
    published.length = 0;
    test = await openTestDatabase();
    database = test.database;
    const orgId = await addOrganization(database, "acme");
    const root = await new GroupTree(database, new GroupDeviceMembers(database)).createRoot(orgId, "acme");
    const uuid = "00000000-0000-4000-8000-000000000001";
    device = { id: await addDevice(database, orgId, root.id, uuid), uuid };
    configs = new DeviceConfigs(
      database,
      (to, message) => published.push({ uuid: to, message }),
      new SchemaValidator(),
      () => now,
    );
  });

  afterEach(async () => {
    await test.dispose();
  });

  it("has nothing to send before a first PUT", async () => {
    expect(await configs.message(device.id)).toBeUndefined();
    expect(await configs.view(device)).toMatchObject({ version: 0, desired: {}, state: "none", inSync: true });
  });

  it("numbers each PUT, publishes it, and follows what the device reports", async () => {
    const first = await configs.set(device, { logLevel: "debug" });
    expect(first).toMatchObject({ version: 1, desired: { logLevel: "debug" }, state: "pending", inSync: false });
    expect(first.updatedAt).toBe(new Date(now).toISOString());
    await configs.set(device, { logLevel: "warn" });
    expect(published).toEqual([
      { uuid: device.uuid, message: { v: 1, version: 1, logLevel: "debug" } },
      { uuid: device.uuid, message: { v: 1, version: 2, logLevel: "warn" } },
    ]);
    expect(await configs.message(device.id)).toEqual({ v: 1, version: 2, logLevel: "warn" });

    await report({ version: 1 });
    expect((await configs.view(device)).state).toBe("pending");
    await report({ version: 2 });
    expect(await configs.view(device)).toMatchObject({ state: "applied", inSync: true, reported: { version: 2 } });
    await configs.set(device, { logLevel: "info" });
    await report({ version: 2, rejectedVersion: 3, error: "no such level" });
    expect((await configs.view(device)).state).toBe("rejected");
  });

  it("gives concurrent PUTs distinct versions and publishes each one's own", async () => {
    const levels = ["error", "warn", "info", "debug", "trace"] as const;
    await Promise.all(levels.map((logLevel) => configs.set(device, { logLevel })));
    expect(published.map((p) => p.message.version).sort()).toEqual([1, 2, 3, 4, 5]);
    // Each version went out with the config that PUT stored, not another's.
    const byVersion = new Map(published.map((p) => [p.message.version, p.message.logLevel]));
    expect(new Set(byVersion.values())).toEqual(new Set(levels));
    expect((await configs.message(device.id))?.logLevel).toBe(byVersion.get(5));
  });

  it("reports a stored config this cloud's schema no longer accepts with its own code", async () => {
    await configs.set(device, { logLevel: "debug" });
    await database.kysely
      .withTables<{ device_config: { device_id: number; desired_json: string } }>()
      .updateTable("device_config")
      .set({ desired_json: JSON.stringify({ logLevel: "loud" }) })
      .where("device_id", "=", device.id)
      .execute();
    await expect(configs.view(device)).rejects.toMatchObject({ code: "DESIRED_CONFIG_STORED_INVALID" });
  });
});

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { DeviceTypes } from "../../src/device-types/device-types.js";
import { FirmwareKeys, generateFirmwareKey } from "../../src/firmware/firmware-keys.js";
import type { FirmwareImageUser } from "../../src/firmware/firmware-record.js";
import { FirmwareStore } from "../../src/firmware/firmware-store.js";
import { type GroupRow, GroupTree } from "../../src/groups/group-tree.js";
import type { DeviceRow } from "../../src/registry/device-registry.js";
import { GroupDeviceMembers } from "../../src/registry/group-members.js";
import type { CloudDatabase, Executor } from "../../src/storage/cloud-database.js";
import { addOrganization } from "../groups/foreign-rows.js";

describe("FirmwareStore", () => {
  let dir: string;
  let test: TestDatabase;
  let database: CloudDatabase;
  let types: DeviceTypes;
  let store: FirmwareStore;
  let users: FirmwareImageUser[];
  let orgId: number;
  let root: GroupRow;
  const now = Date.parse("2026-03-01T10:00:00Z");

  const upload = (name: string, version: string, bytes = "image bytes", compatible = ["gw-a"]) =>
    store.add(orgId, { name, version, compatible }, Readable.from([Buffer.from(bytes)]));
  /** Only the columns the store reads of a device row. */
  const deviceOf = (typeId: number | null, org = orgId) => ({ id: 1, org_id: org, type_id: typeId }) as DeviceRow;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "fieldgate-fw-store-"));
    const keyFile = path.join(dir, "firmware.key");
    generateFirmwareKey(keyFile);
    test = await openTestDatabase();
    database = test.database;
    const groups = new GroupTree(database, new GroupDeviceMembers(database));
    types = new DeviceTypes(database, groups, { deviceCountsByType: async () => new Map() });
    users = [];
    store = new FirmwareStore(
      database,
      path.join(dir, "images"),
      1 << 20,
      new FirmwareKeys(keyFile),
      types,
      () => now,
      undefined,
      users,
    );
    orgId = await addOrganization(database, "acme");
    root = await groups.createRoot(orgId, "acme");
  });

  afterEach(async () => {
    await test.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("stores an image with its signed manifest, lists and finds it, and refuses the same version twice", async () => {
    const record = await upload("gw-os", "1.0.0");
    expect(record).toMatchObject({ orgId, name: "gw-os", version: "1.0.0", compatible: ["gw-a"], size: 11 });
    expect(record.createdAt).toBe(now);
    expect(fs.readFileSync(store.imagePath(record), "utf8")).toBe("image bytes");
    expect(store.signed(record).manifest).toMatchObject({ name: "gw-os", version: "1.0.0", sha256: record.sha256 });
    await upload("gw-os", "0.9.0");
    await upload("aa", "1.0.0");
    expect((await store.list(orgId)).map((r) => `${r.name}@${r.version}`)).toEqual([
      "aa@1.0.0",
      "gw-os@1.0.0",
      "gw-os@0.9.0",
    ]);
    expect(await store.byId(record.id)).toEqual(record);
    expect(await store.find(orgId, "gw-os", "2.0.0")).toBeUndefined();
    await expect(store.get(orgId, "gw-os", "2.0.0")).rejects.toMatchObject({ code: "FIRMWARE_NOT_FOUND" });
    await expect(upload("gw-os", "1.0.0")).rejects.toMatchObject({ code: "FIRMWARE_EXISTS" });
  });

  it("keeps one of two uploads of the same version racing", async () => {
    const results = await Promise.allSettled([upload("gw-os", "1.0.0", "first"), upload("gw-os", "1.0.0", "second")]);
    const kept = results.filter((r) => r.status === "fulfilled");
    expect(kept).toHaveLength(1);
    expect((results.find((r) => r.status === "rejected") as PromiseRejectedResult).reason).toMatchObject({
      code: "FIRMWARE_EXISTS",
    });
    const record = await store.get(orgId, "gw-os", "1.0.0");
    expect(fs.readFileSync(store.imagePath(record)).length).toBe(record.size);
  });

  it("serves a device only an image of its organization listing its type's compatibility id", async () => {
    await upload("gw-os", "1.0.0", "bytes", ["gw-a", "gw-b"]);
    const gwB = await types.create(orgId, root.id, { name: "b", firmwareCompat: "gw-b" });
    const sensor = await types.create(orgId, root.id, { name: "sensor" });
    expect((await store.forDevice(deviceOf(gwB.id), "gw-os", "1.0.0")).version).toBe("1.0.0");
    for (const device of [deviceOf(sensor.id), deviceOf(null), deviceOf(gwB.id, orgId + 1)]) {
      await expect(store.forDevice(device, "gw-os", "1.0.0")).rejects.toMatchObject({ code: "FIRMWARE_NOT_FOUND" });
    }
  });

  it("deletes an image no user needs, its users' rows in the same transaction, or nothing at all", async () => {
    const record = await upload("gw-os", "1.0.0");
    let needed = true;
    const released: number[] = [];
    users.push({
      usesImage: async () => needed,
      releaseImage: async (id: number, _executor: Executor) => void released.push(id),
    });
    await expect(store.delete(orgId, "gw-os", "1.0.0")).rejects.toMatchObject({ code: "FIRMWARE_IN_USE" });
    expect(await store.inUse(record)).toBe(true);
    needed = false;
    users.push({
      usesImage: () => false,
      releaseImage: () => {
        throw new Error("the disk failed");
      },
    });
    await expect(store.delete(orgId, "gw-os", "1.0.0")).rejects.toThrow("the disk failed");
    expect(await store.find(orgId, "gw-os", "1.0.0")).toBeDefined();
    expect(fs.existsSync(store.imagePath(record))).toBe(true);
    users.pop();
    await store.delete(orgId, "gw-os", "1.0.0");
    expect(released).toEqual([record.id, record.id]);
    expect(await store.find(orgId, "gw-os", "1.0.0")).toBeUndefined();
    expect(fs.existsSync(store.imagePath(record))).toBe(false);
  });
});

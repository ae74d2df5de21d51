import { randomUUID } from "node:crypto";
import { FieldgateError } from "@fieldgate/shared";
import type { Kysely } from "kysely";
import { openTestDatabase } from "../../../test/support/test-database.js";
import type { FirmwareImageUser, FirmwareRecord } from "../../src/firmware/firmware-record.js";
import type { FirmwareCompatSource, JobDevices } from "../../src/jobs/device-jobs.js";
import type { DeviceRow } from "../../src/registry/device-registry.js";
import type { RolloutDevices, RolloutImages } from "../../src/rollouts/rollouts.js";
import type { CloudDatabase, Executor } from "../../src/storage/cloud-database.js";

/** The rows of other owners' tables the fleet seeds (only what jobs and rollouts read back). */
type FleetTables = {
  organizations: { id?: number; name: string; created_at: number };
  groups: { id?: number; org_id: number; parent_id: number | null; name: string; path: string; created_at: number };
  device_types: {
    id?: number;
    org_id: number;
    group_id: number;
    name: string;
    firmware_compat: string;
    created_at: number;
  };
  devices: DeviceRow & { keepalive_alerted_at: number | null };
  firmware_images: {
    id?: number;
    org_id: number;
    name: string;
    version: string;
    compatible: string;
    size: number;
    sha256: string;
    min_agent_version: string | null;
    key_id: string;
    created_at: number;
  };
};

type Db = Kysely<FleetTables>;

/** What the firmware store does on a delete, for the image users: ask them, then release and delete in one transaction. */
export interface FleetFirmware extends RolloutImages {
  readonly users: FirmwareImageUser[];
  delete(orgId: number, name: string, version: string): Promise<void>;
}

/**
 * A database with an organization, its root group, a device type (`gw-a`) and stand-ins for the
 * registry, the device types and the firmware store, written on `database.kysely` so that the jobs
 * and rollouts stores run on either backend while those owners are converted (issue #14).
 */
export interface JobFleet {
  database: CloudDatabase;
  orgId: number;
  root: { id: number; path: string };
  typeId: number;
  devices: JobDevices & RolloutDevices;
  types: FirmwareCompatSource;
  firmware: FleetFirmware;
  addDevice(options?: {
    uuid?: string;
    typeId?: number | null;
    version?: string | null;
    createdAt?: number;
  }): Promise<DeviceRow>;
  addType(name: string, compat: string): Promise<number>;
  addImage(name: string, version: string, compatible: string[]): Promise<FirmwareRecord>;
  dispose(): Promise<void>;
}

export async function openJobFleet(server?: string | null, now = Date.now()): Promise<JobFleet> {
  const test = await openTestDatabase(server);
  const { database } = test;
  const db = database.kysely.withTables<FleetTables>();
  const on = (executor?: Executor): Db => (executor as Db | undefined) ?? db;
  const org = await db
    .insertInto("organizations")
    .values({ name: `org-${randomUUID()}`, created_at: now })
    .returning("id")
    .executeTakeFirstOrThrow();
  const orgId = org.id as number;
  const group = await db
    .insertInto("groups")
    .values({ org_id: orgId, parent_id: null, name: "root", path: `/tmp-${randomUUID()}/`, created_at: now })
    .returning("id")
    .executeTakeFirstOrThrow();
  const root = { id: group.id as number, path: `/${group.id}/` };
  await db.updateTable("groups").set({ path: root.path }).where("id", "=", root.id).execute();

  const addType = async (name: string, compat: string) => {
    const row = await db
      .insertInto("device_types")
      .values({ org_id: orgId, group_id: root.id, name, firmware_compat: compat, created_at: now })
      .returning("id")
      .executeTakeFirstOrThrow();
    return row.id as number;
  };
  const typeId = await addType("gw", "gw-a");

  const findById = (deviceId: number, executor?: Executor) =>
    on(executor).selectFrom("devices").selectAll().where("id", "=", deviceId).executeTakeFirst() as Promise<
      DeviceRow | undefined
    >;
  const devices: JobDevices & RolloutDevices = {
    findById,
    findByUuid: (uuid) =>
      db.selectFrom("devices").selectAll().where("uuid", "=", uuid).executeTakeFirst() as Promise<
        DeviceRow | undefined
      >,
    groupPath: async (row) =>
      (await db.selectFrom("groups").select("path").where("id", "=", row.group_id).executeTakeFirstOrThrow()).path,
    resolveFilters: () => {
      throw new Error("the job fleet targets devices by uuid only");
    },
    matching: () => {
      throw new Error("the job fleet targets devices by uuid only");
    },
    uuidsByIds: async (ids, executor) => {
      if (ids.length === 0) return new Map();
      const rows = await on(executor).selectFrom("devices").select(["id", "uuid"]).where("id", "in", ids).execute();
      return new Map(rows.map((r) => [r.id, r.uuid]));
    },
    recordFirmwareVersion: async (deviceId, version, executor) => {
      const result = await on(executor)
        .updateTable("devices")
        .set({ firmware_version: version })
        .where("id", "=", deviceId)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },
  };
  const types: FirmwareCompatSource = {
    firmwareCompat: async (id, executor) =>
      (await on(executor).selectFrom("device_types").select("firmware_compat").where("id", "=", id).executeTakeFirst())
        ?.firmware_compat,
  };

  const record = (row: FleetTables["firmware_images"]): FirmwareRecord => ({
    id: row.id as number,
    orgId: row.org_id,
    name: row.name,
    version: row.version,
    compatible: JSON.parse(row.compatible) as string[],
    size: row.size,
    sha256: row.sha256,
    minAgentVersion: row.min_agent_version ?? undefined,
    keyId: row.key_id,
    createdAt: row.created_at,
  });
  const find = async (org: number, name: string, version: string) => {
    const row = await db
      .selectFrom("firmware_images")
      .selectAll()
      .where("org_id", "=", org)
      .where("name", "=", name)
      .where("version", "=", version)
      .executeTakeFirst();
    return row && record(row);
  };
  const users: FirmwareImageUser[] = [];
  const firmware: FleetFirmware = {
    users,
    find,
    get: async (org, name, version) => {
      const found = await find(org, name, version);
      if (!found) throw new FieldgateError("FIRMWARE_NOT_FOUND", `no image ${name}@${version}`, "firmware");
      return found;
    },
    byId: async (id) => {
      const row = await db.selectFrom("firmware_images").selectAll().where("id", "=", id).executeTakeFirst();
      return row && record(row);
    },
    delete: async (org, name, version) => {
      const image = await firmware.get(org, name, version);
      for (const user of users) {
        if (await user.usesImage(image.id)) throw new FieldgateError("FIRMWARE_IN_USE", `${name}@${version} is in use`);
      }
      await db.transaction().execute(async (trx) => {
        for (const user of users) await user.releaseImage?.(image.id, trx);
        await trx.deleteFrom("firmware_images").where("id", "=", image.id).execute();
      });
    },
  };

  return {
    database,
    orgId,
    root,
    typeId,
    devices,
    types,
    firmware,
    addType,
    addDevice: async (options = {}) => {
      const row = await db
        .insertInto("devices")
        .values({
          uuid: options.uuid ?? randomUUID(),
          org_id: orgId,
          group_id: root.id,
          type_id: options.typeId === undefined ? typeId : options.typeId,
          firmware_version: options.version === undefined ? "1.0.0" : options.version,
          created_at: options.createdAt ?? now,
        } as never)
        .returning("id")
        .executeTakeFirstOrThrow();
      return (await findById(row.id)) as DeviceRow;
    },
    addImage: async (name, version, compatible) => {
      const row = await db
        .insertInto("firmware_images")
        .values({
          org_id: orgId,
          name,
          version,
          compatible: JSON.stringify(compatible),
          size: 10,
          sha256: "x",
          min_agent_version: null,
          key_id: "k",
          created_at: now,
        })
        .returning("id")
        .executeTakeFirstOrThrow();
      return (await firmware.byId(row.id as number)) as FirmwareRecord;
    },
    dispose: () => test.dispose(),
  };
}

import type { CloudDatabase } from "../../src/storage/cloud-database.js";

/** An organization row (the registry owns the table), for stores filed under one. */
export async function addOrganization(database: CloudDatabase, name: string): Promise<number> {
  const { id } = await database.kysely
    .withTables<{ organizations: { id: number; name: string; created_at: number } }>()
    .insertInto("organizations")
    .values({ name, created_at: 0 } as never)
    .returning("id")
    .executeTakeFirstOrThrow();
  return id;
}

/** A device row (the registry owns the table), for stores that count or remove devices. */
export async function addDevice(
  database: CloudDatabase,
  orgId: number,
  groupId: number,
  uuid: string,
  typeId: number | null = null,
): Promise<number> {
  const { id } = await database.kysely
    .withTables<{
      devices: {
        id: number;
        uuid: string;
        org_id: number;
        group_id: number;
        type_id: number | null;
        created_at: number;
      };
    }>()
    .insertInto("devices")
    .values({ uuid, org_id: orgId, group_id: groupId, type_id: typeId, created_at: 0 } as never)
    .returning("id")
    .executeTakeFirstOrThrow();
  return id;
}

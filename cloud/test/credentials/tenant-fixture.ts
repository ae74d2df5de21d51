import type { CloudDatabase } from "../../src/storage/cloud-database.js";

/**
 * Two organizations and a small group tree, written through `database.kysely` because the
 * registry and groups stores that own these tables are not under test here:
 * org 1 with root group 1 ("/1/") and its children 2 ("/1/2/") and 3 ("/1/3/"); org 2 with root 4 ("/4/").
 */
export async function seedTenants(database: CloudDatabase, now: number): Promise<void> {
  const db = database.kysely.withTables<{
    organizations: { id: number; name: string; created_at: number };
    groups: { id: number; org_id: number; parent_id: number | null; name: string; path: string; created_at: number };
  }>();
  await db
    .insertInto("organizations")
    .values([
      { id: 1, name: "default", created_at: now },
      { id: 2, name: "other", created_at: now },
    ])
    .execute();
  await db
    .insertInto("groups")
    .values([
      { id: 1, org_id: 1, parent_id: null, name: "default", path: "/1/", created_at: now },
      { id: 2, org_id: 1, parent_id: 1, name: "plant-a", path: "/1/2/", created_at: now },
      { id: 3, org_id: 1, parent_id: 1, name: "plant-b", path: "/1/3/", created_at: now },
      { id: 4, org_id: 2, parent_id: null, name: "other", path: "/4/", created_at: now },
    ])
    .execute();
}

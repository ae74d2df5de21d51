import type { Kysely } from "kysely";
import type { GroupMembers } from "../groups/group-tree.js";
import type { CloudDatabase, Executor } from "../storage/cloud-database.js";

/** The columns of `devices` this module reads; the registry owns the table. */
type DevicesTable = {
  uuid: string;
  group_id: number | null;
};

type MemberTables = {
  devices: DevicesTable;
};

/** Bound parameters per statement are limited; an organization's subtree has far fewer groups than this. */
const CHUNK = 500;

/**
 * The devices of groups, for the group tree: counts for its views, and the removal of a deleted
 * subtree's devices. Apart from the registry so that the tree need not take the registry, which takes the tree.
 */
export class GroupDeviceMembers implements GroupMembers {
  private readonly db: Kysely<MemberTables>;

  constructor(database: CloudDatabase) {
    this.db = database.kysely.withTables<MemberTables>();
  }

  async countByGroups(groupIds: readonly number[], executor?: Executor): Promise<Map<number, number>> {
    const db = (executor as Kysely<MemberTables> | undefined) ?? this.db;
    const counts = new Map<number, number>();
    for (const chunk of chunks(groupIds)) {
      const rows = await db
        .selectFrom("devices")
        .select((eb) => ["group_id", eb.fn.countAll<number>().as("n")])
        .where("group_id", "in", chunk)
        .groupBy("group_id")
        .execute();
      for (const r of rows) if (r.group_id !== null) counts.set(r.group_id, Number(r.n));
    }
    return counts;
  }

  /** Deletes the devices of these groups; their other rows go by the foreign keys' ON DELETE CASCADE. */
  async removeInGroups(groupIds: readonly number[], executor: Executor): Promise<string[]> {
    const db = executor as Kysely<MemberTables>;
    const removed: string[] = [];
    for (const chunk of chunks(groupIds)) {
      const rows = await db.deleteFrom("devices").where("group_id", "in", chunk).returning("uuid").execute();
      removed.push(...rows.map((r) => r.uuid));
    }
    return removed;
  }
}

function chunks(ids: readonly number[]): number[][] {
  const out: number[][] = [];
  for (let start = 0; start < ids.length; start += CHUNK) out.push(ids.slice(start, start + CHUNK));
  return out;
}

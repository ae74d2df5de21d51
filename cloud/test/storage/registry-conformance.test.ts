import { type Kysely, sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BACKENDS } from "../../../test/support/test-database.js";
import { type DeviceRegistry, MAX_FAILED_ATTEMPTS } from "../../src/registry/device-registry.js";
import type { Executor } from "../../src/storage/cloud-database.js";
import { codeOf, issued, openRegistry, type RegistryFixture } from "../registry/registry-fixture.js";

const UUID = "7c1d2e3f-0000-4000-8000-00000000abcd";
const OTHER = "7c1d2e3f-0000-4000-8000-00000000beef";
const everywhere = { clause: "1 = 1", params: [] };

/** Every table with a row per device, and how a test adds one (the telemetry value column differs by backend). */
const DEVICE_TABLES = [
  "certificates",
  "enrollment_nonces",
  "telemetry",
  "telemetry_streams",
  "telemetry_seq_gaps",
  "device_events",
  "rejected_messages",
  "device_logs",
  "log_batches",
  "device_state",
  "device_config",
] as const;

async function fillDeviceRows(db: Executor, dialect: string, deviceId: number): Promise<void> {
  await sql`INSERT INTO enrollment_nonces (device_id, nonce, expires_at) VALUES (${deviceId}, 'n1', 1)`.execute(db);
  await (dialect === "postgres"
    ? sql`INSERT INTO telemetry (device_id, ts, name, value_number, kind, unit, stream, seq) VALUES (${deviceId}, 1, 't', 1.5, 0, 'C', 'main', 1)`
    : sql`INSERT INTO telemetry (device_id, ts, name, value, kind, unit, stream, seq) VALUES (${deviceId}, 1, 't', 1.5, 0, 'C', 'main', 1)`
  ).execute(db);
  await sql`INSERT INTO telemetry_streams (device_id, stream, high_seq) VALUES (${deviceId}, 'main', 3)`.execute(db);
  await sql`INSERT INTO telemetry_seq_gaps (device_id, stream, from_seq, to_seq) VALUES (${deviceId}, 'main', 2, 2)`.execute(
    db,
  );
  await sql`INSERT INTO device_events (device_id, ts, code, severity, message) VALUES (${deviceId}, 1, 'DEVICE_ONLINE', 'info', 'connected')`.execute(
    db,
  );
  await sql`INSERT INTO rejected_messages (device_id, ts, topic, code, payload) VALUES (${deviceId}, 1, 't', 'X', ${Buffer.from("x")})`.execute(
    db,
  );
  await sql`INSERT INTO device_logs (device_id, ts, level, msg) VALUES (${deviceId}, 1, 'info', 'hello')`.execute(db);
  await sql`INSERT INTO log_batches (device_id, stream, seq, received_at) VALUES (${deviceId}, 'main', 1, 1)`.execute(
    db,
  );
  await sql`INSERT INTO device_state (device_id, health, updated_at) VALUES (${deviceId}, 'ok', 1)`.execute(db);
  await sql`INSERT INTO device_config (device_id, version, desired_json, updated_at) VALUES (${deviceId}, 1, '{}', 1)`.execute(
    db,
  );
}

async function rowsPerTable(db: Kysely<object>, deviceId: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of DEVICE_TABLES) {
    const { rows } = await sql<{
      n: number;
    }>`SELECT count(*) AS n FROM ${sql.table(table)} WHERE device_id = ${deviceId}`.execute(db);
    counts[table] = Number(rows[0]?.n);
  }
  return counts;
}

describe.each(BACKENDS)("the registry store on $name", ({ server }) => {
  let fixture: RegistryFixture;
  let registry: DeviceRegistry;
  let orgId: number;
  const now = 1_700_000_000_000;

  beforeEach(async () => {
    fixture = await openRegistry({ server, clock: () => now });
    ({ registry, orgId } = fixture);
    await registry.create(orgId, { uuid: UUID }, { groupId: fixture.root.id });
  });
  afterEach(() => fixture.dispose());

  const device = async (uuid = UUID) => (await registry.findByUuid(uuid)) ?? expect.unreachable();

  it("spends an enrollment window once", async () => {
    const seen = await device();
    expect(await registry.spendWindow(UUID, seen, issued("A1"), "key-a")).toBe(0);
    expect(await codeOf(registry.spendWindow(UUID, seen, issued("B2"), "key-b"))).toBe("ENROLL_WINDOW_CLOSED");
    expect((await registry.certificates(orgId, UUID)).items.map((c) => c.serial)).toEqual(["A1"]);
    expect((await registry.get(orgId, UUID)).window.open).toBe(false);
  });

  it(`closes the window after ${MAX_FAILED_ATTEMPTS} wrong proofs fired at once, and counts every one`, async () => {
    const { id } = await device();
    await Promise.all(Array.from({ length: MAX_FAILED_ATTEMPTS - 1 }, () => registry.countWrongProof(id)));
    expect((await registry.get(orgId, UUID)).window).toMatchObject({
      open: true,
      failedAttempts: MAX_FAILED_ATTEMPTS - 1,
    });
    await Promise.all(Array.from({ length: 3 }, () => registry.countWrongProof(id)));
    const after = await device();
    expect(after.window_failed_attempts).toBe(MAX_FAILED_ATTEMPTS + 2);
    expect(after.window_expires_at).toBeNull();
    expect(after.token_hash).toBeNull();
    expect(await codeOf(registry.spendWindow(UUID, await device(), issued("A1"), "key-a"))).toBe(
      "ENROLL_WINDOW_CLOSED",
    );
  });

  it("lets exactly one of two enrollments racing for one token win", async () => {
    const seen = await device();
    const outcomes = await Promise.allSettled([
      registry.spendWindow(UUID, seen, issued("A1"), "key-a"),
      registry.spendWindow(UUID, seen, issued("B2"), "key-b"),
    ]);
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    const refused = outcomes.find((o) => o.status === "rejected");
    expect((refused as PromiseRejectedResult).reason).toMatchObject({ code: "ENROLL_WINDOW_CLOSED" });
    const certificates = (await registry.certificates(orgId, UUID)).items;
    expect(certificates).toHaveLength(1);
    expect(certificates[0]?.current).toBe(true);
  });

  it("deletes every row of a device with it, and nothing of another device", async () => {
    await registry.create(orgId, { uuid: OTHER }, { groupId: fixture.root.id });
    const gone = await device();
    const kept = await device(OTHER);
    await registry.spendWindow(UUID, gone, issued("A1"), "key-a");
    await registry.spendWindow(OTHER, kept, issued("B2"), "key-b");
    for (const { id } of [gone, kept]) await fillDeviceRows(fixture.database.kysely, fixture.database.dialect, id);
    const one = Object.fromEntries(DEVICE_TABLES.map((t) => [t, 1]));
    expect(await rowsPerTable(fixture.database.kysely, gone.id)).toEqual(one);

    const revoked: string[] = [];
    registry.onRevocation((uuid) => revoked.push(uuid));
    await registry.delete(orgId, UUID);

    expect(await rowsPerTable(fixture.database.kysely, gone.id)).toEqual(
      Object.fromEntries(DEVICE_TABLES.map((t) => [t, 0])),
    );
    expect(await registry.findByUuid(UUID)).toBeUndefined();
    expect(await rowsPerTable(fixture.database.kysely, kept.id)).toEqual(one);
    expect(revoked).toEqual([UUID]);
  });

  it("removes a group's devices inside the caller's transaction, and none when it rolls back", async () => {
    const plant = await fixture.groups.create(orgId, fixture.root.id, { name: "plant" });
    await registry.create(orgId, { uuid: OTHER }, { groupId: plant.id });
    const inPlant = await device(OTHER);
    expect(await registry.countByGroups([fixture.root.id, plant.id])).toEqual(
      new Map([
        [fixture.root.id, 1],
        [plant.id, 1],
      ]),
    );
    const failing = fixture.database.kysely.transaction().execute(async (trx) => {
      expect(await registry.removeInGroups([plant.id], trx)).toEqual([OTHER]);
      throw new Error("the caller's next write failed");
    });
    await expect(failing).rejects.toThrow("next write failed");
    expect(await registry.findByUuid(OTHER)).toBeDefined();

    const removed = await fixture.database.kysely
      .transaction()
      .execute((trx) => registry.removeInGroups([plant.id], trx));
    expect(removed).toEqual([OTHER]);
    expect(await registry.uuidsByIds([inPlant.id, (await device()).id])).toEqual(
      new Map([[(await device()).id, UUID]]),
    );
  });

  it("sorts names naturally and walks keyset pages in the same sequence on every backend", async () => {
    const names = ["meter-10", "Meter-9", "meter-1", "meter-009a", "meter-100", "METER-2a", "meter-2b", "meter-1"];
    for (const [i, name] of names.entries()) {
      const uuid = `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
      await registry.create(orgId, { uuid, name, tags: [`t${i % 2}`] }, { groupId: fixture.root.id });
    }
    const walk = async (sort: string, pageSize: number, filters: Record<string, unknown> = {}) => {
      const resolved = await registry.resolveFilters(orgId, { sort, ...filters }, () => true);
      const pages: string[][] = [];
      for await (const page of registry.exportPages(orgId, everywhere, { ...resolved, retired: false }, pageSize))
        pages.push(page.map((r) => `${r.name}|${r.uuid.slice(-2)}`));
      return pages;
    };
    // The device created first has no name; ties (two "meter-1") go by id.
    expect(await walk("name", 3)).toEqual([
      ["|cd", "meter-1|02", "meter-1|07"],
      ["METER-2a|05", "meter-2b|06", "Meter-9|01"],
      ["meter-009a|03", "meter-10|00", "meter-100|04"],
    ]);
    expect((await walk("-name", 4)).flat().slice(0, 3)).toEqual(["meter-100|04", "meter-10|00", "meter-009a|03"]);
    expect(await walk("name", 10, { tag: ["t1"] })).toEqual([
      ["meter-1|07", "METER-2a|05", "Meter-9|01", "meter-009a|03"],
    ]);
    const byOffset = await registry.list(
      orgId,
      everywhere,
      await registry.resolveFilters(orgId, { sort: "name", name: "METER-1" }, () => true),
      { limit: 10, offset: 0 },
    );
    expect(byOffset.items.map((d) => d.name)).toEqual(["meter-1", "meter-1", "meter-10", "meter-100"]);
    expect(byOffset.total).toBe(4);
  });
});

import fs from "node:fs";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCAL_POSTGRES, type ScratchTarget, scratchTarget } from "../../../test/support/test-database.js";
import { dataFiles } from "../../src/config/data-files.js";
import { type CloudDatabase, openCloudDatabase } from "../../src/storage/cloud-database.js";
import { COPY_ORDER } from "../../src/storage/copy-to-postgres.js";
import { MIGRATIONS } from "../../src/storage/database.js";
import { copyOfFixture, runCloudCli } from "./migrate-support.js";

/** What make-data-dir-v15.mjs wrote: every table of that release, none empty. */
const FIXTURE_ROWS: Record<string, number> = {
  organizations: 1,
  groups: 3,
  host_credentials: 1,
  api_credentials: 2,
  device_types: 1,
  devices: 3,
  certificates: 2,
  enrollment_nonces: 1,
  telemetry: 5,
  telemetry_streams: 2,
  telemetry_seq_gaps: 1,
  device_events: 3,
  rejected_messages: 1,
  device_logs: 2,
  log_batches: 1,
  device_state: 1,
  device_config: 1,
  users: 2,
  user_roles: 2,
  sessions: 1,
  firmware_images: 2,
  jobs: 2,
  job_steps: 3,
  rollouts: 1,
  rollout_devices: 2,
};

const T0 = 1_764_000_000_000;

interface Opened {
  database: CloudDatabase;
  close(): Promise<void>;
}

/** The release-15 data dir opened by today's cloud: embedded, migrated forward in place; or moved to PostgreSQL by `migrate`. */
const WAYS: { name: string; open: () => Promise<Opened> }[] = [
  {
    name: "embedded, opened by this release",
    open: async () => {
      const dir = copyOfFixture();
      const database = await openCloudDatabase({ kind: "sqlite", file: dataFiles(dir).database });
      return {
        database,
        close: async () => {
          await database.close();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: "moved to PostgreSQL with migrate",
    open: async () => {
      const dir = copyOfFixture();
      const target: ScratchTarget = await scratchTarget(LOCAL_POSTGRES);
      const run = await runCloudCli("migrate", "--from", dir, "--to", target.url as string);
      if (run.code !== 0) throw new Error(`migrate failed: ${run.stderr}`);
      const database = await openCloudDatabase(target.target);
      return {
        database,
        close: async () => {
          await database.close();
          await target.drop();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

describe.each(WAYS)("the data dir of release 15, $name", ({ open }) => {
  let opened: Opened;
  beforeAll(async () => {
    opened = await open();
  });
  afterAll(async () => {
    await opened?.close();
  });

  it("is at the latest schema version", async () => {
    const { rows } = await sql<{ v: number }>`SELECT max(version) AS v FROM schema_migrations`.execute(
      opened.database.kysely,
    );
    expect(Number(rows[0]?.v)).toBe(Math.max(...MIGRATIONS.map((m) => m.version)));
  });

  it("keeps every row of every table", async () => {
    expect(Object.keys(FIXTURE_ROWS)).toEqual(COPY_ORDER.map((t) => t.name));
    for (const [table, rows] of Object.entries(FIXTURE_ROWS)) {
      const got = await sql<{ n: number }>`SELECT count(*) AS n FROM ${sql.table(table)}`.execute(
        opened.database.kysely,
      );
      expect({ table, rows: Number(got.rows[0]?.n) }).toEqual({ table, rows });
    }
  });

  it("keeps the values: devices, credentials' bytes, readings of each kind, jobs, rollouts, users", async () => {
    const db = opened.database.kysely;
    const device = await sql<Record<string, unknown>>`
      SELECT uuid, name, comment, tags, online, last_seen, window_failed_attempts, token_hash, group_id, type_id,
        firmware_version, health, offline_reason, retired_at, replaced_by
      FROM devices WHERE id = 2`.execute(db);
    expect(device.rows).toEqual([
      {
        uuid: "5d1e9b7a-8c2f-4e3d-a1b0-9f8e7d6c5b4a",
        name: "press-2",
        comment: "spare",
        tags: "[]",
        online: 0,
        last_seen: T0 + 30_000,
        window_failed_attempts: 2,
        token_hash: Buffer.from("token-hash-2"),
        group_id: 2,
        type_id: 1,
        firmware_version: "1.4.1",
        health: "warn",
        offline_reason: "KEEPALIVE_MISSED",
        retired_at: null,
        replaced_by: null,
      },
    ]);
    const secret = await sql<{
      secret_hash: Buffer;
    }>`SELECT secret_hash FROM api_credentials WHERE id = 'cred_admin'`.execute(db);
    expect(secret.rows[0]?.secret_hash).toEqual(Buffer.from([0, 1, 2, 250, 255]));

    const readings =
      opened.database.dialect === "sqlite"
        ? await sql<{ name: string; value: unknown; kind: number; unit: string | null; source: string | null }>`
            SELECT name, value, kind, unit, source FROM telemetry ORDER BY rowid`.execute(db)
        : await sql<{ name: string; value: unknown; kind: number; unit: string | null; source: string | null }>`
            SELECT name, value_text, value_number, kind, unit, source
            FROM telemetry ORDER BY id`
            .execute(db)
            .then(({ rows }) => ({
              rows: (rows as unknown as Record<string, unknown>[]).map(({ value_text, value_number, ...rest }) => ({
                ...rest,
                value: value_text ?? value_number,
              })),
            }));
    expect(readings.rows).toEqual([
      { name: "temperature", value: 21.5, kind: 0, unit: "°C", source: null },
      { name: "pressure", value: 101325, kind: 0, unit: "Pa", source: null },
      { name: "state", value: "running", kind: 1, unit: null, source: "plc-1" },
      { name: "door_open", value: 1, kind: 2, unit: null, source: "plc-1" },
      { name: "door_open", value: 0, kind: 2, unit: null, source: null },
    ]);

    const job = await sql<Record<string, unknown>>`
      SELECT status, step, progress_done, message, rollout_id, checks_json FROM jobs WHERE id = 'job_0002'`.execute(db);
    expect(job.rows).toEqual([
      {
        status: "DOWNLOADING",
        step: "download",
        progress_done: 524288,
        message: "halfway",
        rollout_id: 1,
        checks_json: '[{"name":"cpu","status":"ok"}]',
      },
    ]);
    const rollout = await sql<Record<string, unknown>>`
      SELECT state, success_threshold, failure_threshold, rate_json, group_paths_json FROM rollouts WHERE id = 1`.execute(
      db,
    );
    expect(rollout.rows).toEqual([
      {
        state: "RUNNING",
        success_threshold: 0.9,
        failure_threshold: 0.2,
        rate_json: '{"perHour":10}',
        group_paths_json: '["/1/2/"]',
      },
    ]);
    const users = await sql<Record<string, unknown>>`
      SELECT u.email, u.failed_logins, u.locked_until, r.group_id, r.role
      FROM users u JOIN user_roles r ON r.user_id = u.id ORDER BY u.id`.execute(db);
    expect(users.rows).toEqual([
      { email: "ada@acme.example", failed_logins: 0, locked_until: null, group_id: 1, role: "admin" },
      { email: "bob@acme.example", failed_logins: 3, locked_until: T0 + 60_000, group_id: 2, role: "viewer" },
    ]);
  });
});

import fs from "node:fs";
import path from "node:path";
import { FieldgateError } from "@fieldgate/shared";
import Database from "better-sqlite3";
import { registerNaturalSort } from "./natural-sort.js";
import { POSTGRES_BASELINE } from "./postgres-schema.js";

/**
 * One migration: applied once, in order, inside a transaction. `sql` is its SQLite form;
 * `postgres` its PostgreSQL form, required from POSTGRES_FIRST_VERSION on (cloud-database.ts).
 */
export interface Migration {
  version: number;
  sql: string;
  postgres?: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE organizations (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        uuid_only_enrollment INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE api_credentials (
        id TEXT PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        secret_hash BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
      );
      CREATE TABLE devices (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        name TEXT NOT NULL DEFAULT '',
        location TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        factory_public_key TEXT,
        created_at INTEGER NOT NULL,
        online INTEGER NOT NULL DEFAULT 0,
        last_seen INTEGER,
        telemetry_count INTEGER NOT NULL DEFAULT 0,
        window_expires_at INTEGER,
        window_failed_attempts INTEGER NOT NULL DEFAULT 0,
        token_hash BLOB
      );
      CREATE TABLE certificates (
        serial TEXT PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        issued_at INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        revoked_at INTEGER,
        revoke_reason TEXT,
        pem TEXT NOT NULL
      );
      CREATE INDEX certificates_device ON certificates(device_id, issued_at);
      CREATE TABLE enrollment_nonces (
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        nonce TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (device_id, nonce)
      ) WITHOUT ROWID;
      CREATE TABLE telemetry_batches (
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (device_id, stream, seq)
      ) WITHOUT ROWID;
      CREATE TABLE telemetry (
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        ts INTEGER NOT NULL,
        name TEXT NOT NULL,
        value ANY,
        kind INTEGER NOT NULL,
        unit TEXT,
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX telemetry_device_ts ON telemetry(device_id, ts);
      CREATE TABLE device_events (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        ts INTEGER NOT NULL,
        code TEXT NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        field TEXT,
        topic TEXT
      );
      CREATE INDEX device_events_device ON device_events(device_id, ts);
      CREATE TABLE rejected_messages (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        ts INTEGER NOT NULL,
        topic TEXT NOT NULL,
        code TEXT NOT NULL,
        payload BLOB NOT NULL
      );
      CREATE TABLE device_logs (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        ts INTEGER NOT NULL,
        level TEXT NOT NULL,
        msg TEXT NOT NULL
      );
      CREATE INDEX device_logs_device ON device_logs(device_id, ts);
      CREATE TABLE device_state (
        device_id INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
        health TEXT,
        health_json TEXT,
        state_json TEXT,
        config_reported_json TEXT,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    // Fleet management (issue #3): a group tree per organization, users with role bindings,
    // group-scoped credentials, device types. Groups keep a materialized path ("/1/4/9/") so a
    // subtree is one indexed prefix query.
    sql: `
      CREATE TABLE groups (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        parent_id INTEGER REFERENCES groups(id),
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        timezone TEXT NOT NULL DEFAULT 'UTC',
        path TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
      );
      CREATE UNIQUE INDEX groups_sibling_name ON groups(org_id, coalesce(parent_id, 0), name);
      CREATE INDEX groups_parent ON groups(parent_id);
      INSERT INTO groups (id, org_id, parent_id, name, path, created_at)
        SELECT id, id, NULL, name, '/' || id || '/', created_at FROM organizations;
      -- Root groups reuse the organization's id only at migration time; later ones take fresh ids.
      CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        email TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_login_at INTEGER,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER
      );
      CREATE TABLE user_roles (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        PRIMARY KEY (user_id, group_id)
      ) WITHOUT ROWID;
      CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      );
      ALTER TABLE api_credentials ADD COLUMN group_id INTEGER REFERENCES groups(id);
      UPDATE api_credentials SET group_id = (SELECT g.id FROM groups g WHERE g.org_id = api_credentials.org_id AND g.parent_id IS NULL);
      CREATE TABLE device_types (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        group_id INTEGER NOT NULL REFERENCES groups(id),
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        keepalive_minutes INTEGER,
        firmware_compat TEXT NOT NULL DEFAULT '',
        default_links TEXT,
        health_thresholds TEXT,
        created_at INTEGER NOT NULL,
        UNIQUE (org_id, name)
      );
      ALTER TABLE devices ADD COLUMN group_id INTEGER REFERENCES groups(id);
      ALTER TABLE devices ADD COLUMN type_id INTEGER REFERENCES device_types(id);
      ALTER TABLE devices ADD COLUMN firmware_version TEXT;
      ALTER TABLE devices ADD COLUMN health TEXT;
      ALTER TABLE devices ADD COLUMN keepalive_alerted_at INTEGER;
      UPDATE devices SET group_id = (SELECT g.id FROM groups g WHERE g.org_id = devices.org_id AND g.parent_id IS NULL);
      CREATE INDEX devices_group ON devices(group_id);
      CREATE INDEX devices_type ON devices(type_id);
      CREATE INDEX devices_org_name ON devices(org_id, name);
      CREATE INDEX devices_org_last_seen ON devices(org_id, last_seen);
    `,
  },
  {
    version: 3,
    // Device list filters and sorts (issue #3). No index holds last_seen beyond the one above:
    // every telemetry batch rewrites it, and each such index would be rewritten too.
    sql: `
      CREATE INDEX devices_org_created ON devices(org_id, created_at);
      CREATE INDEX devices_org_health ON devices(org_id, health);
      CREATE INDEX devices_org_firmware ON devices(org_id, firmware_version);
      CREATE INDEX devices_org_name_nocase ON devices(org_id, name COLLATE NOCASE);
      CREATE INDEX devices_org_location ON devices(org_id, location COLLATE NOCASE);
      CREATE INDEX devices_org_online ON devices(org_id, online);
    `,
  },
  {
    version: 4,
    // A replaced device is retired, not deleted: its record and (unless moved) its history stay,
    // its certificates are revoked, and it can no longer enroll.
    sql: `
      ALTER TABLE devices ADD COLUMN retired_at INTEGER;
      ALTER TABLE devices ADD COLUMN replaced_by TEXT;
    `,
  },
  {
    version: 5,
    // Presence with its reason (issue #4): offline keeps the last health; every change is an event.
    sql: `
      ALTER TABLE devices ADD COLUMN presence_changed_at INTEGER;
      ALTER TABLE devices ADD COLUMN offline_reason TEXT;
    `,
  },
  {
    version: 6,
    // Desired config per device (issue #4): the cloud's copy is the truth, re-published to the
    // device on every connect because aedes keeps retained messages in memory only. Log indexes
    // serve the cursor (device, id) and the retention purge (ts).
    sql: `
      CREATE TABLE device_config (
        device_id INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        desired_json TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX device_logs_device_id ON device_logs(device_id, id);
      CREATE INDEX device_logs_ts ON device_logs(ts);
    `,
  },
  {
    version: 7,
    // Firmware images (issue #5): the files live in the firmware store, this row is the index.
    // Rollouts come later; the table exists now so that deleting an image can already refuse one
    // an active rollout uses.
    sql: `
      CREATE TABLE firmware_images (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        compatible TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        min_agent_version TEXT,
        key_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (org_id, name, version)
      );
      CREATE TABLE rollouts (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        firmware_id INTEGER NOT NULL REFERENCES firmware_images(id),
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX rollouts_firmware ON rollouts(firmware_id, state);
    `,
  },
  {
    version: 8,
    // Single-device update jobs (issue #5): the cloud's view of each job, and every status the
    // device reported for it (the job's report). Timestamps are epoch ms.
    sql: `
      CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        -- No foreign key: deleting an image must not fail on (or erase) the jobs that used it.
        firmware_id INTEGER NOT NULL,
        status TEXT NOT NULL,
        step TEXT,
        progress_done INTEGER,
        progress_total INTEGER,
        reason TEXT,
        message TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        timeout_at INTEGER NOT NULL
      );
      CREATE INDEX jobs_device ON jobs(device_id, created_at);
      CREATE TABLE job_steps (
        id INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        ts INTEGER NOT NULL,
        status TEXT NOT NULL,
        step TEXT,
        progress_done INTEGER,
        progress_total INTEGER,
        reason TEXT,
        message TEXT
      );
      CREATE INDEX job_steps_job ON job_steps(job_id, id);
    `,
  },
  {
    version: 9,
    // Phased rollouts (issue #5). Version 7 made a placeholder `rollouts` table that nothing ever
    // wrote, so it is replaced outright. The target set is a snapshot taken at creation, one row
    // per device with its phase and position; jobs point back at their rollout.
    sql: `
      DROP INDEX IF EXISTS rollouts_firmware;
      DROP TABLE IF EXISTS rollouts;
      CREATE TABLE rollouts (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        firmware_id INTEGER NOT NULL REFERENCES firmware_images(id),
        -- The groups of the targeted devices: a right on the rollout is that right on all of them.
        group_paths_json TEXT NOT NULL,
        target_json TEXT NOT NULL,
        phases_json TEXT NOT NULL,
        success_threshold REAL NOT NULL,
        failure_threshold REAL NOT NULL,
        rate_json TEXT,
        window_json TEXT,
        job_timeout_ms INTEGER NOT NULL,
        retries INTEGER NOT NULL,
        auto_rollback INTEGER NOT NULL,
        state TEXT NOT NULL,
        stop_reason TEXT,
        stop_message TEXT,
        current_phase INTEGER NOT NULL,
        last_start_at INTEGER,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX rollouts_firmware ON rollouts(firmware_id, state);
      CREATE INDEX rollouts_state ON rollouts(state);
      CREATE TABLE rollout_devices (
        rollout_id INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        phase INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        job_id TEXT,
        from_version TEXT,
        reason TEXT,
        message TEXT,
        started_at INTEGER,
        finished_at INTEGER,
        rollback_job_id TEXT,
        rollback_state TEXT,
        PRIMARY KEY (rollout_id, device_id)
      );
      CREATE INDEX rollout_devices_order ON rollout_devices(rollout_id, state, position);
      CREATE UNIQUE INDEX rollout_devices_job ON rollout_devices(job_id) WHERE job_id IS NOT NULL;
      ALTER TABLE jobs ADD COLUMN rollout_id INTEGER;
      ALTER TABLE jobs ADD COLUMN rollback INTEGER NOT NULL DEFAULT 0;
      -- Set when a rollout aborts: the device is told to drop the job if it has not begun installing.
      ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
      -- Open jobs by deadline: the timeout sweep reads only these, however many jobs have ended.
      CREATE INDEX jobs_open ON jobs(timeout_at)
        WHERE status NOT IN ('SUCCEEDED', 'FAILED', 'ROLLED_BACK', 'REJECTED', 'CANCELLED');
      CREATE INDEX jobs_firmware ON jobs(firmware_id, status);
    `,
  },
  {
    version: 10,
    // Device links (issue #6): a reading's `source` is the id of the link that produced it (NULL
    // for the agent's own). No index: a source filter runs inside one device's (device_id, ts)
    // range, and every telemetry insert would pay for another index.
    sql: `
      ALTER TABLE telemetry ADD COLUMN source TEXT;
    `,
  },
  {
    version: 11,
    // Durable log buffer on the agent: a log batch may come again after a lost PUBACK or a
    // restart, named by (stream, seq); its key is kept so the lines are stored once. The keys are
    // purged with the log retention (by arrival), hence the index.
    sql: `
      CREATE TABLE log_batches (
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (device_id, stream, seq)
      ) WITHOUT ROWID;
      CREATE INDEX log_batches_received ON log_batches(received_at);
    `,
  },
  {
    version: 12,
    // Telemetry deduplication by sequence instead of one key row per batch: an agent's outbox
    // numbers its batches 1, 2, 3… per stream and sends them in order, so the cloud keeps the
    // highest seq stored per stream, plus the ranges below it never stored (out-of-order
    // arrivals, normally none). A batch is new if its seq is above the high mark or inside a gap.
    // The key row per batch cost a B-tree insert per message: 14% of the unbatched ingest rate.
    sql: `
      CREATE TABLE telemetry_streams (
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        stream TEXT NOT NULL,
        high_seq INTEGER NOT NULL,
        PRIMARY KEY (device_id, stream)
      ) WITHOUT ROWID;
      CREATE TABLE telemetry_seq_gaps (
        device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        stream TEXT NOT NULL,
        from_seq INTEGER NOT NULL,
        to_seq INTEGER NOT NULL,
        PRIMARY KEY (device_id, stream, from_seq)
      ) WITHOUT ROWID;
      INSERT INTO telemetry_streams (device_id, stream, high_seq)
        SELECT device_id, stream, max(seq) FROM telemetry_batches GROUP BY device_id, stream;
      INSERT INTO telemetry_seq_gaps (device_id, stream, from_seq, to_seq)
        SELECT device_id, stream, 1, min(seq) - 1 FROM telemetry_batches
        GROUP BY device_id, stream HAVING min(seq) > 1;
      INSERT INTO telemetry_seq_gaps (device_id, stream, from_seq, to_seq)
        SELECT device_id, stream, seq + 1, next - 1 FROM (
          SELECT device_id, stream, seq,
            lead(seq) OVER (PARTITION BY device_id, stream ORDER BY seq) AS next
          FROM telemetry_batches)
        WHERE next > seq + 1;
      DROP TABLE telemetry_batches;
    `,
  },
  {
    version: 13,
    // The update confirmation gate: the health checks a device reports as holding its CONFIRMING
    // step back (JobStatus.checks, JSON), with each report and the latest on the job.
    sql: `
      ALTER TABLE jobs ADD COLUMN checks_json TEXT;
      ALTER TABLE job_steps ADD COLUMN checks_json TEXT;
    `,
  },
  {
    version: 14,
    // The key each certificate was issued for (SHA-256 of its SubjectPublicKeyInfo, hex), so a
    // device can never be issued a certificate again for a key it already had: after reset-token,
    // a stolen key must stay dead. Older rows keep NULL and are fingerprinted from their PEM.
    sql: `
      ALTER TABLE certificates ADD COLUMN public_key_sha256 TEXT;
      CREATE INDEX certificates_device_key ON certificates(device_id, public_key_sha256);
    `,
  },
  {
    version: 15,
    // Host credentials (credentials/host-credentials.ts): in no organization, holding only the
    // organizations:* rights, for the operator who runs the cloud (`organizations create|list`).
    sql: `
      CREATE TABLE host_credentials (
        id TEXT PRIMARY KEY,
        secret_hash BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
      );
    `,
    postgres: POSTGRES_BASELINE,
  },
];

/** Opens (creating if needed) the cloud database with WAL and applies pending migrations. */
export function openDatabase(file: string, migrations: readonly Migration[] = MIGRATIONS): Database.Database {
  if (file !== ":memory:") fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  // WAL + NORMAL survives process crashes without losing commits; only an OS crash can lose
  // the last transactions, which devices then resend (their outbox keeps rows until PUBACK).
  db.pragma("synchronous = NORMAL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  // When a checkpoint has emptied the WAL, its file is cut back to this size rather than kept at its peak.
  db.pragma("journal_size_limit = 67108864");
  registerNaturalSort(db);
  migrate(db, migrations);
  if (file !== ":memory:") fs.chmodSync(file, 0o600);
  return db;
}

export function migrate(db: Database.Database, migrations: readonly Migration[]): void {
  const versions = migrations.map((m) => m.version);
  if (new Set(versions).size !== versions.length) {
    throw new Error(`duplicate migration versions in ${versions.join(", ")}; give each migration its own number`);
  }
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const applied = new Set(
    (db.prepare("SELECT version FROM schema_migrations").all() as { version: number }[]).map((r) => r.version),
  );
  const newest = Math.max(0, ...applied);
  const known = Math.max(0, ...versions);
  if (newest > known) {
    db.close();
    throw new FieldgateError(
      "DATABASE_UNAVAILABLE",
      `the database is at schema version ${newest}, newer than this fieldgate-cloud knows (${known}); run the newer release, or restore a backup taken before the upgrade`,
      "database",
    );
  }
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)").run(m.version, Date.now());
    })();
  }
}

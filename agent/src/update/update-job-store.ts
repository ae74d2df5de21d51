import type Database from "better-sqlite3";
import { openAgentDatabase, retryWhenFull } from "../storage/agent-database.js";
import { isStorageFull, type StorageWatch, storageFullError } from "../storage/storage-full.js";
import { isUpdateState, type UpdateState } from "./update-states.js";

/** One update job as persisted: enough to resume or roll back after a crash. */
export interface UpdateJobRow {
  jobId: string;
  state: UpdateState;
  /** The signed manifest, as JSON. */
  manifestJson: string;
  imagePath: string | null;
  /** The installed version when the job started (what a rollback returns to). */
  previousVersion: string | null;
  /** The installer's plan (JSON), persisted before the install writes anything. */
  installPlan: string | null;
  /** How often the agent (re)entered a working state; grows with each resume. */
  attempt: number;
  /** Epoch ms after which the job may no longer be IN_PROGRESS. */
  deadline: number;
  /** Epoch ms by which the new version must confirm, set when activation starts; kept across restarts. */
  confirmBy: number | null;
  /** A rollout's auto-rollback job (`JobNotify.rollback`). */
  rollback: boolean;
  /** For a rollback job: the version the last install replaced when the job arrived, the one it may return to. */
  rollbackTo: string | null;
  reason: string | null;
  message: string | null;
  /** Installer output (≤ 8 KiB), for the report. */
  output: string | null;
  /** 0 while a terminal state's effects (commit or rollback) are not yet applied. */
  finalized: number;
  createdAt: number;
  updatedAt: number;
}

export type UpdateJobPatch = Partial<
  Pick<
    UpdateJobRow,
    | "state"
    | "imagePath"
    | "previousVersion"
    | "installPlan"
    | "attempt"
    | "confirmBy"
    | "reason"
    | "message"
    | "output"
    | "finalized"
  >
>;

const COLUMNS: Record<keyof UpdateJobPatch, string> = {
  state: "state",
  imagePath: "image_path",
  previousVersion: "previous_version",
  installPlan: "install_plan",
  attempt: "attempt",
  confirmBy: "confirm_by",
  reason: "reason",
  message: "message",
  output: "output",
  finalized: "finalized",
};

interface DbRow {
  job_id: string;
  state: string;
  manifest_json: string;
  image_path: string | null;
  previous_version: string | null;
  install_plan: string | null;
  attempt: number;
  deadline: number;
  confirm_by: number | null;
  rollback: number | null;
  rollback_to: string | null;
  reason: string | null;
  message: string | null;
  output: string | null;
  finalized: number;
  created_at: number;
  updated_at: number;
}

/**
 * Update jobs in their own table `update_jobs` of the agent database (`<dataDir>/agent.db`), WAL
 * with `synchronous=FULL`: a state is on disk before the side effect it announces starts.
 * A job id is stored once and never deleted, which is the "seen" guard: a job delivered twice is
 * applied once.
 */
export class UpdateJobStore {
  private readonly db: Database.Database;

  constructor(
    readonly path: string,
    private readonly storage?: StorageWatch,
  ) {
    this.db = openAgentDatabase(path);
    // Its own table; the outbox owns user_version of this file, so it is left alone here.
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS update_jobs (
        job_id TEXT PRIMARY KEY, state TEXT NOT NULL, manifest_json TEXT NOT NULL,
        image_path TEXT, previous_version TEXT, install_plan TEXT,
        attempt INTEGER NOT NULL DEFAULT 0, deadline INTEGER NOT NULL,
        reason TEXT, message TEXT, output TEXT, finalized INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
    `);
    // Added with "after reboot" confirmation; a database from before gets the column here.
    const columns = this.db.prepare("PRAGMA table_info(update_jobs)").all() as { name: string }[];
    if (!columns.some((c) => c.name === "confirm_by"))
      this.db.exec("ALTER TABLE update_jobs ADD COLUMN confirm_by INTEGER");
    // Added with rollouts' auto-rollback.
    if (!columns.some((c) => c.name === "rollback")) {
      this.db.exec("ALTER TABLE update_jobs ADD COLUMN rollback INTEGER NOT NULL DEFAULT 0");
      this.db.exec("ALTER TABLE update_jobs ADD COLUMN rollback_to TEXT");
    }
  }

  /** Stores a new job in QUEUED; false when the id was seen before (nothing changes then). */
  insert(job: {
    jobId: string;
    manifestJson: string;
    deadline: number;
    now: number;
    rollback?: boolean;
    rollbackTo?: string | undefined;
  }): boolean {
    const r = this.write(() =>
      this.db
        .prepare(
          `INSERT OR IGNORE INTO update_jobs (job_id, state, manifest_json, deadline, created_at, updated_at,
           rollback, rollback_to)
         VALUES (?, 'QUEUED', ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          job.jobId,
          job.manifestJson,
          job.deadline,
          job.now,
          job.now,
          job.rollback ? 1 : 0,
          job.rollback ? (job.rollbackTo ?? null) : null,
        ),
    );
    return r.changes === 1;
  }

  get(jobId: string): UpdateJobRow | undefined {
    const row = this.db.prepare("SELECT * FROM update_jobs WHERE job_id = ?").get(jobId) as DbRow | undefined;
    return row && toRow(row);
  }

  update(jobId: string, patch: UpdateJobPatch, now: number): UpdateJobRow {
    const keys = Object.keys(patch) as (keyof UpdateJobPatch)[];
    const sets = keys.map((k) => `${COLUMNS[k]} = @${k}`);
    this.write(() =>
      this.db
        .prepare(`UPDATE update_jobs SET ${[...sets, "updated_at = @now"].join(", ")} WHERE job_id = @jobId`)
        .run({ ...patch, now, jobId }),
    );
    const row = this.get(jobId);
    if (!row) throw new Error(`update job ${jobId} is not stored`);
    return row;
  }

  /** Jobs still working or whose end was not applied yet, oldest first: what a boot must look at. */
  unfinished(): UpdateJobRow[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM update_jobs WHERE finalized = 0
           OR state NOT IN ('SUCCEEDED', 'FAILED', 'ROLLED_BACK', 'REJECTED') ORDER BY created_at, rowid`,
      )
      .all() as DbRow[];
    return rows.map(toRow);
  }

  close(): void {
    this.db.close();
  }

  /** A state that cannot be stored must not be acted on: a full disk is STORAGE_FULL, not a crash. */
  private write<T>(run: () => T): T {
    try {
      return retryWhenFull(this.db, this.storage, "update jobs", run);
    } catch (err) {
      throw isStorageFull(err) ? storageFullError("an update job's state") : err;
    }
  }
}

function toRow(r: DbRow): UpdateJobRow {
  if (!isUpdateState(r.state)) throw new Error(`update job ${r.job_id} has an unknown state ${r.state}`);
  return {
    jobId: r.job_id,
    state: r.state,
    manifestJson: r.manifest_json,
    imagePath: r.image_path,
    previousVersion: r.previous_version,
    installPlan: r.install_plan,
    attempt: r.attempt,
    deadline: r.deadline,
    confirmBy: r.confirm_by ?? null,
    rollback: r.rollback === 1,
    rollbackTo: r.rollback_to ?? null,
    reason: r.reason,
    message: r.message,
    output: r.output,
    finalized: r.finalized,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

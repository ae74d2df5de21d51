import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FieldgateError, type JobNotify, type JobStatus } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { DeviceTypes } from "../../src/device-types/device-types.js";
import { EmbeddedFirmwareLookup } from "../../src/firmware/embedded-firmware-lookup.js";
import { FirmwareKeys } from "../../src/firmware/firmware-keys.js";
import type { FirmwareImageUser } from "../../src/firmware/firmware-record.js";
import { FirmwareStore } from "../../src/firmware/firmware-store.js";
import { EmbeddedGroupLookup } from "../../src/groups/embedded-group-lookup.js";
import { GroupTree } from "../../src/groups/group-tree.js";
import { DeviceJobs } from "../../src/jobs/device-jobs.js";
import { DeviceRegistry, type DeviceRow } from "../../src/registry/device-registry.js";
import { GroupDeviceMembers } from "../../src/registry/group-members.js";

/** The cloud's side of single-device jobs, over a real SQLite file and a hand-driven clock. */
describe("DeviceJobs", () => {
  let dir: string;
  let testDb: TestDatabase;
  let db: Database.Database;
  let now: number;
  let registry: DeviceRegistry;
  let firmware: FirmwareStore;
  let jobs: DeviceJobs;
  let orgId: number;
  let device: DeviceRow;
  let other: DeviceRow;
  const sent: JobNotify[] = [];
  const finished: string[] = [];

  beforeEach(async () => {
    now = Date.parse("2026-02-01T08:00:00Z");
    sent.length = 0;
    finished.length = 0;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "fieldgate-jobs-"));
    // The jobs are still synchronous on the embedded handle; the firmware store is async on the same database.
    testDb = await openTestDatabase(null);
    db = testDb.database.embedded as Database.Database;
    const groups = new EmbeddedGroupLookup(db, () => now);
    registry = new DeviceRegistry(db, groups, 600_000, () => now);
    orgId = registry.ensureDefaultOrganization();
    const root = groups.root(orgId);
    const typeId = Number(
      db
        .prepare(
          "INSERT INTO device_types (org_id, group_id, name, firmware_compat, created_at) VALUES (?, ?, 'gw', 'gw-a', ?)",
        )
        .run(orgId, root.id, now).lastInsertRowid,
    );
    db.prepare(
      `INSERT INTO firmware_images (org_id, name, version, compatible, size, sha256, key_id, created_at)
       VALUES (?, 'fw', '2.0.0', '["gw-a"]', 10, 'x', 'k', ?)`,
    ).run(orgId, now);
    for (const uuid of ["aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002"]) {
      registry.create(orgId, { uuid }, { groupId: root.id, typeId });
    }
    device = registry.row(orgId, "aaaaaaaa-0000-4000-8000-000000000001");
    other = registry.row(orgId, "aaaaaaaa-0000-4000-8000-000000000002");
    // The jobs tell the store which images they still need, as in the cloud.
    const imageUsers: FirmwareImageUser[] = [];
    const { database } = testDb;
    firmware = new FirmwareStore(
      database,
      dir,
      1 << 20,
      new FirmwareKeys(path.join(dir, "fw.key")),
      new DeviceTypes(database, new GroupTree(database, new GroupDeviceMembers(database)), registry),
      Date.now,
      undefined,
      imageUsers,
    );
    jobs = new DeviceJobs({
      db,
      firmware: new EmbeddedFirmwareLookup(db),
      timeoutMs: 60 * 60_000,
      clock: () => now,
      notify: (_uuid, message) => sent.push(message),
      onFinished: (jobId) => finished.push(jobId),
    });
    imageUsers.push(jobs);
  });

  afterEach(async () => {
    await testDb.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const status = (s: string, extra: Partial<JobStatus> = {}): JobStatus =>
    ({ v: 1, ts: now, status: s, step: s, ...extra }) as JobStatus;

  it("sends a new job at once and again on every connect until it ends", () => {
    const job = jobs.create(device, "fw@2.0.0");
    expect(sent).toEqual([
      { v: 1, jobId: job.id, firmware: { name: "fw", version: "2.0.0" }, firmwareCompat: "gw-a", timeoutS: 3600 },
    ]);
    now += 10 * 60_000;
    jobs.resend(device.id); // the device was offline and is back
    expect(sent).toHaveLength(2);
    expect(sent[1]?.timeoutS).toBe(3000); // the time left, not a fresh hour
    jobs.report(device.id, job.id, status("DOWNLOADING"));
    jobs.resend(device.id);
    expect(sent).toHaveLength(3);
    jobs.report(device.id, job.id, status("SUCCEEDED"));
    jobs.resend(device.id);
    expect(sent).toHaveLength(3);
    expect(finished).toEqual([job.id]);
    // The device now runs the job's version.
    expect(registry.row(orgId, device.uuid).firmware_version).toBe("2.0.0");
  });

  it("keeps the report, and a late report never reopens an ended job", () => {
    const job = jobs.create(device, "fw@2.0.0");
    jobs.report(device.id, job.id, status("FAILED", { reason: "INSTALL_FAILED", message: "exit 1" }));
    jobs.report(device.id, job.id, status("DOWNLOADING"));
    const shown = jobs.get(device, job.id);
    expect(shown).toMatchObject({ status: "FAILED", reason: "INSTALL_FAILED", message: "exit 1" });
    expect(shown.steps?.map((s) => s.status)).toEqual(["FAILED", "DOWNLOADING"]);
    expect(finished).toEqual([job.id]);
  });

  it("stores the checks that hold CONFIRMING back with the step and on the job, until a report without them", () => {
    const job = jobs.create(device, "fw@2.0.0");
    const plc = { name: "command.plc-program", status: "critical" as const, message: "PLC program stopped" };
    const waiting = {
      step: "CONFIRMING",
      progress: { done: 6, total: 6 },
      message: 'waiting on health: check "command.plc-program" critical: PLC program stopped',
    };
    jobs.report(device.id, job.id, status("IN_PROGRESS", { step: "CONFIRMING", progress: { done: 6, total: 6 } }));
    jobs.report(device.id, job.id, status("IN_PROGRESS", { ...waiting, checks: [plc] }));
    expect(jobs.get(device, job.id)).toMatchObject({ status: "IN_PROGRESS", step: "CONFIRMING", checks: [plc] });
    expect(jobs.list(device)[0]?.checks).toEqual([plc]);
    jobs.report(
      device.id,
      job.id,
      status("ROLLED_BACK", {
        step: undefined,
        reason: "HEALTH_NOT_OK",
        message: 'check "command.plc-program" critical: PLC program stopped (5m after activation)',
      }),
    );
    const ended = jobs.get(device, job.id);
    expect(ended).toMatchObject({ status: "ROLLED_BACK", reason: "HEALTH_NOT_OK", checks: null });
    expect(ended.message).toContain('check "command.plc-program" critical');
    // The report keeps what each step said.
    expect(ended.steps?.map((s) => s.checks)).toEqual([null, [plc], null]);
    // Migration 13 adds the columns to a database from before the gate.
    const columns = (table: string) =>
      (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
    expect(columns("jobs")).toContain("checks_json");
    expect(columns("job_steps")).toContain("checks_json");
  });

  it("refuses a status for another device's job (the caller records an event)", () => {
    const job = jobs.create(device, "fw@2.0.0");
    expect(jobs.report(other.id, job.id, status("SUCCEEDED"))).toBe(false);
    expect(jobs.report(device.id, "job-unknown", status("SUCCEEDED"))).toBe(false);
    expect(jobs.get(device, job.id).status).toBe("CREATED");
    expect(() => jobs.get(other, job.id)).toThrow(FieldgateError);
  });

  it("times out a job past its deadline, on connect and by the periodic sweep", () => {
    const first = jobs.create(device, "fw@2.0.0");
    const second = jobs.create(other, "fw@2.0.0", { timeoutMs: 5 * 60_000 });
    now += 5 * 60_000;
    expect(jobs.expireOverdue()).toBe(1);
    expect(jobs.get(other, second.id)).toMatchObject({ status: "FAILED", reason: "JOB_TIMEOUT" });
    now += 55 * 60_000;
    const before = sent.length;
    jobs.resend(device.id);
    expect(sent).toHaveLength(before); // not sent: timed out instead
    expect(jobs.get(device, first.id)).toMatchObject({ status: "FAILED", reason: "JOB_TIMEOUT" });
    expect(finished.sort()).toEqual([first.id, second.id].sort());
  });

  it("cancels: an untaken job ends at once, a taken one is told to stop, and both hear it again on connect", () => {
    const untaken = jobs.create(device, "fw@2.0.0");
    const taken = jobs.create(other, "fw@2.0.0");
    jobs.report(other.id, taken.id, status("DOWNLOADING"));
    sent.length = 0;
    expect(jobs.cancel([untaken.id, taken.id])).toEqual([untaken.id]);
    expect(jobs.get(device, untaken.id).status).toBe("CANCELLED");
    expect(jobs.get(other, taken.id).status).toBe("DOWNLOADING");
    expect(sent.map((m) => [m.jobId, m.cancel])).toEqual([
      [untaken.id, true],
      [taken.id, true],
    ]);
    // On reconnect: the cancel again, never the job itself.
    sent.length = 0;
    jobs.resend(device.id);
    jobs.resend(other.id);
    expect(sent.map((m) => [m.jobId, m.cancel])).toEqual([
      [untaken.id, true],
      [taken.id, true],
    ]);
    // The device stopped before installing: the job ends, and no more cancels are sent for it.
    jobs.report(other.id, taken.id, status("FAILED", { reason: "JOB_CANCELLED" }));
    sent.length = 0;
    jobs.resend(other.id);
    expect(sent).toEqual([]);
  });

  it("refuses to delete an image a job has not finished with", async () => {
    const job = jobs.create(device, "fw@2.0.0");
    const expectInUse = async () => {
      try {
        await firmware.delete(orgId, "fw", "2.0.0");
      } catch (err) {
        return (err as FieldgateError).code;
      }
      return "deleted";
    };
    expect(await expectInUse()).toBe("FIRMWARE_IN_USE");
    jobs.report(device.id, job.id, status("SUCCEEDED"));
    expect(await expectInUse()).toBe("deleted");
  });

  it("refuses a bad firmware reference and an image for another type, naming the field", () => {
    for (const ref of ["fw", "@2.0.0", "fw@"]) {
      expect(() => jobs.create(device, ref)).toThrow(expect.objectContaining({ field: "firmware" }));
    }
    db.prepare(
      `INSERT INTO firmware_images (org_id, name, version, compatible, size, sha256, key_id, created_at)
       VALUES (?, 'fw', '3.0.0', '["gw-b"]', 10, 'x', 'k', ?)`,
    ).run(orgId, now);
    expect(() => jobs.create(device, "fw@3.0.0")).toThrow(
      expect.objectContaining({ code: "FIRMWARE_INCOMPATIBLE", field: "firmware" }),
    );
  });
});

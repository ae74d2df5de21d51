import { FieldgateError, type JobNotify, type JobStatus } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeviceJobs } from "../../src/jobs/device-jobs.js";
import type { DeviceRow } from "../../src/registry/device-registry.js";
import { type JobFleet, openJobFleet } from "./job-fleet.js";

/** The cloud's side of single-device jobs, on the suite's backend with a hand-driven clock. */
describe("DeviceJobs", async () => {
  let fleet: JobFleet;
  let now: number;
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
    fleet = await openJobFleet(undefined, now);
    orgId = fleet.orgId;
    await fleet.addImage("fw", "2.0.0", ["gw-a"]);
    device = await fleet.addDevice({ uuid: "aaaaaaaa-0000-4000-8000-000000000001", version: null });
    other = await fleet.addDevice({ uuid: "aaaaaaaa-0000-4000-8000-000000000002", version: null });
    jobs = new DeviceJobs({
      database: fleet.database,
      devices: fleet.devices,
      types: fleet.types,
      firmware: fleet.firmware,
      timeoutMs: 60 * 60_000,
      clock: () => now,
      notify: (_uuid, message) => sent.push(message),
      onFinished: (jobId) => {
        finished.push(jobId);
      },
    });
    // The jobs tell the store which images they still need, as in the cloud.
    fleet.firmware.users.push(jobs);
  });

  afterEach(async () => {
    await fleet.dispose();
  });

  const status = (s: string, extra: Partial<JobStatus> = {}): JobStatus =>
    ({ v: 1, ts: now, status: s, step: s, ...extra }) as JobStatus;

  it("sends a new job at once and again on every connect until it ends", async () => {
    const job = await jobs.create(device, "fw@2.0.0");
    expect(sent).toEqual([
      { v: 1, jobId: job.id, firmware: { name: "fw", version: "2.0.0" }, firmwareCompat: "gw-a", timeoutS: 3600 },
    ]);
    now += 10 * 60_000;
    await jobs.resend(device.id); // the device was offline and is back
    expect(sent).toHaveLength(2);
    expect(sent[1]?.timeoutS).toBe(3000); // the time left, not a fresh hour
    await jobs.report(device.id, job.id, status("DOWNLOADING"));
    await jobs.resend(device.id);
    expect(sent).toHaveLength(3);
    await jobs.report(device.id, job.id, status("SUCCEEDED"));
    await jobs.resend(device.id);
    expect(sent).toHaveLength(3);
    expect(finished).toEqual([job.id]);
    // The device now runs the job's version.
    expect((await fleet.devices.findById(device.id))?.firmware_version).toBe("2.0.0");
  });

  it("keeps the report, and a late report never reopens an ended job", async () => {
    const job = await jobs.create(device, "fw@2.0.0");
    await jobs.report(device.id, job.id, status("FAILED", { reason: "INSTALL_FAILED", message: "exit 1" }));
    await jobs.report(device.id, job.id, status("DOWNLOADING"));
    const shown = await jobs.get(device, job.id);
    expect(shown).toMatchObject({ status: "FAILED", reason: "INSTALL_FAILED", message: "exit 1" });
    expect(shown.steps?.map((s) => s.status)).toEqual(["FAILED", "DOWNLOADING"]);
    expect(finished).toEqual([job.id]);
  });

  it("stores the checks that hold CONFIRMING back with the step and on the job, until a report without them", async () => {
    const job = await jobs.create(device, "fw@2.0.0");
    const plc = { name: "command.plc-program", status: "critical" as const, message: "PLC program stopped" };
    const waiting = {
      step: "CONFIRMING",
      progress: { done: 6, total: 6 },
      message: 'waiting on health: check "command.plc-program" critical: PLC program stopped',
    };
    await jobs.report(
      device.id,
      job.id,
      status("IN_PROGRESS", { step: "CONFIRMING", progress: { done: 6, total: 6 } }),
    );
    await jobs.report(device.id, job.id, status("IN_PROGRESS", { ...waiting, checks: [plc] }));
    expect(await jobs.get(device, job.id)).toMatchObject({ status: "IN_PROGRESS", step: "CONFIRMING", checks: [plc] });
    expect((await jobs.list(device))[0]?.checks).toEqual([plc]);
    await jobs.report(
      device.id,
      job.id,
      status("ROLLED_BACK", {
        step: undefined,
        reason: "HEALTH_NOT_OK",
        message: 'check "command.plc-program" critical: PLC program stopped (5m after activation)',
      }),
    );
    const ended = await jobs.get(device, job.id);
    expect(ended).toMatchObject({ status: "ROLLED_BACK", reason: "HEALTH_NOT_OK", checks: null });
    expect(ended.message).toContain('check "command.plc-program" critical');
    // The report keeps what each step said.
    expect(ended.steps?.map((s) => s.checks)).toEqual([null, [plc], null]);
    // Migration 13 adds the columns to a database from before the gate (a missing column fails the query).
    const db = fleet.database.kysely.withTables<{
      jobs: { checks_json: string | null };
      job_steps: { checks_json: string | null };
    }>();
    expect(await db.selectFrom("jobs").select("checks_json").execute()).toHaveLength(1);
    expect(await db.selectFrom("job_steps").select("checks_json").execute()).toHaveLength(3);
  });

  it("refuses a status for another device's job (the caller records an event)", async () => {
    const job = await jobs.create(device, "fw@2.0.0");
    expect(await jobs.report(other.id, job.id, status("SUCCEEDED"))).toBe(false);
    expect(await jobs.report(device.id, "job-unknown", status("SUCCEEDED"))).toBe(false);
    expect((await jobs.get(device, job.id)).status).toBe("CREATED");
    await expect(jobs.get(other, job.id)).rejects.toThrow(FieldgateError);
  });

  it("times out a job past its deadline, on connect and by the periodic sweep", async () => {
    const first = await jobs.create(device, "fw@2.0.0");
    const second = await jobs.create(other, "fw@2.0.0", { timeoutMs: 5 * 60_000 });
    now += 5 * 60_000;
    expect(await jobs.expireOverdue()).toBe(1);
    expect(await jobs.get(other, second.id)).toMatchObject({ status: "FAILED", reason: "JOB_TIMEOUT" });
    now += 55 * 60_000;
    const before = sent.length;
    await jobs.resend(device.id);
    expect(sent).toHaveLength(before); // not sent: timed out instead
    expect(await jobs.get(device, first.id)).toMatchObject({ status: "FAILED", reason: "JOB_TIMEOUT" });
    expect(finished.sort()).toEqual([first.id, second.id].sort());
  });

  it("cancels: an untaken job ends at once, a taken one is told to stop, and both hear it again on connect", async () => {
    const untaken = await jobs.create(device, "fw@2.0.0");
    const taken = await jobs.create(other, "fw@2.0.0");
    await jobs.report(other.id, taken.id, status("DOWNLOADING"));
    sent.length = 0;
    expect(await jobs.cancel([untaken.id, taken.id])).toEqual([untaken.id]);
    expect((await jobs.get(device, untaken.id)).status).toBe("CANCELLED");
    expect((await jobs.get(other, taken.id)).status).toBe("DOWNLOADING");
    expect(sent.map((m) => [m.jobId, m.cancel])).toEqual([
      [untaken.id, true],
      [taken.id, true],
    ]);
    // On reconnect: the cancel again, never the job itself.
    sent.length = 0;
    await jobs.resend(device.id);
    await jobs.resend(other.id);
    expect(sent.map((m) => [m.jobId, m.cancel])).toEqual([
      [untaken.id, true],
      [taken.id, true],
    ]);
    // The device stopped before installing: the job ends, and no more cancels are sent for it.
    await jobs.report(other.id, taken.id, status("FAILED", { reason: "JOB_CANCELLED" }));
    sent.length = 0;
    await jobs.resend(other.id);
    expect(sent).toEqual([]);
  });

  it("refuses to delete an image a job has not finished with", async () => {
    const job = await jobs.create(device, "fw@2.0.0");
    const expectInUse = async () => {
      try {
        await fleet.firmware.delete(orgId, "fw", "2.0.0");
      } catch (err) {
        return (err as FieldgateError).code;
      }
      return "deleted";
    };
    expect(await expectInUse()).toBe("FIRMWARE_IN_USE");
    await jobs.report(device.id, job.id, status("SUCCEEDED"));
    expect(await expectInUse()).toBe("deleted");
  });

  it("refuses a bad firmware reference and an image for another type, naming the field", async () => {
    for (const ref of ["fw", "@2.0.0", "fw@"]) {
      await expect(jobs.create(device, ref)).rejects.toThrow(expect.objectContaining({ field: "firmware" }));
    }
    await fleet.addImage("fw", "3.0.0", ["gw-b"]);
    await expect(jobs.create(device, "fw@3.0.0")).rejects.toThrow(
      expect.objectContaining({ code: "FIRMWARE_INCOMPATIBLE", field: "firmware" }),
    );
  });
});

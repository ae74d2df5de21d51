import { type CreateRolloutBody, type JobNotify, type JobStatus, SchemaValidator } from "@fieldgate/shared";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BACKENDS } from "../../../test/support/test-database.js";
import { AccessPolicy, type Principal } from "../../src/access/access-policy.js";
import { DeviceJobs } from "../../src/jobs/device-jobs.js";
import type { DeviceRow } from "../../src/registry/device-registry.js";
import { Rollouts } from "../../src/rollouts/rollouts.js";
import { type JobFleet, openJobFleet } from "../jobs/job-fleet.js";

/**
 * The jobs and rollouts stores behave alike on SQLite and PostgreSQL: a job's life and its step
 * history, the timeout sweep, a rollout's phases and thresholds, its rate cap under two ticks at
 * once, and the failing devices it lists. PostgreSQL runs the concurrent cases truly in parallel
 * (a pool of connections); SQLite's single connection serializes them.
 */
describe.each(BACKENDS)("jobs and rollouts on $name", ({ server }) => {
  let fleet: JobFleet;
  let now: number;
  let jobs: DeviceJobs;
  let rollouts: Rollouts;
  let admin: Principal;
  const sent: { uuid: string; message: JobNotify }[] = [];
  const finished: string[] = [];

  const rolloutsOn = (jobService: DeviceJobs) =>
    new Rollouts({
      database: fleet.database,
      registry: fleet.devices,
      types: fleet.types,
      policy: new AccessPolicy(),
      firmware: fleet.firmware,
      jobs: jobService,
      validator: new SchemaValidator(),
      logger: pino({ level: "silent" }),
      defaultJobTimeoutMs: 3_600_000,
      clock: () => now,
    });

  beforeEach(async () => {
    now = Date.parse("2026-03-01T10:00:00Z");
    sent.length = 0;
    finished.length = 0;
    fleet = await openJobFleet(server, now);
    for (const version of ["1.0.0", "2.0.0"]) await fleet.addImage("fw", version, ["gw-a"]);
    admin = {
      kind: "credential",
      id: "admin",
      orgId: fleet.orgId,
      grants: [{ groupId: fleet.root.id, path: fleet.root.path, role: "admin" }],
    };
    let rolloutsRef: Rollouts | undefined;
    jobs = new DeviceJobs({
      database: fleet.database,
      devices: fleet.devices,
      types: fleet.types,
      firmware: fleet.firmware,
      timeoutMs: 3_600_000,
      clock: () => now,
      notify: (uuid, message) => sent.push({ uuid, message }),
      onFinished: async (jobId, rolloutId) => {
        finished.push(jobId);
        await rolloutsRef?.jobFinished(jobId, rolloutId);
      },
    });
    rollouts = rolloutsOn(jobs);
    rolloutsRef = rollouts;
  });

  afterEach(async () => {
    await fleet.dispose();
  });

  const status = (s: string, extra: Partial<JobStatus> = {}): JobStatus =>
    ({ v: 1, ts: now, status: s, step: s, ...extra }) as JobStatus;

  const makeDevices = async (n: number): Promise<DeviceRow[]> => {
    const devices: DeviceRow[] = [];
    for (let i = 0; i < n; i++) {
      devices.push(await fleet.addDevice({ createdAt: now }));
      now += 1;
    }
    return devices;
  };

  const create = (devices: readonly DeviceRow[], body: Partial<CreateRolloutBody> = {}) =>
    rollouts.create(admin, { firmware: "fw@2.0.0", target: { devices: devices.map((d) => d.uuid) }, ...body });

  /** The device answers the newest job sent to it. */
  const answer = async (device: DeviceRow, s: string, reason?: string) => {
    const job = [...sent].reverse().find((m) => m.uuid === device.uuid);
    if (!job) throw new Error(`no job was sent to ${device.uuid}`);
    return jobs.report(
      device.id,
      job.message.jobId,
      status(s, reason ? { reason, message: `${reason} on purpose` } : {}),
    );
  };

  it("keeps a job's steps in arrival order, ends it once, and records the version it installed", async () => {
    const [device] = (await makeDevices(1)) as [DeviceRow];
    const job = await jobs.create(device, "fw@2.0.0");
    const image = await fleet.firmware.get(fleet.orgId, "fw", "2.0.0");
    expect(sent.map((m) => m.message.jobId)).toEqual([job.id]);
    expect(await jobs.usesImage(image.id)).toBe(true);
    await jobs.report(device.id, job.id, status("DOWNLOADING", { progress: { done: 1, total: 4 } }));
    now += 1000;
    await jobs.report(device.id, job.id, status("INSTALLING"));
    await jobs.report(device.id, job.id, status("SUCCEEDED"));
    // A late report is kept in the history but never reopens the job.
    await jobs.report(device.id, job.id, status("DOWNLOADING"));
    const shown = await jobs.get(device, job.id);
    expect(shown).toMatchObject({ status: "SUCCEEDED", firmware: { name: "fw", version: "2.0.0" } });
    expect(shown.steps?.map((s) => s.status)).toEqual(["DOWNLOADING", "INSTALLING", "SUCCEEDED", "DOWNLOADING"]);
    expect(shown.steps?.[0]?.progress).toEqual({ done: 1, total: 4 });
    expect(finished).toEqual([job.id]);
    expect((await fleet.devices.findById(device.id))?.firmware_version).toBe("2.0.0");
    expect((await jobs.list(device)).map((j) => j.id)).toEqual([job.id]);
    expect(await jobs.usesImage(image.id)).toBe(false);
  });

  it("ends a job once when two final reports race", async () => {
    const [device] = (await makeDevices(1)) as [DeviceRow];
    const job = await jobs.create(device, "fw@2.0.0");
    await Promise.all([
      jobs.report(device.id, job.id, status("SUCCEEDED")),
      jobs.report(device.id, job.id, status("FAILED", { reason: "INSTALL_FAILED" })),
    ]);
    const shown = await jobs.get(device, job.id);
    expect(["SUCCEEDED", "FAILED"]).toContain(shown.status);
    expect(shown.steps).toHaveLength(2);
    expect(finished).toEqual([job.id]);
  });

  it("sweeps overdue jobs once, and a report racing the sweep still ends the job only once", async () => {
    const [a, b, c] = (await makeDevices(3)) as [DeviceRow, DeviceRow, DeviceRow];
    const short = await jobs.create(a, "fw@2.0.0", { timeoutMs: 60_000 });
    const racing = await jobs.create(b, "fw@2.0.0", { timeoutMs: 60_000 });
    const long = await jobs.create(c, "fw@2.0.0");
    now += 60_000;
    const [swept] = await Promise.all([jobs.expireOverdue(), jobs.report(b.id, racing.id, status("SUCCEEDED"))]);
    expect(swept === 1 || swept === 2).toBe(true);
    expect(await jobs.get(a, short.id)).toMatchObject({ status: "FAILED", reason: "JOB_TIMEOUT" });
    expect(["SUCCEEDED", "FAILED"]).toContain((await jobs.get(b, racing.id)).status);
    expect((await jobs.get(c, long.id)).status).toBe("CREATED");
    expect(finished.sort()).toEqual([short.id, racing.id].sort());
    // A second sweep finds nothing more; the long job ends on its device's next connect after its deadline.
    expect(await jobs.expireOverdue()).toBe(0);
    now += 3_600_000;
    const before = sent.length;
    await jobs.resend(c.id);
    expect(sent).toHaveLength(before);
    expect(await jobs.get(c, long.id)).toMatchObject({ status: "FAILED", reason: "JOB_TIMEOUT" });
  });

  it("goes phase by phase, holds below the success threshold, and aborts at the failure threshold", async () => {
    const devices = await makeDevices(6);
    const r = await create(devices, { phases: "2,6", successThreshold: "100%", failureThreshold: "60%" });
    expect(r.phases.map((p) => p.size)).toEqual([2, 4]);
    expect(sent.map((m) => m.uuid)).toEqual(devices.slice(0, 2).map((d) => d.uuid));
    await answer(devices[0] as DeviceRow, "SUCCEEDED");
    await answer(devices[1] as DeviceRow, "FAILED", "INSTALL_FAILED");
    expect(await rollouts.show(fleet.orgId, r.id)).toMatchObject({
      state: "paused",
      stopReason: "SUCCESS_THRESHOLD_NOT_MET",
      currentPhase: 0,
    });
    expect(await rollouts.tick()).toBe(0);
    const resumed = await rollouts.resume(fleet.orgId, r.id);
    expect(resumed).toMatchObject({ state: "running", currentPhase: 1 });
    expect(sent).toHaveLength(6);
    await answer(devices[2] as DeviceRow, "FAILED", "INSTALL_FAILED");
    await answer(devices[3] as DeviceRow, "FAILED", "INSTALL_FAILED");
    // 3 of 6 started failed: below 60 %. The fourth failure crosses it.
    expect((await rollouts.show(fleet.orgId, r.id)).state).toBe("running");
    await answer(devices[4] as DeviceRow, "FAILED", "INSTALL_FAILED");
    const aborted = await rollouts.show(fleet.orgId, r.id);
    expect(aborted).toMatchObject({ state: "aborted", stopReason: "FAILURE_THRESHOLD" });
    expect(aborted.counts).toMatchObject({ succeeded: 1, failed: 4, cancelled: 1, inProgress: 0 });
    expect(sent.filter((m) => m.message.cancel === true).map((m) => m.uuid)).toEqual([devices[5]?.uuid]);
  });

  it("holds the rate cap with two ticks at once", async () => {
    const devices = await makeDevices(20);
    const r = await create(devices, { rate: "5/min" });
    expect(sent).toHaveLength(1); // the first slot, at creation
    now += 60_000;
    // A second scheduler over the same database, as a second tick (or a second process) would be.
    const other = rolloutsOn(jobs);
    const [first, second] = await Promise.all([rollouts.tick(), other.tick()]);
    expect(first + second).toBe(5);
    const listed = await rollouts.devices(fleet.orgId, r.id);
    expect(listed.items.filter((d) => d.state === "active")).toHaveLength(6);
    // One job per device: no device was started twice.
    expect(new Set(sent.map((m) => m.uuid)).size).toBe(sent.length);
    // Within the same minute, nothing more starts however many ticks run.
    now += 1000;
    expect(await Promise.all([rollouts.tick(), other.tick()])).toEqual([0, 0]);
    expect(sent).toHaveLength(6);
  });

  it("lists the failing devices in target order, with their attempts and rollbacks", async () => {
    const devices = await makeDevices(4);
    const r = await create(devices, { retries: 1, failureThreshold: "100%", autoRollback: true });
    const [d0, d1, d2] = devices as [DeviceRow, DeviceRow, DeviceRow];
    // A failed device is retried at once (no rate); it fails for good when its retries are spent.
    await answer(d2, "FAILED", "INSTALL_FAILED");
    expect(sent.filter((m) => m.uuid === d2.uuid)).toHaveLength(2);
    expect((await rollouts.show(fleet.orgId, r.id)).failing).toEqual([]);
    await answer(d2, "FAILED", "INSTALL_FAILED");
    await answer(d1, "FAILED", "DOWNLOAD_FAILED");
    await answer(d1, "FAILED", "DOWNLOAD_FAILED");
    await answer(d0, "SUCCEEDED");
    let shown = await rollouts.show(fleet.orgId, r.id);
    expect(shown.failing).toEqual([
      {
        device: d1.uuid,
        phase: 0,
        status: "failed",
        reason: "DOWNLOAD_FAILED",
        message: "DOWNLOAD_FAILED on purpose",
        attempts: 2,
        rollback: null,
      },
      {
        device: d2.uuid,
        phase: 0,
        status: "failed",
        reason: "INSTALL_FAILED",
        message: "INSTALL_FAILED on purpose",
        attempts: 2,
        rollback: null,
      },
    ]);
    await rollouts.abort(fleet.orgId, r.id);
    shown = await rollouts.show(fleet.orgId, r.id);
    // The updated device is sent back to the version it had, and listed with its rollback.
    expect(shown.failing?.map((f) => [f.device, f.status, f.rollback])).toEqual([
      [d0.uuid, "succeeded", "active"],
      [d1.uuid, "failed", null],
      [d2.uuid, "failed", null],
    ]);
    expect(sent.at(-1)).toMatchObject({ uuid: d0.uuid, message: { rollback: true, firmware: { version: "1.0.0" } } });
    await answer(d0, "SUCCEEDED");
    expect((await rollouts.show(fleet.orgId, r.id)).failing?.[0]).toMatchObject({
      device: d0.uuid,
      rollback: "succeeded",
    });
  });
});

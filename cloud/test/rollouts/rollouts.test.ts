import { type CreateRolloutBody, FieldgateError, type JobNotify, SchemaValidator } from "@fieldgate/shared";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AccessPolicy, type Principal } from "../../src/access/access-policy.js";
import { GroupTree } from "../../src/groups/group-tree.js";
import { DeviceJobs } from "../../src/jobs/device-jobs.js";
import { DeviceRegistry } from "../../src/registry/device-registry.js";
import { GroupDeviceMembers } from "../../src/registry/group-members.js";
import { Rollouts } from "../../src/rollouts/rollouts.js";
import { type JobFleet, openJobFleet } from "../jobs/job-fleet.js";

/** The rollout engine on the suite's backend, with a hand-driven clock and devices played by the test. */
describe("Rollouts", async () => {
  let fleet: JobFleet;
  let now: number;
  let jobs: DeviceJobs;
  let rollouts: Rollouts;
  let orgId: number;
  let admin: Principal;
  const sent: { uuid: string; message: JobNotify; at: number }[] = [];
  /** Device ids by uuid, as the test made them. */
  const ids = new Map<string, number>();

  beforeEach(async () => {
    now = Date.parse("2026-01-15T12:00:00Z");
    sent.length = 0;
    ids.clear();
    fleet = await openJobFleet(undefined, now);
    orgId = fleet.orgId;
    admin = {
      kind: "credential",
      id: "admin",
      orgId,
      grants: [{ groupId: fleet.root.id, path: fleet.root.path, role: "admin" }],
    };
    for (const version of ["1.0.0", "2.0.0"]) await fleet.addImage("fw", version, ["gw-a"]);
    let rolloutsRef: Rollouts | undefined;
    jobs = new DeviceJobs({
      database: fleet.database,
      devices: fleet.devices,
      types: fleet.types,
      firmware: fleet.firmware,
      timeoutMs: 3_600_000,
      clock: () => now,
      notify: (uuid, message) => sent.push({ uuid, message, at: now }),
      onFinished: (jobId, rolloutId) => rolloutsRef?.jobFinished(jobId, rolloutId),
    });
    rollouts = new Rollouts({
      database: fleet.database,
      registry: fleet.devices,
      types: fleet.types,
      policy: new AccessPolicy(),
      firmware: fleet.firmware,
      jobs,
      validator: new SchemaValidator(),
      logger: pino({ level: "silent" }),
      defaultJobTimeoutMs: 3_600_000,
      clock: () => now,
    });
    rolloutsRef = rollouts;
    // Who the firmware store asks before a delete, as the cloud wires it.
    fleet.firmware.users.push(jobs, rollouts);
  });

  afterEach(async () => {
    await fleet.dispose();
  });

  const makeDevices = async (n: number, opts: { typeId?: number | null; version?: string | null } = {}) => {
    const uuids: string[] = [];
    for (let i = 0; i < n; i++) {
      const device = await fleet.addDevice({ ...opts, createdAt: now });
      ids.set(device.uuid, device.id);
      uuids.push(device.uuid);
      now += 1; // distinct creation times keep the target order stable
    }
    return uuids;
  };

  const deviceId = (uuid: string) => ids.get(uuid) ?? 0;

  /** The device's jobs as the API lists them, and the id of the first one sent to it. */
  const jobsOf = async (uuid: string) => {
    const device = await fleet.devices.findById(deviceId(uuid));
    return device ? jobs.list(device) : [];
  };
  const firstJob = (uuid: string) => sent.find((s) => s.uuid === uuid)?.message.jobId;

  /** The device answers its open job (the newest one sent to it). */
  const finish = async (uuid: string, status: string, reason?: string) => {
    const job = [...sent].reverse().find((s) => s.uuid === uuid);
    if (!job) throw new Error(`no job was sent to ${uuid}`);
    await jobs.report(deviceId(uuid), job.message.jobId, {
      v: 1,
      ts: now,
      status,
      step: status,
      ...(reason && { reason, message: `${reason} on purpose` }),
    } as never);
  };

  const create = (body: Partial<CreateRolloutBody> & Pick<CreateRolloutBody, "target">, who = admin) =>
    rollouts.create(who, { firmware: "fw@2.0.0", ...body });

  const errorOf = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      if (err instanceof FieldgateError) return { code: err.code, field: err.field };
      throw err;
    }
    throw new Error("expected an error");
  };

  it("holds its image while it runs; deleting the image then drops its finished rollouts with it, or nothing", async () => {
    const devices = await makeDevices(2);
    const r = await create({ target: { devices } });
    const { firmware } = fleet;
    expect((await errorOf(() => firmware.delete(orgId, "fw", "2.0.0"))).code).toBe("FIRMWARE_IN_USE");
    await rollouts.abort(orgId, r.id);
    const members = async () => (await rollouts.devices(orgId, r.id)).total;
    // A delete that fails after the rollouts were dropped keeps them, and the image.
    firmware.users.push({
      usesImage: async () => false,
      releaseImage: async () => {
        throw new Error("the disk failed");
      },
    });
    await expect(firmware.delete(orgId, "fw", "2.0.0")).rejects.toThrow("the disk failed");
    expect((await rollouts.show(orgId, r.id)).state).toBe("aborted");
    expect(await members()).toBe(2);
    expect(await firmware.find(orgId, "fw", "2.0.0")).toBeDefined();
    firmware.users.pop();
    await firmware.delete(orgId, "fw", "2.0.0");
    expect((await errorOf(() => rollouts.show(orgId, r.id))).code).toBe("ROLLOUT_NOT_FOUND");
    expect(await firmware.find(orgId, "fw", "2.0.0")).toBeUndefined();
  });

  it("goes phase by phase, each phase starting only when the one before met the success threshold", async () => {
    const devices = await makeDevices(20);
    const r = await create({ target: { devices }, phases: "10%,50%,100%", successThreshold: "100%" });
    expect(r.phases.map((p) => p.size)).toEqual([2, 8, 10]);
    expect(sent.map((s) => s.uuid)).toEqual(devices.slice(0, 2));
    await finish(devices[0] ?? "", "SUCCEEDED");
    expect(sent).toHaveLength(2);
    await finish(devices[1] ?? "", "SUCCEEDED");
    expect(sent.map((s) => s.uuid)).toEqual(devices.slice(0, 10));
    for (const d of devices.slice(2, 10)) await finish(d, "SUCCEEDED");
    for (const d of devices.slice(10)) await finish(d, "SUCCEEDED");
    const done = await rollouts.show(orgId, r.id);
    expect(done.state).toBe("completed");
    expect(done.counts).toMatchObject({ total: 20, succeeded: 20, failed: 0, pending: 0, inProgress: 0 });
    expect(sent.every((s) => s.message.firmware.version === "2.0.0" && s.message.rollback === undefined)).toBe(true);
  });

  it("lists its devices in target order with their phase, state and current job's status and step", async () => {
    const devices = await makeDevices(3);
    const r = await create({ target: { devices }, phases: "1,3" });
    await jobs.report(deviceId(devices[0] ?? ""), sent[0]?.message.jobId ?? "", {
      v: 1,
      ts: now,
      status: "IN_PROGRESS",
      step: "DOWNLOADING",
      progress: { done: 5, total: 10 },
    } as never);
    const listed = await rollouts.devices(orgId, r.id);
    expect(listed.total).toBe(3);
    expect(listed.items.map((d) => [d.device, d.phase, d.state])).toEqual([
      [devices[0], 0, "active"],
      [devices[1], 1, "pending"],
      [devices[2], 1, "pending"],
    ]);
    expect(listed.items[0]).toMatchObject({
      fromVersion: "1.0.0",
      job: { id: sent[0]?.message.jobId, status: "IN_PROGRESS", step: "DOWNLOADING", progress: { done: 5, total: 10 } },
    });
    expect(listed.items[1]?.job).toBeNull();
    await finish(devices[0] ?? "", "SUCCEEDED");
    expect((await rollouts.devices(orgId, r.id)).items[0]).toMatchObject({
      state: "succeeded",
      job: { status: "SUCCEEDED" },
    });
    expect((await errorOf(() => rollouts.devices(orgId, r.id + 100))).code).toBe("ROLLOUT_NOT_FOUND");
  });

  it("holds a phase below the success threshold until an operator resumes or aborts it", async () => {
    const devices = await makeDevices(10);
    const r = await create({ target: { devices }, phases: "20%,100%", successThreshold: "100%" });
    await finish(devices[0] ?? "", "SUCCEEDED");
    await finish(devices[1] ?? "", "ROLLED_BACK", "HEALTH_NOT_OK");
    const held = await rollouts.show(orgId, r.id);
    expect(held).toMatchObject({ state: "paused", stopReason: "SUCCESS_THRESHOLD_NOT_MET", currentPhase: 0 });
    expect(held.failing).toEqual([
      expect.objectContaining({ device: devices[1], status: "failed", reason: "HEALTH_NOT_OK", attempts: 1 }),
    ]);
    await rollouts.tick();
    expect(sent).toHaveLength(2);
    const resumed = await rollouts.resume(orgId, r.id);
    expect(resumed).toMatchObject({ state: "running", currentPhase: 1 });
    expect(sent).toHaveLength(10);
    expect((await errorOf(() => rollouts.resume(orgId, r.id))).code).toBe("ROLLOUT_STATE");
  });

  it("aborts at the failure threshold, cancels installs not taken, and rolls the updated devices back", async () => {
    const devices = await makeDevices(10);
    const r = await create({
      target: { devices },
      phases: "20%,100%",
      successThreshold: "50%",
      failureThreshold: "30%",
      autoRollback: true,
    });
    await finish(devices[0] ?? "", "SUCCEEDED");
    await finish(devices[1] ?? "", "SUCCEEDED");
    expect(sent).toHaveLength(10);
    // Two devices take their jobs (report a step) before the abort: they are told to stop, not cancelled outright.
    for (const i of [8, 9]) {
      await jobs.report(deviceId(devices[i] ?? ""), sent[i]?.message.jobId ?? "", {
        v: 1,
        ts: now,
        status: "DOWNLOADING",
        step: "DOWNLOADING",
      } as never);
    }
    await finish(devices[2] ?? "", "SUCCEEDED");
    await finish(devices[3] ?? "", "FAILED", "INSTALL_FAILED");
    await finish(devices[4] ?? "", "FAILED", "INSTALL_FAILED");
    expect((await rollouts.show(orgId, r.id)).state).toBe("running"); // 2 of 10 started = 20 %
    await finish(devices[5] ?? "", "ROLLED_BACK", "HEALTH_NOT_OK"); // 3 of 10 = 30 %
    const aborted = await rollouts.show(orgId, r.id);
    expect(aborted).toMatchObject({ state: "aborted", stopReason: "FAILURE_THRESHOLD" });
    expect(aborted.counts).toMatchObject({ succeeded: 3, failed: 3, cancelled: 2, inProgress: 2 });
    const statuses = await Promise.all(
      devices.map(async (d) => (await jobsOf(d)).find((j) => j.id === firstJob(d))?.status),
    );
    expect(statuses.filter((s) => s === "CANCELLED")).toHaveLength(2);
    const cancels = sent.filter((s) => s.message.cancel === true).map((s) => s.uuid);
    expect(cancels.sort()).toEqual(devices.slice(6, 10).sort());
    // One of them was still downloading: it stops, and counts as cancelled, not failed.
    await finish(devices[8] ?? "", "FAILED", "JOB_CANCELLED");
    expect((await rollouts.show(orgId, r.id)).counts).toMatchObject({ failed: 3, cancelled: 3, inProgress: 1 });
    const rollbacks = sent.filter((s) => s.message.rollback === true);
    expect(rollbacks.map((s) => s.uuid).sort()).toEqual(devices.slice(0, 3).sort());
    expect(rollbacks.every((s) => s.message.firmware.version === "1.0.0")).toBe(true);
    for (const d of devices.slice(0, 3)) await finish(d, "SUCCEEDED");
    expect((await rollouts.show(orgId, r.id)).counts.rolledBack).toBe(3);
    // The device that had taken its job finishes after the abort: it is sent back too.
    await finish(devices[9] ?? "", "SUCCEEDED");
    expect(sent.at(-1)).toMatchObject({
      uuid: devices[9],
      message: { rollback: true, firmware: { version: "1.0.0" } },
    });
    await finish(devices[9] ?? "", "SUCCEEDED");
    expect((await rollouts.show(orgId, r.id)).counts.rolledBack).toBe(4);
    const versions = await Promise.all(
      devices.map(async (d) => (await fleet.devices.findById(deviceId(d)))?.firmware_version),
    );
    expect(new Set(versions)).toEqual(new Set(["1.0.0"]));
    // Nothing new starts after the abort, whatever the ticks do.
    const before = sent.length;
    now += 60_000;
    await rollouts.tick();
    expect(sent).toHaveLength(before);
  });

  it("keeps the rate: no interval of the unit ever holds more starts than configured", async () => {
    const devices = await makeDevices(30);
    await create({ target: { devices }, rate: "3/s" });
    for (let i = 0; i < 200; i++) {
      now += 50;
      await rollouts.tick();
    }
    const starts = sent.map((s) => s.at);
    expect(starts.length).toBeGreaterThanOrEqual(25);
    for (const t of starts) expect(starts.filter((u) => u >= t && u < t + 1000).length).toBeLessThanOrEqual(3);
  });

  it("starts installs only inside the maintenance window", async () => {
    const devices = await makeDevices(3);
    now = Date.parse("2026-01-15T12:00:00Z");
    const r = await create({ target: { devices }, maintenanceWindow: "0 2 * * *, 1h, UTC" });
    expect(sent).toHaveLength(0);
    expect(await rollouts.show(orgId, r.id)).toMatchObject({
      waitingFor: "maintenance-window",
      nextWindowAt: "2026-01-16T02:00:00.000Z",
    });
    now = Date.parse("2026-01-16T02:10:00Z");
    await rollouts.tick();
    expect(sent).toHaveLength(3);
  });

  it("retries a failed device with a new job, and counts it failed once the retries are spent", async () => {
    const [device = ""] = await makeDevices(1);
    const r = await create({ target: { devices: [device] }, retries: 1 });
    await finish(device, "FAILED", "INSTALL_FAILED");
    await rollouts.tick();
    expect(sent).toHaveLength(2);
    expect(sent[1]?.message.jobId).not.toBe(sent[0]?.message.jobId);
    await finish(device, "FAILED", "INSTALL_FAILED");
    expect(await rollouts.show(orgId, r.id)).toMatchObject({
      state: "paused",
      stopReason: "SUCCESS_THRESHOLD_NOT_MET",
    });
    expect((await rollouts.show(orgId, r.id)).failing?.[0]).toMatchObject({ attempts: 2, reason: "INSTALL_FAILED" });
  });

  it("times out a job whose device never answers", async () => {
    const [device = ""] = await makeDevices(1);
    const r = await create({ target: { devices: [device] }, timeout: "10m", failureThreshold: "50%" });
    now += 10 * 60_000;
    await rollouts.tick();
    const shown = await rollouts.show(orgId, r.id);
    expect(shown).toMatchObject({ state: "aborted", stopReason: "FAILURE_THRESHOLD" });
    expect(shown.failing?.[0]).toMatchObject({ reason: "JOB_TIMEOUT" });
  });

  it("skips devices already on the version or of another type, and counts them for neither side", async () => {
    const current = await makeDevices(2, { version: "2.0.0" });
    const old = await makeDevices(2);
    const [typeless = ""] = await makeDevices(1, { typeId: null });
    const r = await create({ target: { devices: [...current, ...old, typeless] } });
    expect(r.counts).toMatchObject({ total: 5, skipped: 3, inProgress: 2 });
    for (const d of old) await finish(d, "SUCCEEDED");
    expect((await rollouts.show(orgId, r.id)).state).toBe("completed");
  });

  it("refuses bad targets and settings with the field named", async () => {
    const devices = await makeDevices(1);
    expect(await errorOf(() => create({ target: { devices, tag: "x" } }))).toEqual({
      code: "VALIDATION_FAILED",
      field: "target.tag",
    });
    expect(await errorOf(() => create({ target: {} }))).toEqual({ code: "VALIDATION_FAILED", field: "target" });
    expect(await errorOf(() => create({ target: { query: "limit=5" } }))).toEqual({
      code: "VALIDATION_FAILED",
      field: "target.query.limit",
    });
    expect((await errorOf(() => create({ target: { query: "online=maybe" } }))).field).toMatch(/^target\.query/);
    expect(await errorOf(() => create({ target: { devices }, timeout: "soon" }))).toEqual({
      code: "VALIDATION_FAILED",
      field: "timeout",
    });
    expect((await errorOf(() => create({ target: { devices }, firmware: "fw@9.9.9" }))).code).toBe(
      "FIRMWARE_NOT_FOUND",
    );
    expect((await errorOf(() => rollouts.show(orgId, 999))).code).toBe("ROLLOUT_NOT_FOUND");
  });
});

/**
 * Target selection goes through the registry's device query, which is still on the embedded
 * database on this branch: these run on SQLite (issue #14 moves them onto the suite's backend).
 */
describe("Rollouts' targets, resolved by the registry", () => {
  let fleet: JobFleet;
  let rollouts: Rollouts;
  let groups: GroupTree;
  let registry: DeviceRegistry;
  let orgId: number;
  let admin: Principal;
  const now = Date.parse("2026-01-15T12:00:00Z");

  beforeEach(async () => {
    fleet = await openJobFleet(null, now);
    orgId = fleet.orgId;
    groups = new GroupTree(fleet.database, new GroupDeviceMembers(fleet.database), () => now);
    registry = new DeviceRegistry(fleet.database, groups, 600_000, () => now);
    admin = {
      kind: "credential",
      id: "admin",
      orgId,
      grants: [{ groupId: fleet.root.id, path: fleet.root.path, role: "admin" }],
    };
    await fleet.addImage("fw", "2.0.0", ["gw-a"]);
    const jobs = new DeviceJobs({
      database: fleet.database,
      devices: fleet.devices,
      types: fleet.types,
      firmware: fleet.firmware,
      timeoutMs: 3_600_000,
      clock: () => now,
      notify: () => {},
    });
    rollouts = new Rollouts({
      database: fleet.database,
      registry,
      types: fleet.types,
      policy: new AccessPolicy(),
      firmware: fleet.firmware,
      jobs,
      validator: new SchemaValidator(),
      logger: pino({ level: "silent" }),
      defaultJobTimeoutMs: 3_600_000,
      clock: () => now,
    });
  });

  afterEach(async () => {
    await fleet.dispose();
  });

  const makeDevices = async (n: number, opts: { group: number; tags?: string[] }) => {
    const uuids: string[] = [];
    for (let i = 0; i < n; i++) {
      const uuid = crypto.randomUUID();
      await registry.create(orgId, { uuid, tags: opts.tags }, { groupId: opts.group, typeId: fleet.typeId });
      uuids.push(uuid);
    }
    return uuids;
  };

  const create = (body: Partial<CreateRolloutBody> & Pick<CreateRolloutBody, "target">, who = admin) =>
    rollouts.create(who, { firmware: "fw@2.0.0", ...body });

  const errorOf = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      if (err instanceof FieldgateError) return { code: err.code, field: err.field };
      throw err;
    }
    throw new Error("expected an error");
  };

  it("selects by tag, group with sub-groups, and device-list query, within the caller's scope", async () => {
    const root = await groups.root(orgId);
    const plantA = await groups.create(orgId, root.id, { name: "plant-a" });
    const lineA = await groups.create(orgId, plantA.id, { name: "line-1" });
    const plantB = await groups.create(orgId, root.id, { name: "plant-b" });
    const inA = await makeDevices(2, { group: plantA.id, tags: ["canary"] });
    const inLine = await makeDevices(1, { group: lineA.id });
    const inB = await makeDevices(2, { group: plantB.id, tags: ["canary"] });
    const aManager: Principal = {
      kind: "credential",
      id: "a",
      orgId,
      grants: [{ groupId: plantA.id, path: plantA.path, role: "firmware-manager" }],
    };
    expect((await create({ target: { tag: "canary" } })).counts.total).toBe(4);
    const own = await create({ target: { tag: "canary" } }, aManager);
    expect(own.counts.total).toBe(2);
    const plant = await create({ target: { group: plantA.id } });
    expect(plant.counts.total).toBe(3);
    expect((await create({ target: { query: "tag=canary&group=plant-b" } })).counts.total).toBe(2);
    // Only rollouts whose every device is in plant-a are the plant-a manager's to see.
    expect((await rollouts.list(aManager)).map((r) => r.id)).toEqual([plant.id, own.id]);
    expect(await errorOf(() => create({ target: { devices: [inB[0] ?? ""] } }, aManager))).toEqual({
      code: "DEVICE_NOT_FOUND",
      field: "target.devices[0]",
    });
    expect(inA.length + inLine.length + inB.length).toBe(5);
    expect((await errorOf(() => create({ target: { tag: "nobody-has-it" } }))).code).toBe("ROLLOUT_NO_DEVICES");
  });
});

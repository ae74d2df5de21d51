import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type CreateRolloutBody, FieldgateError, type JobNotify, SchemaValidator } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDatabase } from "../../../test/support/test-database.js";
import { AccessPolicy, type Principal } from "../../src/access/access-policy.js";
import { DeviceTypes } from "../../src/device-types/device-types.js";
import { EmbeddedFirmwareLookup } from "../../src/firmware/embedded-firmware-lookup.js";
import { FirmwareKeys } from "../../src/firmware/firmware-keys.js";
import type { FirmwareImageUser } from "../../src/firmware/firmware-record.js";
import { FirmwareStore } from "../../src/firmware/firmware-store.js";
import { EmbeddedGroupLookup } from "../../src/groups/embedded-group-lookup.js";
import { GroupTree } from "../../src/groups/group-tree.js";
import { DeviceJobs } from "../../src/jobs/device-jobs.js";
import { DeviceRegistry } from "../../src/registry/device-registry.js";
import { GroupDeviceMembers } from "../../src/registry/group-members.js";
import { Rollouts } from "../../src/rollouts/rollouts.js";

/** The rollout engine over a real SQLite file, with a hand-driven clock and devices played by the test. */
describe("Rollouts", () => {
  let dir: string;
  let testDb: TestDatabase;
  let db: Database.Database;
  let now: number;
  let registry: DeviceRegistry;
  let groups: EmbeddedGroupLookup;
  let jobs: DeviceJobs;
  let rollouts: Rollouts;
  let firmware: FirmwareStore;
  /** Who the firmware store asks before a delete, as the cloud wires it. */
  let imageUsers: FirmwareImageUser[];
  let orgId: number;
  let admin: Principal;
  let typeId: number;
  const sent: { uuid: string; message: JobNotify; at: number }[] = [];

  beforeEach(async () => {
    now = Date.parse("2026-01-15T12:00:00Z");
    sent.length = 0;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "fieldgate-rollouts-"));
    // Rollouts and jobs are still synchronous on the embedded handle; the firmware store is async on the same database.
    testDb = await openTestDatabase(null);
    db = testDb.database.embedded as Database.Database;
    groups = new EmbeddedGroupLookup(db, () => now);
    registry = new DeviceRegistry(db, groups, 600_000, () => now);
    orgId = registry.ensureDefaultOrganization();
    const root = groups.root(orgId);
    admin = { kind: "credential", id: "admin", orgId, grants: [{ groupId: root.id, path: root.path, role: "admin" }] };
    typeId = Number(
      db
        .prepare(
          "INSERT INTO device_types (org_id, group_id, name, firmware_compat, created_at) VALUES (?, ?, 'gw', 'gw-a', ?)",
        )
        .run(orgId, root.id, now).lastInsertRowid,
    );
    for (const version of ["1.0.0", "2.0.0"]) {
      db.prepare(
        `INSERT INTO firmware_images (org_id, name, version, compatible, size, sha256, key_id, created_at)
         VALUES (?, 'fw', ?, '["gw-a"]', 10, 'x', 'k', ?)`,
      ).run(orgId, version, now);
    }
    imageUsers = [];
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
    const images = new EmbeddedFirmwareLookup(db);
    let rolloutsRef: Rollouts | undefined;
    jobs = new DeviceJobs({
      db,
      firmware: images,
      timeoutMs: 3_600_000,
      clock: () => now,
      notify: (uuid, message) => sent.push({ uuid, message, at: now }),
      onFinished: (jobId, rolloutId) => rolloutsRef?.jobFinished(jobId, rolloutId),
    });
    rollouts = new Rollouts({
      db,
      registry,
      policy: new AccessPolicy(),
      firmware: images,
      jobs,
      validator: new SchemaValidator(),
      logger: pino({ level: "silent" }),
      defaultJobTimeoutMs: 3_600_000,
      clock: () => now,
    });
    rolloutsRef = rollouts;
    imageUsers.push(jobs, rollouts);
  });

  afterEach(async () => {
    await testDb.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const makeDevices = (n: number, opts: { group?: number; tags?: string[]; version?: string | null } = {}) =>
    Array.from({ length: n }, () => {
      const uuid = crypto.randomUUID();
      registry.create(orgId, { uuid, tags: opts.tags }, { groupId: opts.group ?? groups.root(orgId).id, typeId });
      db.prepare("UPDATE devices SET firmware_version = ? WHERE uuid = ?").run(
        opts.version === undefined ? "1.0.0" : opts.version,
        uuid,
      );
      now += 1; // distinct creation times keep the target order stable
      return uuid;
    });

  const deviceId = (uuid: string) =>
    (db.prepare("SELECT id FROM devices WHERE uuid = ?").get(uuid) as { id: number }).id;

  /** The device answers its open job (the newest one sent to it). */
  const finish = (uuid: string, status: string, reason?: string) => {
    const job = [...sent].reverse().find((s) => s.uuid === uuid);
    if (!job) throw new Error(`no job was sent to ${uuid}`);
    jobs.report(deviceId(uuid), job.message.jobId, {
      v: 1,
      ts: now,
      status,
      step: status,
      ...(reason && { reason, message: `${reason} on purpose` }),
    } as never);
  };

  const create = (body: Partial<CreateRolloutBody> & Pick<CreateRolloutBody, "target">, who = admin) =>
    rollouts.create(who, { firmware: "fw@2.0.0", ...body });

  const errorOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      if (err instanceof FieldgateError) return { code: err.code, field: err.field };
      throw err;
    }
    throw new Error("expected an error");
  };

  it("holds its image while it runs; deleting the image then drops its finished rollouts with it, or nothing", async () => {
    const devices = makeDevices(2);
    const r = create({ target: { devices } });
    await expect(firmware.delete(orgId, "fw", "2.0.0")).rejects.toMatchObject({ code: "FIRMWARE_IN_USE" });
    rollouts.abort(orgId, r.id);
    const members = () =>
      (db.prepare("SELECT count(*) AS n FROM rollout_devices WHERE rollout_id = ?").get(r.id) as { n: number }).n;
    // A delete that fails after the rollouts were dropped keeps them, and the image.
    imageUsers.push({
      usesImage: () => false,
      releaseImage: () => {
        throw new Error("the disk failed");
      },
    });
    await expect(firmware.delete(orgId, "fw", "2.0.0")).rejects.toThrow("the disk failed");
    expect(rollouts.show(orgId, r.id).state).toBe("aborted");
    expect(members()).toBe(2);
    expect(await firmware.find(orgId, "fw", "2.0.0")).toBeDefined();
    imageUsers.pop();
    await firmware.delete(orgId, "fw", "2.0.0");
    expect(errorOf(() => rollouts.show(orgId, r.id)).code).toBe("ROLLOUT_NOT_FOUND");
    expect(members()).toBe(0);
    expect(await firmware.find(orgId, "fw", "2.0.0")).toBeUndefined();
  });

  it("goes phase by phase, each phase starting only when the one before met the success threshold", () => {
    const devices = makeDevices(20);
    const r = create({ target: { devices }, phases: "10%,50%,100%", successThreshold: "100%" });
    expect(r.phases.map((p) => p.size)).toEqual([2, 8, 10]);
    expect(sent.map((s) => s.uuid)).toEqual(devices.slice(0, 2));
    finish(devices[0] ?? "", "SUCCEEDED");
    expect(sent).toHaveLength(2);
    finish(devices[1] ?? "", "SUCCEEDED");
    expect(sent.map((s) => s.uuid)).toEqual(devices.slice(0, 10));
    for (const d of devices.slice(2, 10)) finish(d, "SUCCEEDED");
    for (const d of devices.slice(10)) finish(d, "SUCCEEDED");
    const done = rollouts.show(orgId, r.id);
    expect(done.state).toBe("completed");
    expect(done.counts).toMatchObject({ total: 20, succeeded: 20, failed: 0, pending: 0, inProgress: 0 });
    expect(sent.every((s) => s.message.firmware.version === "2.0.0" && s.message.rollback === undefined)).toBe(true);
  });

  it("lists its devices in target order with their phase, state and current job's status and step", () => {
    const devices = makeDevices(3);
    const r = create({ target: { devices }, phases: "1,3" });
    jobs.report(deviceId(devices[0] ?? ""), sent[0]?.message.jobId ?? "", {
      v: 1,
      ts: now,
      status: "IN_PROGRESS",
      step: "DOWNLOADING",
      progress: { done: 5, total: 10 },
    } as never);
    const listed = rollouts.devices(orgId, r.id);
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
    finish(devices[0] ?? "", "SUCCEEDED");
    expect(rollouts.devices(orgId, r.id).items[0]).toMatchObject({ state: "succeeded", job: { status: "SUCCEEDED" } });
    expect(errorOf(() => rollouts.devices(orgId, r.id + 100)).code).toBe("ROLLOUT_NOT_FOUND");
  });

  it("holds a phase below the success threshold until an operator resumes or aborts it", () => {
    const devices = makeDevices(10);
    const r = create({ target: { devices }, phases: "20%,100%", successThreshold: "100%" });
    finish(devices[0] ?? "", "SUCCEEDED");
    finish(devices[1] ?? "", "ROLLED_BACK", "HEALTH_NOT_OK");
    const held = rollouts.show(orgId, r.id);
    expect(held).toMatchObject({ state: "paused", stopReason: "SUCCESS_THRESHOLD_NOT_MET", currentPhase: 0 });
    expect(held.failing).toEqual([
      expect.objectContaining({ device: devices[1], status: "failed", reason: "HEALTH_NOT_OK", attempts: 1 }),
    ]);
    rollouts.tick();
    expect(sent).toHaveLength(2);
    const resumed = rollouts.resume(orgId, r.id);
    expect(resumed).toMatchObject({ state: "running", currentPhase: 1 });
    expect(sent).toHaveLength(10);
    expect(errorOf(() => rollouts.resume(orgId, r.id)).code).toBe("ROLLOUT_STATE");
  });

  it("aborts at the failure threshold, cancels installs not taken, and rolls the updated devices back", () => {
    const devices = makeDevices(10);
    const r = create({
      target: { devices },
      phases: "20%,100%",
      successThreshold: "50%",
      failureThreshold: "30%",
      autoRollback: true,
    });
    finish(devices[0] ?? "", "SUCCEEDED");
    finish(devices[1] ?? "", "SUCCEEDED");
    expect(sent).toHaveLength(10);
    // Two devices take their jobs (report a step) before the abort: they are told to stop, not cancelled outright.
    for (const i of [8, 9]) {
      jobs.report(deviceId(devices[i] ?? ""), sent[i]?.message.jobId ?? "", {
        v: 1,
        ts: now,
        status: "DOWNLOADING",
        step: "DOWNLOADING",
      } as never);
    }
    finish(devices[2] ?? "", "SUCCEEDED");
    finish(devices[3] ?? "", "FAILED", "INSTALL_FAILED");
    finish(devices[4] ?? "", "FAILED", "INSTALL_FAILED");
    expect(rollouts.show(orgId, r.id).state).toBe("running"); // 2 of 10 started = 20 %
    finish(devices[5] ?? "", "ROLLED_BACK", "HEALTH_NOT_OK"); // 3 of 10 = 30 %
    const aborted = rollouts.show(orgId, r.id);
    expect(aborted).toMatchObject({ state: "aborted", stopReason: "FAILURE_THRESHOLD" });
    expect(aborted.counts).toMatchObject({ succeeded: 3, failed: 3, cancelled: 2, inProgress: 2 });
    const statuses = db.prepare("SELECT status, count(*) AS n FROM jobs WHERE rollback = 0 GROUP BY status").all();
    expect(statuses).toContainEqual({ status: "CANCELLED", n: 2 });
    const cancels = sent.filter((s) => s.message.cancel === true).map((s) => s.uuid);
    expect(cancels.sort()).toEqual(devices.slice(6, 10).sort());
    // One of them was still downloading: it stops, and counts as cancelled, not failed.
    finish(devices[8] ?? "", "FAILED", "JOB_CANCELLED");
    expect(rollouts.show(orgId, r.id).counts).toMatchObject({ failed: 3, cancelled: 3, inProgress: 1 });
    const rollbacks = sent.filter((s) => s.message.rollback === true);
    expect(rollbacks.map((s) => s.uuid).sort()).toEqual(devices.slice(0, 3).sort());
    expect(rollbacks.every((s) => s.message.firmware.version === "1.0.0")).toBe(true);
    for (const d of devices.slice(0, 3)) finish(d, "SUCCEEDED");
    expect(rollouts.show(orgId, r.id).counts.rolledBack).toBe(3);
    // The device that had taken its job finishes after the abort: it is sent back too.
    finish(devices[9] ?? "", "SUCCEEDED");
    expect(sent.at(-1)).toMatchObject({
      uuid: devices[9],
      message: { rollback: true, firmware: { version: "1.0.0" } },
    });
    finish(devices[9] ?? "", "SUCCEEDED");
    expect(rollouts.show(orgId, r.id).counts.rolledBack).toBe(4);
    const versions = db.prepare("SELECT DISTINCT firmware_version AS v FROM devices").all();
    expect(versions).toEqual([{ v: "1.0.0" }]);
    // Nothing new starts after the abort, whatever the ticks do.
    const before = sent.length;
    now += 60_000;
    rollouts.tick();
    expect(sent).toHaveLength(before);
  });

  it("keeps the rate: no interval of the unit ever holds more starts than configured", () => {
    const devices = makeDevices(30);
    create({ target: { devices }, rate: "3/s" });
    for (let i = 0; i < 200; i++) {
      now += 50;
      rollouts.tick();
    }
    const starts = sent.map((s) => s.at);
    expect(starts.length).toBeGreaterThanOrEqual(25);
    for (const t of starts) expect(starts.filter((u) => u >= t && u < t + 1000).length).toBeLessThanOrEqual(3);
  });

  it("starts installs only inside the maintenance window", () => {
    const devices = makeDevices(3);
    now = Date.parse("2026-01-15T12:00:00Z");
    const r = create({ target: { devices }, maintenanceWindow: "0 2 * * *, 1h, UTC" });
    expect(sent).toHaveLength(0);
    expect(rollouts.show(orgId, r.id)).toMatchObject({
      waitingFor: "maintenance-window",
      nextWindowAt: "2026-01-16T02:00:00.000Z",
    });
    now = Date.parse("2026-01-16T02:10:00Z");
    rollouts.tick();
    expect(sent).toHaveLength(3);
  });

  it("retries a failed device with a new job, and counts it failed once the retries are spent", () => {
    const [device = ""] = makeDevices(1);
    const r = create({ target: { devices: [device] }, retries: 1 });
    finish(device, "FAILED", "INSTALL_FAILED");
    rollouts.tick();
    expect(sent).toHaveLength(2);
    expect(sent[1]?.message.jobId).not.toBe(sent[0]?.message.jobId);
    finish(device, "FAILED", "INSTALL_FAILED");
    expect(rollouts.show(orgId, r.id)).toMatchObject({ state: "paused", stopReason: "SUCCESS_THRESHOLD_NOT_MET" });
    expect(rollouts.show(orgId, r.id).failing?.[0]).toMatchObject({ attempts: 2, reason: "INSTALL_FAILED" });
  });

  it("times out a job whose device never answers", () => {
    const [device = ""] = makeDevices(1);
    const r = create({ target: { devices: [device] }, timeout: "10m", failureThreshold: "50%" });
    now += 10 * 60_000;
    rollouts.tick();
    const shown = rollouts.show(orgId, r.id);
    expect(shown).toMatchObject({ state: "aborted", stopReason: "FAILURE_THRESHOLD" });
    expect(shown.failing?.[0]).toMatchObject({ reason: "JOB_TIMEOUT" });
  });

  it("skips devices already on the version or of another type, and counts them for neither side", () => {
    const current = makeDevices(2, { version: "2.0.0" });
    const old = makeDevices(2);
    const typeless = crypto.randomUUID();
    registry.create(orgId, { uuid: typeless }, { groupId: groups.root(orgId).id, typeId: null });
    const r = create({ target: { devices: [...current, ...old, typeless] } });
    expect(r.counts).toMatchObject({ total: 5, skipped: 3, inProgress: 2 });
    for (const d of old) finish(d, "SUCCEEDED");
    expect(rollouts.show(orgId, r.id).state).toBe("completed");
  });

  it("selects by tag, group with sub-groups, and device-list query, within the caller's scope", () => {
    const root = groups.root(orgId);
    const plantA = groups.create(orgId, root.id, { name: "plant-a" });
    const lineA = groups.create(orgId, plantA.id, { name: "line-1" });
    const plantB = groups.create(orgId, root.id, { name: "plant-b" });
    const inA = makeDevices(2, { group: plantA.id, tags: ["canary"] });
    const inLine = makeDevices(1, { group: lineA.id });
    const inB = makeDevices(2, { group: plantB.id, tags: ["canary"] });
    const aManager: Principal = {
      kind: "credential",
      id: "a",
      orgId,
      grants: [{ groupId: plantA.id, path: plantA.path, role: "firmware-manager" }],
    };
    expect(create({ target: { tag: "canary" } }).counts.total).toBe(4);
    const own = create({ target: { tag: "canary" } }, aManager);
    expect(own.counts.total).toBe(2);
    const plant = create({ target: { group: plantA.id } });
    expect(plant.counts.total).toBe(3);
    expect(create({ target: { query: "tag=canary&group=plant-b" } }).counts.total).toBe(2);
    // Only rollouts whose every device is in plant-a are the plant-a manager's to see.
    expect(rollouts.list(aManager).map((r) => r.id)).toEqual([plant.id, own.id]);
    expect(errorOf(() => create({ target: { devices: [inB[0] ?? ""] } }, aManager))).toEqual({
      code: "DEVICE_NOT_FOUND",
      field: "target.devices[0]",
    });
    expect(inA.length + inLine.length + inB.length).toBe(5);
  });

  it("refuses bad targets and settings with the field named", () => {
    const devices = makeDevices(1);
    expect(errorOf(() => create({ target: { devices, tag: "x" } }))).toEqual({
      code: "VALIDATION_FAILED",
      field: "target.tag",
    });
    expect(errorOf(() => create({ target: {} }))).toEqual({ code: "VALIDATION_FAILED", field: "target" });
    expect(errorOf(() => create({ target: { tag: "nobody-has-it" } })).code).toBe("ROLLOUT_NO_DEVICES");
    expect(errorOf(() => create({ target: { query: "limit=5" } }))).toEqual({
      code: "VALIDATION_FAILED",
      field: "target.query.limit",
    });
    expect(errorOf(() => create({ target: { query: "online=maybe" } })).field).toMatch(/^target\.query/);
    expect(errorOf(() => create({ target: { devices }, timeout: "soon" }))).toEqual({
      code: "VALIDATION_FAILED",
      field: "timeout",
    });
    expect(errorOf(() => create({ target: { devices }, firmware: "fw@9.9.9" })).code).toBe("FIRMWARE_NOT_FOUND");
    expect(errorOf(() => rollouts.show(orgId, 999)).code).toBe("ROLLOUT_NOT_FOUND");
  });
});

import { JobStatus, SchemaValidator } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { CheckKind } from "../../src/health/health-check.js";
import { DEVICE_GATE, describeHolding, holdingChecks, statusChecks } from "../../src/update/confirm-gate.js";
import { ReportAcks } from "../../src/update/report-acks.js";
import { FakeHealth, useDevice } from "./update-harness.js";

const validator = new SchemaValidator();

const KINDS: Record<string, CheckKind> = {
  load: "builtin",
  memory: "builtin",
  "command.plc-program": "command",
  "local.plc-heartbeat": "posted",
  "link.meter": "link",
};
const kindOf = (name: string) => KINDS[name];
const check = (name: string, status: string, message = "") => ({ name, status, message });

describe("holdingChecks", () => {
  it("the device gate holds on a critical program, posted or link check, not on the agent's resources", () => {
    const busy = [check("load", "critical"), check("memory", "critical"), check("command.plc-program", "ok")];
    expect(holdingChecks(DEVICE_GATE, busy, kindOf)).toEqual([]);
    const broken = [
      check("link.meter", "critical", "disconnected for 2m"),
      check("local.plc-heartbeat", "critical"),
      check("command.plc-program", "critical", "PLC program stopped"),
      check("load", "critical"),
    ];
    expect(holdingChecks(DEVICE_GATE, broken, kindOf).map((c) => c.name)).toEqual([
      "command.plc-program",
      "link.meter",
      "local.plc-heartbeat",
    ]);
  });

  it("warnings and unknown do not hold the device gate; the strict gate holds on anything not ok", () => {
    const checks = [
      check("command.plc-program", "warning"),
      check("local.plc-heartbeat", "unknown"),
      check("load", "ok"),
    ];
    expect(holdingChecks(DEVICE_GATE, checks, kindOf)).toEqual([]);
    expect(holdingChecks("all", checks, kindOf).map((c) => c.name)).toEqual([
      "command.plc-program",
      "local.plc-heartbeat",
    ]);
  });

  it("a list selects by exact name, by prefix and by kind", () => {
    const checks = [
      check("load", "critical"),
      check("link.meter", "critical"),
      check("command.plc-program", "critical"),
    ];
    expect(holdingChecks(["load"], checks, kindOf).map((c) => c.name)).toEqual(["load"]);
    expect(holdingChecks(["link.*"], checks, kindOf).map((c) => c.name)).toEqual(["link.meter"]);
    expect(holdingChecks(["@builtin"], checks, kindOf).map((c) => c.name)).toEqual(["load"]);
    expect(holdingChecks(["command.plc"], checks, kindOf)).toEqual([]);
  });

  it("bounds what a job status carries: 16 checks, messages of 256 characters, the rest counted", () => {
    const many = Array.from({ length: 20 }, (_, i) =>
      check(`command.c${String(i).padStart(2, "0")}`, "critical", "x".repeat(900)),
    );
    const carried = statusChecks(many);
    expect(carried).toHaveLength(16);
    expect(carried[0]?.message).toHaveLength(256);
    expect(describeHolding(many)).toMatch(/; and 4 more$/);
    validator.parse(JobStatus, { v: 1, ts: 1, status: "IN_PROGRESS", step: "CONFIRMING", checks: carried });
  });
});

describe("ReportAcks", () => {
  it("counts a report by when it was sent, once the cloud acknowledged it; a failed publish not at all", async () => {
    let now = 1000;
    const acks = new ReportAcks(() => now);
    const reached: number[] = [];
    acks.on("reached", () => reached.push(now));
    await expect(acks.track(async () => Promise.reject(new Error("offline")))).rejects.toThrow("offline");
    expect(acks.reachedSince(0)).toBe(false);
    // Sent at 1000, acknowledged at 3000: it proves the cloud was reached since 1000, not since 2000.
    await acks.track(async () => {
      now = 3000;
    });
    expect([acks.reachedSince(1000), acks.reachedSince(2000)]).toEqual([true, false]);
    expect(reached).toEqual([3000]);
  });
});

describe("UpdateMachine: the confirmation gate", () => {
  const fx = useDevice();
  beforeEach(() => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const DEADLINE = 5 * 60_000;
  const confirming = (jobId: string) =>
    fx.dev.reports.filter(
      (r) => r.jobId === jobId && r.status.step === "CONFIRMING" && r.status.status === "IN_PROGRESS",
    );
  /** Polls (in the fake clock, which also runs on its own) until `cond` holds. */
  const until = async (cond: () => boolean, what: string) => {
    for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    if (!cond()) throw new Error(`timed out waiting for ${what}`);
  };
  const machine = (health: FakeHealth, over: Parameters<typeof fx.dev.machine>[0] = {}) =>
    fx.dev.machine({
      health,
      ...over,
      options: { confirmDeadlineMs: DEADLINE, jobTimeoutMs: 3_600_000, ...over.options },
    });

  it("a busy gateway (load and memory critical) still confirms good firmware", async () => {
    const health = new FakeHealth();
    health.set([
      { name: "load", status: "critical", message: "load 9.00 per core", kind: "builtin" },
      { name: "memory", status: "critical", message: "98.0% used", kind: "builtin" },
      { name: "command.plc-program", status: "ok", message: "running" },
    ]);
    await machine(health).submit({ jobId: "busy", signed: fx.signed });
    expect(fx.dev.last("busy")?.status).toBe("SUCCEEDED");
    expect(fx.dev.current()).toBe("b");
  });

  it("a warning of a gate check does not hold the confirmation", async () => {
    const health = new FakeHealth();
    health.set([{ name: "command.plc-program", status: "warning", message: "cycle time high" }]);
    await machine(health).submit({ jobId: "warn", signed: fx.signed });
    expect(fx.dev.last("warn")?.status).toBe("SUCCEEDED");
  });

  it("a critical program check is reported with CONFIRMING, again when it changes, and the rollback names it", async () => {
    const health = new FakeHealth();
    health.set([
      { name: "command.plc-program", status: "critical", message: "PLC program stopped" },
      { name: "load", status: "critical", message: "busy", kind: "builtin" },
    ]);
    const done = machine(health).submit({ jobId: "bad", signed: fx.signed });
    await until(() => confirming("bad").some((r) => r.status.checks), "the first report with checks");
    const first = confirming("bad").find((r) => r.status.checks)?.status;
    expect(first).toMatchObject({
      progress: { done: 6, total: 6 },
      checks: [{ name: "command.plc-program", status: "critical", message: "PLC program stopped" }],
      message: 'waiting on health: check "command.plc-program" critical: PLC program stopped',
    });
    validator.parse(JobStatus, first, "status");
    // A new message alone is not news; a second failing gate check is.
    health.set([{ name: "command.plc-program", status: "critical", message: "PLC program stopped again" }]);
    const before = confirming("bad").length;
    health.set([
      { name: "command.plc-program", status: "critical", message: "PLC program stopped" },
      { name: "link.meter", status: "critical", message: "disconnected for 2m", kind: "link" },
    ]);
    await until(() => confirming("bad").length === before + 1, "a report of the changed checks");
    expect(
      confirming("bad")
        .at(-1)
        ?.status.checks?.map((c) => c.name),
    ).toEqual(["command.plc-program", "link.meter"]);
    expect(fx.dev.last("bad")?.status).toBe("IN_PROGRESS");

    await vi.advanceTimersByTimeAsync(DEADLINE);
    await done;
    const end = fx.dev.last("bad");
    expect(end).toMatchObject({ status: "ROLLED_BACK", reason: "HEALTH_NOT_OK" });
    expect(end?.message).toBe(
      'check "command.plc-program" critical: PLC program stopped; check "link.meter" critical: disconnected for 2m (5m after activation)',
    );
    // The final report is the one every cloud understands: no checks, the reason says it all.
    expect(end?.checks).toBeUndefined();
    expect(fx.dev.current()).toBe("a");
  });

  it("a gate check that recovers before the deadline confirms, and the report says nothing holds it any more", async () => {
    const health = new FakeHealth("critical");
    const done = machine(health).submit({ jobId: "recovers", signed: fx.signed });
    await until(() => confirming("recovers").some((r) => r.status.checks), "the report with checks");
    await vi.advanceTimersByTimeAsync(60_000);
    health.set("ok");
    await done;
    expect(fx.dev.last("recovers")?.status).toBe("SUCCEEDED");
    expect(confirming("recovers").at(-1)?.status.checks).toBeUndefined();
  });

  it("waits until the cloud acknowledged a report sent after the activation, then confirms", async () => {
    const cloud = new ReportAcks();
    // A report acknowledged before the activation proves nothing about the new version.
    await cloud.track(async () => undefined);
    await vi.advanceTimersByTimeAsync(1000);
    const done = machine(new FakeHealth(), { cloud }).submit({ jobId: "offline", signed: fx.signed });
    await until(() => confirming("offline").length > 0, "CONFIRMING");
    await vi.advanceTimersByTimeAsync(DEADLINE / 2);
    expect(fx.dev.last("offline")?.status).toBe("IN_PROGRESS");
    await cloud.track(async () => undefined);
    await done;
    expect(fx.dev.last("offline")?.status).toBe("SUCCEEDED");
  });

  it("never connected again by the deadline: ROLLED_BACK CLOUD_UNREACHABLE; without the requirement it confirms", async () => {
    const done = machine(new FakeHealth(), { cloud: new ReportAcks() }).submit({ jobId: "lost", signed: fx.signed });
    await until(() => confirming("lost").length > 0, "CONFIRMING");
    await vi.advanceTimersByTimeAsync(DEADLINE);
    await done;
    expect(fx.dev.last("lost")).toMatchObject({ status: "ROLLED_BACK", reason: "CLOUD_UNREACHABLE" });
    expect(fx.dev.last("lost")?.message).toMatch(/acknowledged no report sent after the activation/);

    const free = machine(new FakeHealth(), {
      cloud: new ReportAcks(),
      options: { confirmDeadlineMs: DEADLINE, jobTimeoutMs: 3_600_000, confirmRequiresCloud: false },
    });
    await free.submit({ jobId: "free", signed: fx.signed });
    expect(fx.dev.last("free")?.status).toBe("SUCCEEDED");
  });

  it('gate "all" keeps the strict rule: a busy gateway\'s warning rolls back', async () => {
    const health = new FakeHealth();
    health.set([{ name: "load", status: "warning", message: "load 2.50 per core", kind: "builtin" }]);
    const done = machine(health, {
      options: { confirmDeadlineMs: DEADLINE, jobTimeoutMs: 3_600_000, confirmGate: "all" },
    }).submit({ jobId: "strict", signed: fx.signed });
    await until(() => confirming("strict").some((r) => r.status.checks), "the report with checks");
    expect(confirming("strict").find((r) => r.status.checks)?.status.checks).toEqual([
      { name: "load", status: "warning", message: "load 2.50 per core" },
    ]);
    await vi.advanceTimersByTimeAsync(DEADLINE);
    await done;
    expect(fx.dev.last("strict")).toMatchObject({ status: "ROLLED_BACK", reason: "HEALTH_NOT_OK" });
    expect(fx.dev.last("strict")?.message).toMatch(/^check "load" warning: load 2.50 per core/);
  });
});

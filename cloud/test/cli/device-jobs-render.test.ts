import { describe, expect, it } from "vitest";
import { renderJobStep, renderUpdateSteps } from "../../src/cli/device-jobs-command.js";
import type { JobStepView, JobView } from "../../src/jobs/device-jobs.js";

const plc = { name: "command.plc-program", status: "critical" as const, message: "PLC program stopped" };
const meter = { name: "link.meter", status: "critical" as const };

/** What a job and a report have alike, as they are while CONFIRMING. */
const CONFIRMING = {
  status: "IN_PROGRESS",
  step: "CONFIRMING",
  progress: { done: 6, total: 6 },
  reason: null,
  message: null,
  checks: null,
};

const step = (over: Partial<JobStepView>): JobStepView => ({ ts: "2026-02-01T08:00:00.000Z", ...CONFIRMING, ...over });

const job = (over: Partial<JobView>): JobView => ({
  id: "job-1",
  device: "aaaaaaaa-0000-4000-8000-000000000001",
  firmware: { name: "gw-os", version: "2.0.0" },
  ...CONFIRMING,
  created: "2026-02-01T08:00:00.000Z",
  updated: "2026-02-01T08:01:00.000Z",
  timeoutAt: "2026-02-01T09:00:00.000Z",
  steps: [step({ step: "ACTIVATING", progress: { done: 5, total: 6 } }), step({})],
  ...over,
});

describe("renderJobStep", () => {
  it("is the step and its progress, and while CONFIRMING the checks it waits on with their output", () => {
    expect(renderJobStep(step({ step: "INSTALLING", progress: { done: 4, total: 6 } }))).toBe("INSTALLING 4/6");
    expect(renderJobStep(step({ checks: [plc, meter] }))).toBe(
      'CONFIRMING 6/6, waiting on health: check "command.plc-program" critical: PLC program stopped; check "link.meter" critical',
    );
    expect(renderJobStep(step({ checks: [plc, meter] }), { brief: true })).toBe(
      "CONFIRMING 6/6, waiting on command.plc-program, link.meter",
    );
    expect(renderJobStep(step({ step: null, progress: null }))).toBe("");
  });
});

describe("renderUpdateSteps (devices show)", () => {
  it("shows the checks under the running confirming step, and the reason naming them once the job ended", () => {
    const running = renderUpdateSteps(job({ checks: [plc] })).split("\n");
    const confirming = running.findIndex((l) => l.includes("6. confirming 6/6"));
    expect(running[confirming]).toMatch(/^ {2}\.\. 6\. confirming 6\/6$/);
    expect(running[confirming + 1]?.trim()).toBe(
      'waiting on health: check "command.plc-program" critical: PLC program stopped',
    );
    const ended = renderUpdateSteps(
      job({
        status: "ROLLED_BACK",
        reason: "HEALTH_NOT_OK",
        message: 'check "command.plc-program" critical: PLC program stopped (5m after activation)',
      }),
    );
    expect(ended).not.toContain("waiting on");
    expect(ended).toContain(
      'result: ROLLED_BACK HEALTH_NOT_OK: check "command.plc-program" critical: PLC program stopped (5m after activation)',
    );
  });
});

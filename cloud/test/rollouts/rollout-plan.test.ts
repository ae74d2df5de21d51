import { FieldgateError } from "@fieldgate/shared";
import { describe, expect, it } from "vitest";
import {
  failureThresholdCrossed,
  parseMaintenanceWindow,
  parsePhases,
  parseRate,
  parseThreshold,
  phaseSizes,
  phaseVerdict,
  startsAllowed,
  windowOpen,
} from "../../src/rollouts/rollout-plan.js";

const fieldOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    if (err instanceof FieldgateError) return `${err.code}:${err.field}`;
    throw err;
  }
  return undefined;
};

describe("rollout plan parsing", () => {
  it("reads cumulative percentage and count phases", () => {
    expect(parsePhases("1%,10%,50%,100%")).toEqual([
      { percent: 1 },
      { percent: 10 },
      { percent: 50 },
      { percent: 100 },
    ]);
    expect(parsePhases("5, 50, 500")).toEqual([{ count: 5 }, { count: 50 }, { count: 500 }]);
  });

  it.each([
    ["10%,5%,100%", "shrinking"],
    ["10%,50%", "not ending at 100%"],
    ["10%,20,100%", "mixed"],
    ["0,5", "a zero count"],
    ["", "empty"],
    ["10%,,100%", "an empty mark"],
    ["150%", "over 100%"],
  ])("refuses %s (%s) naming the phases field", (text) => {
    expect(fieldOf(() => parsePhases(text))).toBe("VALIDATION_FAILED:phases");
  });

  it("splits a target set into phases, rounding up so a small phase is never empty", () => {
    expect(phaseSizes(parsePhases("1%,10%,50%,100%"), 20)).toEqual([1, 1, 8, 10]);
    expect(phaseSizes(parsePhases("1%,10%,50%,100%"), 1000)).toEqual([10, 90, 400, 500]);
    // Counts past the target set leave later phases empty; the last phase takes the rest.
    expect(phaseSizes(parsePhases("2,5,100"), 4)).toEqual([2, 2, 0]);
    expect(phaseSizes(parsePhases("2,3"), 10)).toEqual([2, 8]);
  });

  it("reads thresholds as percentages only", () => {
    expect(parseThreshold("95%", "successThreshold")).toBeCloseTo(0.95);
    expect(fieldOf(() => parseThreshold("0.95", "successThreshold"))).toBe("VALIDATION_FAILED:successThreshold");
    expect(fieldOf(() => parseThreshold("101%", "failureThreshold"))).toBe("VALIDATION_FAILED:failureThreshold");
  });

  it("reads rates per second, minute and hour", () => {
    expect(parseRate("100/min")).toEqual({ count: 100, unitMs: 60_000 });
    expect(parseRate("2/s")).toEqual({ count: 2, unitMs: 1000 });
    expect(parseRate("500/h")).toEqual({ count: 500, unitMs: 3_600_000 });
    for (const bad of ["100", "0/min", "1.5/s", "10/day", "x/min"]) {
      expect(
        fieldOf(() => parseRate(bad)),
        bad,
      ).toBe("VALIDATION_FAILED:rate");
    }
  });

  it("reads maintenance windows and refuses bad crons, durations and zones", () => {
    expect(parseMaintenanceWindow("0 2 * * *, 2h, Europe/Berlin")).toEqual({
      cron: "0 2 * * *",
      durationMs: 7_200_000,
      timezone: "Europe/Berlin",
    });
    expect(parseMaintenanceWindow("30 1 * * 6, 90m").timezone).toBe("UTC");
    for (const bad of ["0 2 * * *", "61 2 * * *, 2h", "0 2 * * *, soon", "0 2 * * *, 2h, Mars/Olympus"]) {
      expect(
        fieldOf(() => parseMaintenanceWindow(bad)),
        bad,
      ).toBe("VALIDATION_FAILED:maintenanceWindow");
    }
  });
});

describe("rollout decisions", () => {
  it("opens a window from each cron occurrence for its duration, in its time zone", () => {
    const window = parseMaintenanceWindow("0 2 * * *, 2h, Europe/Berlin");
    // 02:00 in Berlin on 2026-01-15 is 01:00 UTC (winter time).
    expect(windowOpen(window, Date.parse("2026-01-15T00:59:59Z"))).toBe(false);
    expect(windowOpen(window, Date.parse("2026-01-15T01:00:00Z"))).toBe(true);
    expect(windowOpen(window, Date.parse("2026-01-15T02:59:59Z"))).toBe(true);
    expect(windowOpen(window, Date.parse("2026-01-15T03:00:00Z"))).toBe(false);
    // Summer time: 02:00 in Berlin is 00:00 UTC.
    expect(windowOpen(window, Date.parse("2026-07-15T00:30:00Z"))).toBe(true);
  });

  it("spreads starts evenly and never lets an interval of the unit hold more than the rate", () => {
    const rate = parseRate("6/min"); // one every 10 s
    expect(startsAllowed(rate, 0, null, 0)).toBe(1);
    expect(startsAllowed(rate, 9_999, 0, 1)).toBe(0);
    expect(startsAllowed(rate, 10_000, 0, 1)).toBe(1);
    // After a long pause the spread allows many, the last minute's starts cap them.
    expect(startsAllowed(rate, 600_000, 0, 0)).toBe(6);
    expect(startsAllowed(rate, 600_000, 0, 4)).toBe(2);
    expect(startsAllowed(rate, 600_000, 0, 6)).toBe(0);
  });

  it("advances a finished phase at the success threshold, holds it below, and waits while open", () => {
    const counts = { total: 10, succeeded: 9, failed: 1, skipped: 0, open: 0 };
    expect(phaseVerdict(counts, 0.9)).toBe("advance");
    expect(phaseVerdict(counts, 0.95)).toBe("hold");
    expect(phaseVerdict({ ...counts, succeeded: 8, open: 1 }, 0.5)).toBe("open");
    // Skipped devices (already on the version) count for neither side.
    expect(phaseVerdict({ total: 4, succeeded: 2, failed: 0, skipped: 2, open: 0 }, 1)).toBe("advance");
    expect(phaseVerdict({ total: 2, succeeded: 0, failed: 0, skipped: 2, open: 0 }, 1)).toBe("advance");
  });

  it("aborts when failed ÷ started reaches the failure threshold", () => {
    expect(failureThresholdCrossed(0, 10, 0)).toBe(false);
    expect(failureThresholdCrossed(1, 10, 0.1)).toBe(true);
    expect(failureThresholdCrossed(1, 11, 0.1)).toBe(false);
    expect(failureThresholdCrossed(5, 5, 1)).toBe(false);
  });
});

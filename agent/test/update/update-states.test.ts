import { describe, expect, it } from "vitest";
import {
  asksWhichVersionRuns,
  bootAction,
  bootEvent,
  nextState,
  TERMINAL_STATES,
  TRANSITIONS,
  UPDATE_EVENTS,
  type UpdateState,
  WORKING_STATES,
} from "../../src/update/update-states.js";

// The whole table, written out again: a change to the machine must change this test too.
const EXPECTED: Record<string, Partial<Record<string, UpdateState>>> = {
  QUEUED: { ok: "CHECKING_PERMISSIONS", boot: "QUEUED", timeout: "FAILED", cancel: "FAILED" },
  CHECKING_PERMISSIONS: {
    ok: "DOWNLOADING",
    fail: "FAILED",
    reject: "REJECTED",
    boot: "CHECKING_PERMISSIONS",
    timeout: "FAILED",
    cancel: "FAILED",
  },
  DOWNLOADING: { ok: "VERIFYING", fail: "FAILED", boot: "DOWNLOADING", timeout: "FAILED", cancel: "FAILED" },
  VERIFYING: {
    ok: "INSTALLING",
    fail: "FAILED",
    reject: "REJECTED",
    boot: "VERIFYING",
    timeout: "FAILED",
    cancel: "FAILED",
  },
  INSTALLING: { ok: "ACTIVATING", fail: "FAILED", boot: "FAILED", timeout: "FAILED" },
  ACTIVATING: {
    ok: "CONFIRMING",
    fail: "ROLLED_BACK",
    boot: "ROLLED_BACK",
    boot_new: "CONFIRMING",
    timeout: "ROLLED_BACK",
  },
  CONFIRMING: {
    ok: "SUCCEEDED",
    fail: "ROLLED_BACK",
    boot: "ROLLED_BACK",
    boot_new: "CONFIRMING",
    timeout: "ROLLED_BACK",
  },
};

describe("update state table", () => {
  const cases = [...WORKING_STATES, ...TERMINAL_STATES].flatMap((state) =>
    UPDATE_EVENTS.map((event) => ({ state, event, want: EXPECTED[state]?.[event] })),
  );

  it.each(cases)("$state --$event--> $want", ({ state, event, want }) => {
    if (want === undefined) expect(() => nextState(state, event)).toThrow(/invalid update transition/);
    else expect(nextState(state, event)).toBe(want);
  });

  it("the happy path walks the states in order", () => {
    let s: UpdateState = "QUEUED";
    const seen: UpdateState[] = [s];
    while (s !== "SUCCEEDED") {
      s = nextState(s, "ok");
      seen.push(s);
    }
    expect(seen).toEqual([...WORKING_STATES, "SUCCEEDED"]);
  });

  it("a plain boot resumes before INSTALLING and rolls back from it on", () => {
    for (const state of WORKING_STATES) {
      const resumes = nextState(state, "boot") === state;
      expect(bootAction(state)).toBe(resumes ? "resume" : "rollback");
      expect(bootAction(state)).toBe(
        ["INSTALLING", "ACTIVATING", "CONFIRMING"].includes(state) ? "rollback" : "resume",
      );
    }
  });

  it("after a planned restart into the new version, ACTIVATING and CONFIRMING go on confirming", () => {
    const asking = WORKING_STATES.filter((s) => asksWhichVersionRuns(s));
    expect(asking).toEqual(["ACTIVATING", "CONFIRMING"]);
    for (const state of asking) {
      expect(bootEvent(state, true)).toBe("boot_new");
      expect(bootEvent(state, false)).toBe("boot");
      expect(bootAction(state, "boot_new")).toBe("resume");
      expect(nextState(state, "boot_new")).toBe("CONFIRMING");
    }
    // Elsewhere the new version cannot run yet: the answer is not even asked for.
    expect(bootEvent("INSTALLING", true)).toBe("boot");
    expect(TRANSITIONS.INSTALLING.on.boot_new).toBeUndefined();
  });
});

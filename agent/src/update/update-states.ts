/**
 * The firmware update state machine (issue #5) as one table, in the manner of mender's
 * `state_machine.cpp`: every legal `(state, event) → next state` is written down here and nowhere
 * else, and `nextState` throws for anything missing, so an unplanned path is a bug, not a guess.
 */

/** The working states, in order; each is persisted before its side effect runs. */
export const WORKING_STATES = [
  "QUEUED",
  "CHECKING_PERMISSIONS",
  "DOWNLOADING",
  "VERIFYING",
  "INSTALLING",
  "ACTIVATING",
  "CONFIRMING",
] as const;

/** The ends. REJECTED is a refusal without any side effect (an image not newer than the installed one). */
export const TERMINAL_STATES = ["SUCCEEDED", "FAILED", "ROLLED_BACK", "REJECTED"] as const;

export type WorkingState = (typeof WORKING_STATES)[number];
export type TerminalState = (typeof TERMINAL_STATES)[number];
export type UpdateState = WorkingState | TerminalState;

/**
 * `ok`: the state's work succeeded. `fail`: it failed. `reject`: the job must not run at all.
 * `boot`: the agent started and found the job in this state (a crash or power loss).
 * `timeout`: the job's deadline passed.
 */
export type UpdateEvent = "ok" | "fail" | "reject" | "boot" | "timeout";

export const UPDATE_EVENTS: readonly UpdateEvent[] = ["ok", "fail", "reject", "boot", "timeout"];

/**
 * What a crash in a state means on the next boot. `resume`: redo the state's work (it is
 * idempotent: a download continues with Range, verification starts over). `rollback`: the state
 * may have touched the installed system, so undo it and end the job; the old version stays.
 */
export type BootAction = "resume" | "rollback";

interface Row {
  /** Where `boot` leads: the same state means resume. */
  boot: BootAction;
  on: Partial<Record<UpdateEvent, UpdateState>>;
}

/** THE table. Before INSTALLING nothing was touched, so failures end FAILED; after it, ROLLED_BACK. */
export const TRANSITIONS: Readonly<Record<WorkingState, Row>> = {
  QUEUED: { boot: "resume", on: { ok: "CHECKING_PERMISSIONS", boot: "QUEUED", timeout: "FAILED" } },
  CHECKING_PERMISSIONS: {
    boot: "resume",
    on: {
      ok: "DOWNLOADING",
      fail: "FAILED",
      reject: "REJECTED",
      boot: "CHECKING_PERMISSIONS",
      timeout: "FAILED",
    },
  },
  DOWNLOADING: { boot: "resume", on: { ok: "VERIFYING", fail: "FAILED", boot: "DOWNLOADING", timeout: "FAILED" } },
  VERIFYING: {
    boot: "resume",
    on: { ok: "INSTALLING", fail: "FAILED", reject: "REJECTED", boot: "VERIFYING", timeout: "FAILED" },
  },
  // A half-written inactive slot is wiped; the active one was never touched, so the job FAILED.
  INSTALLING: { boot: "rollback", on: { ok: "ACTIVATING", fail: "FAILED", boot: "FAILED", timeout: "FAILED" } },
  // From here on the new version may be live: every failure flips back to the old one.
  ACTIVATING: {
    boot: "rollback",
    on: { ok: "CONFIRMING", fail: "ROLLED_BACK", boot: "ROLLED_BACK", timeout: "ROLLED_BACK" },
  },
  CONFIRMING: {
    boot: "rollback",
    on: { ok: "SUCCEEDED", fail: "ROLLED_BACK", boot: "ROLLED_BACK", timeout: "ROLLED_BACK" },
  },
};

export function isTerminal(state: string): state is TerminalState {
  return (TERMINAL_STATES as readonly string[]).includes(state);
}

export function isUpdateState(state: string): state is UpdateState {
  return isTerminal(state) || (WORKING_STATES as readonly string[]).includes(state);
}

/** The next state; throws for a transition the table does not list (terminal states have none). */
export function nextState(state: UpdateState, event: UpdateEvent): UpdateState {
  const next = isTerminal(state) ? undefined : TRANSITIONS[state].on[event];
  if (next === undefined) throw new Error(`invalid update transition: ${state} --${event}-->`);
  return next;
}

/** What a crash in `state` means on boot. */
export function bootAction(state: WorkingState): BootAction {
  return TRANSITIONS[state].boot;
}

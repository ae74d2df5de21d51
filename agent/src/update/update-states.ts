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
 * `boot_new`: the same, but the installer reports that the new version is what runs: its
 * activation restarts the agent or the device (mender's "after reboot"); only rows listing it ask.
 * `timeout`: the job's deadline passed.
 */
export type UpdateEvent = "ok" | "fail" | "reject" | "boot" | "boot_new" | "timeout" | "cancel";

export const UPDATE_EVENTS: readonly UpdateEvent[] = ["ok", "fail", "reject", "boot", "boot_new", "timeout", "cancel"];

/**
 * What a boot in a state means. `resume`: go on from there (the work is idempotent: a download
 * continues with Range, verification starts over; after a restart into the new version,
 * confirming goes on with the remaining deadline). `rollback`: the state may have touched the
 * installed system, so undo it and end the job; the old version stays.
 */
export type BootAction = "resume" | "rollback";

interface Row {
  on: Partial<Record<UpdateEvent, UpdateState>>;
}

/** THE table. Before INSTALLING nothing was touched, so failures end FAILED; after it, ROLLED_BACK. */
export const TRANSITIONS: Readonly<Record<WorkingState, Row>> = {
  // `cancel` (an aborted rollout) is honoured only while nothing on the device was touched.
  QUEUED: { on: { ok: "CHECKING_PERMISSIONS", boot: "QUEUED", timeout: "FAILED", cancel: "FAILED" } },
  CHECKING_PERMISSIONS: {
    on: {
      ok: "DOWNLOADING",
      fail: "FAILED",
      reject: "REJECTED",
      boot: "CHECKING_PERMISSIONS",
      timeout: "FAILED",
      cancel: "FAILED",
    },
  },
  DOWNLOADING: {
    on: { ok: "VERIFYING", fail: "FAILED", boot: "DOWNLOADING", timeout: "FAILED", cancel: "FAILED" },
  },
  VERIFYING: {
    on: {
      ok: "INSTALLING",
      fail: "FAILED",
      reject: "REJECTED",
      boot: "VERIFYING",
      timeout: "FAILED",
      cancel: "FAILED",
    },
  },
  // A half-written inactive slot is wiped; the active one was never touched, so the job FAILED.
  INSTALLING: { on: { ok: "ACTIVATING", fail: "FAILED", boot: "FAILED", timeout: "FAILED" } },
  // From here on the new version may be live: every failure flips back to the old one. A boot
  // into the new version means the activation went through (a reboot may cut it short): confirm.
  ACTIVATING: {
    on: { ok: "CONFIRMING", fail: "ROLLED_BACK", boot: "ROLLED_BACK", boot_new: "CONFIRMING", timeout: "ROLLED_BACK" },
  },
  // A confirmation under way when the agent died is not trusted, unless the restart was the plan
  // and the new version is what came back: then it goes on, with the deadline that is left.
  CONFIRMING: {
    on: { ok: "SUCCEEDED", fail: "ROLLED_BACK", boot: "ROLLED_BACK", boot_new: "CONFIRMING", timeout: "ROLLED_BACK" },
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

/** Whether a job in `state` may still be cancelled: the row lists `cancel` (before INSTALLING). */
export function cancellable(state: UpdateState): boolean {
  return !isTerminal(state) && TRANSITIONS[state].on.cancel !== undefined;
}

/** Whether a boot in `state` asks the installer which version runs (the row lists `boot_new`). */
export function asksWhichVersionRuns(state: WorkingState): boolean {
  return TRANSITIONS[state].on.boot_new !== undefined;
}

/** The boot event for a job found in `state`: `boot_new` only where the row lists it and the new version runs. */
export function bootEvent(state: WorkingState, newVersionRuns: boolean): "boot" | "boot_new" {
  return newVersionRuns && asksWhichVersionRuns(state) ? "boot_new" : "boot";
}

/** What a boot in `state` means: read from the table, a working state next is a resume. */
export function bootAction(state: WorkingState, event: "boot" | "boot_new" = "boot"): BootAction {
  return isTerminal(nextState(state, event)) ? "rollback" : "resume";
}

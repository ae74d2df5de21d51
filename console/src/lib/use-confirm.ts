import { useState } from "preact/hooks";

export interface Action {
  /** True while `run` waits for its work. */
  busy: boolean;
  /** What the last `run` failed with (cleared when the next starts, or by `clearError`). */
  error: unknown;
  /** Runs `work` with `busy` set; a failure lands in `error`. True when it succeeded. */
  run: (work: () => Promise<void>) => Promise<boolean>;
  clearError: () => void;
}

/** Busy and error state around one action the user started (a dialog's confirm button). */
export function useAction(): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const run = async (work: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await work();
      return true;
    } catch (caught) {
      setError(caught);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clearError: () => setError(undefined) };
}

export interface Confirm<T> extends Action {
  /** What the open confirmation is about; undefined while none is open. */
  target: T | undefined;
  /** Opens the confirmation for `target` (without the last one's error). */
  ask: (target: T) => void;
  cancel: () => void;
  /** Does `work` for the target; closes the confirmation when it succeeds, shows its error if not. */
  confirm: (work: (target: T) => Promise<void>) => Promise<void>;
}

/** "Are you sure?" state: which row it is about, plus the busy and error state of doing it. */
export function useConfirm<T>(): Confirm<T> {
  const [target, setTarget] = useState<T | undefined>(undefined);
  const action = useAction();
  return {
    ...action,
    target,
    ask: (next) => {
      action.clearError();
      setTarget(next);
    },
    cancel: () => setTarget(undefined),
    confirm: async (work) => {
      if (target === undefined) return;
      if (await action.run(() => work(target))) setTarget(undefined);
    },
  };
}

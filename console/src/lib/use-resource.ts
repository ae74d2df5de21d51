import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api";

export interface Resource<T> {
  /** The last answer; kept while a reload runs, so a live refresh does not blank the page. */
  data: T | undefined;
  /** The last failure (cleared by the next success). */
  error: unknown;
  loading: boolean;
  /** When the last answer arrived (ms since the epoch; 0 before the first). */
  loadedAt: number;
  /**
   * Loads again (a stable function: safe in effect dependencies); the promise settles (never
   * rejects) once that load has ended, so `await reload()` sees the new answer.
   */
  reload: () => Promise<void>;
}

/**
 * Loads with `load` whenever a value in `deps` changes (and on `reload()`); a load still running
 * when the next starts, or when the component goes away, is aborted and its answer dropped.
 */
export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): Resource<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean; loadedAt: number }>({
    data: undefined,
    error: undefined,
    loading: true,
    loadedAt: 0,
  });
  const [round, setRound] = useState(0);
  const latest = useRef(load);
  latest.current = load;
  // Callers of reload() waiting for the load it starts.
  const waiting = useRef<(() => void)[]>([]);
  useEffect(() => {
    const controller = new AbortController();
    const settle = () => {
      const waiters = waiting.current;
      waiting.current = [];
      for (const resolve of waiters) resolve();
    };
    setState((s) => ({ ...s, loading: true }));
    latest
      .current(controller.signal)
      .then((data) => {
        if (!controller.signal.aborted) setState({ data, error: undefined, loading: false, loadedAt: Date.now() });
      })
      .catch((error: unknown) => {
        if (!controller.signal.aborted) setState((s) => ({ ...s, error, loading: false }));
      })
      .finally(() => {
        if (!controller.signal.aborted) settle();
      });
    // An aborted load leaves its waiters to the load that replaces it.
    return () => controller.abort();
  }, [...deps, round]);
  const reload = useCallback(
    () =>
      new Promise<void>((resolve) => {
        waiting.current.push(resolve);
        setRound((r) => r + 1);
      }),
    [],
  );
  return { ...state, reload };
}

/** The `items` of a list answer from `GET path` (like `/device-types`), loaded with useResource. */
export function useItems<T>(path: string, deps: readonly unknown[] = []): Resource<T[]> {
  return useResource(
    (signal) => api<{ items: T[] }>("GET", path, { signal }).then((answer) => answer.items),
    [path, ...deps],
  );
}

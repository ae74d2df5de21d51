import { useEffect, useRef, useState } from "preact/hooks";

export interface Resource<T> {
  /** The last answer; kept while a reload runs, so a live refresh does not blank the page. */
  data: T | undefined;
  /** The last failure (cleared by the next success). */
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * Loads with `load` whenever a value in `deps` changes (and on `reload()`); a load still running
 * when the next starts, or when the component goes away, is aborted and its answer dropped.
 */
export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): Resource<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({
    data: undefined,
    error: undefined,
    loading: true,
  });
  const [round, setRound] = useState(0);
  const latest = useRef(load);
  latest.current = load;
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    latest
      .current(controller.signal)
      .then((data) => {
        if (!controller.signal.aborted) setState({ data, error: undefined, loading: false });
      })
      .catch((error: unknown) => {
        if (!controller.signal.aborted) setState((s) => ({ data: s.data, error, loading: false }));
      });
    return () => controller.abort();
  }, [...deps, round]);
  return { ...state, reload: () => setRound((r) => r + 1) };
}

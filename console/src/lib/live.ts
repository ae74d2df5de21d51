import { useEffect, useRef } from "preact/hooks";

/**
 * Live updates from `GET /api/v1/live` (Server-Sent Events, scoped like the device list to what
 * the session may read). Each event names what changed; pages re-read what they show. Where a
 * proxy buffers or blocks the stream, the console falls back to asking every POLL_MS.
 */
export type LiveEvent =
  | { kind: "device"; uuid: string }
  | { kind: "job"; uuid: string; jobId: string }
  | { kind: "rollout"; id: number }
  /** The stream is unavailable: re-read everything shown. */
  | { kind: "poll" };

export const POLL_MS = 10_000;

type Listener = (event: LiveEvent) => void;
const listeners = new Set<Listener>();
let source: EventSource | undefined;
let pollTimer: ReturnType<typeof setInterval> | undefined;

function dispatch(event: LiveEvent): void {
  for (const listener of listeners) listener(event);
}

function startPolling(): void {
  if (pollTimer) return;
  pollTimer = setInterval(() => dispatch({ kind: "poll" }), POLL_MS);
}

function connect(): void {
  if (source || typeof EventSource === "undefined") {
    if (!source) startPolling();
    return;
  }
  const stream = new EventSource("/api/v1/live", { withCredentials: true });
  source = stream;
  stream.addEventListener("open", () => {
    if (pollTimer) {
      clearInterval(pollTimer);
      pollTimer = undefined;
    }
  });
  for (const kind of ["device", "job", "rollout"] as const) {
    stream.addEventListener(kind, (message) => {
      try {
        dispatch({ kind, ...(JSON.parse((message as MessageEvent<string>).data) as object) } as LiveEvent);
      } catch {
        // A malformed event is ignored: the next one, or the next poll, brings the page up to date.
      }
    });
  }
  // EventSource reconnects by itself; until it does, poll so nothing shown goes stale.
  stream.addEventListener("error", () => startPolling());
}

export function disconnectLive(): void {
  source?.close();
  source = undefined;
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = undefined;
}

/** Calls `onEvent` for live events that `matches` accepts, and for every poll tick. */
export function useLive(matches: (event: LiveEvent) => boolean, onEvent: (event: LiveEvent) => void): void {
  const latest = useRef({ matches, onEvent });
  latest.current = { matches, onEvent };
  useEffect(() => {
    const listener: Listener = (event) => {
      if (event.kind === "poll" || latest.current.matches(event)) latest.current.onEvent(event);
    };
    listeners.add(listener);
    connect();
    return () => {
      listeners.delete(listener);
    };
  }, []);
}

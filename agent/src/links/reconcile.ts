/**
 * The steps from the links that run to the links that are wanted, as a pure function (the
 * balena-supervisor pattern: compute, then apply). A link is identified by its id; a changed
 * config means a restart, because a link is built from its config and never mutated.
 */
import type { LinkConfig } from "@fieldgate/shared";

/** What is running now: each link's id and the config it was built from. */
export interface RunningLink {
  id: string;
  config: LinkConfig;
}

export type LinkStep =
  | { action: "stop"; id: string; reason: "removed" | "disabled" }
  | { action: "restart"; id: string; config: LinkConfig }
  | { action: "start"; id: string; config: LinkConfig };

/**
 * Stops come first, then restarts, then starts, each in config order: a port that one link lets go
 * of is free before another link opens it. Disabled links (`enabled: false`) are wanted stopped.
 */
export function reconcileLinks(current: readonly RunningLink[], desired: readonly LinkConfig[]): LinkStep[] {
  const running = new Map(current.map((r) => [r.id, r]));
  const wanted = new Map(desired.map((c) => [c.id, c]));
  const stops: LinkStep[] = [];
  const restarts: LinkStep[] = [];
  const starts: LinkStep[] = [];
  for (const r of current) {
    const next = wanted.get(r.id);
    if (!next) stops.push({ action: "stop", id: r.id, reason: "removed" });
    else if (next.enabled === false) stops.push({ action: "stop", id: r.id, reason: "disabled" });
  }
  for (const c of desired) {
    if (c.enabled === false) continue;
    const r = running.get(c.id);
    if (!r) starts.push({ action: "start", id: c.id, config: c });
    else if (!sameConfig(r.config, c)) restarts.push({ action: "restart", id: c.id, config: c });
  }
  return [...stops, ...restarts, ...starts];
}

/** Equal configs regardless of key order (a config from the cloud may list keys differently). */
export function sameConfig(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)),
        )
      : v,
  );
}

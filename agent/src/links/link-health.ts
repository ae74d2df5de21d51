import { formatDuration, type LinkConfig, parseDuration } from "@fieldgate/shared";
import type { CheckResult } from "../health/health-check.js";
import type { LinkView } from "./link-manager.js";

/** Health checks of links are named `link.<id>`. */
export const LINK_CHECK_PREFIX = "link.";
/** A link down this long warns when its config does not say (`downWarnAfter`). */
export const DEFAULT_DOWN_WARN_MS = 30_000;

/** Where link checks go (`HealthMonitor` is the real one). */
export interface LinkCheckTarget {
  set(result: CheckResult): void;
  drop(name: string): void;
}

/** What the health capability needs from the link manager. */
export interface LinkSource {
  list(): LinkView[];
  configs(): LinkConfig[];
  on(event: "change", listener: () => void): unknown;
  off(event: "change", listener: () => void): unknown;
}

/**
 * Judges one link: ok while connected or down for less than `warnMs`, warning after that, critical
 * after `critMs` when the link sets one. A link that never connected counts as down since it started.
 */
export function judgeLink(
  view: LinkView,
  downSince: number | undefined,
  now: number,
  warnMs: number,
  critMs?: number,
): CheckResult {
  const name = `${LINK_CHECK_PREFIX}${view.id}`;
  if (view.state === "connected" || downSince === undefined) return { name, status: "ok", message: "connected" };
  const down = Math.max(0, now - downSince);
  const why = `${view.state} for ${formatDuration(down)}${view.reason ? `: ${view.reason}` : ""}`;
  if (critMs !== undefined && down >= critMs) return { name, status: "critical", message: why };
  if (down >= warnMs) return { name, status: "warning", message: why };
  return { name, status: "ok", message: why };
}

/** Options of the link health publisher. */
export interface LinkHealthOptions {
  links: LinkSource;
  target: LinkCheckTarget;
  /** How often down durations are judged again (thresholds pass without any event); default 1s. */
  intervalMs?: number;
  clock?: () => number;
}

/**
 * Feeds one health check per enabled link into the monitor (`link.<id>`), judged on every link
 * change and every second, and removes the checks of links that are gone or disabled.
 */
export class LinkHealth {
  private readonly downSince = new Map<string, number>();
  private readonly published = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly clock: () => number;
  private readonly onChange = () => this.evaluate();

  constructor(private readonly options: LinkHealthOptions) {
    this.clock = options.clock ?? Date.now;
  }

  start(): void {
    if (this.timer) return;
    this.options.links.on("change", this.onChange);
    this.timer = setInterval(this.onChange, this.options.intervalMs ?? 1000);
    this.timer.unref();
    this.evaluate();
  }

  stop(): void {
    this.options.links.off("change", this.onChange);
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  evaluate(): void {
    const now = this.clock();
    const configs = new Map(this.options.links.configs().map((c) => [c.id, c]));
    const seen = new Set<string>();
    for (const view of this.options.links.list()) {
      const config = configs.get(view.id);
      if (!config || !view.enabled) continue;
      seen.add(view.id);
      if (view.state === "connected") this.downSince.delete(view.id);
      else if (!this.downSince.has(view.id)) this.downSince.set(view.id, now);
      const warnMs = (config.downWarnAfter && parseDuration(config.downWarnAfter)) || DEFAULT_DOWN_WARN_MS;
      const critMs = config.downCriticalAfter ? parseDuration(config.downCriticalAfter) : undefined;
      const result = judgeLink(view, this.downSince.get(view.id), now, warnMs, critMs);
      this.options.target.set(result);
      this.published.add(result.name);
    }
    for (const id of [...this.downSince.keys()]) if (!seen.has(id)) this.downSince.delete(id);
    for (const name of [...this.published]) {
      if (!seen.has(name.slice(LINK_CHECK_PREFIX.length))) {
        this.options.target.drop(name);
        this.published.delete(name);
      }
    }
  }
}

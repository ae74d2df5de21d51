import { EventEmitter } from "node:events";
import type { LinkConfig, Reading } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { ReadingSink } from "../outbox/outbox-writer.js";
import { Backoff } from "../retry/backoff.js";
import type { Link, LinkFactories, LinkFactory, LinkReading, LinkSink, LinkStatus } from "./link.js";
import { type LinkStep, reconcileLinks } from "./reconcile.js";

/** Dependencies of the manager. */
export interface LinkManagerOptions {
  /** One factory per link type (`serial`, and `ble` when the BLE link is built in). */
  factories: LinkFactories;
  /** Where readings go: the outbox writer, so links get its no-loss guarantees. */
  sink: Pick<ReadingSink, "append">;
  logger: Logger;
  /** The gateway's `linkPaths`, handed to every link. */
  linkPaths?: readonly string[];
  /** Backoff between attempts to build or start a link that failed to (defaults 1s, 60s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  clock?: () => number;
  random?: () => number;
}

/** A configured link as `fieldgate-agent links` lists it. */
export interface LinkView extends LinkStatus {
  enabled: boolean;
}

/** Events of the manager. */
export interface LinkManagerEvents {
  /** A link's state changed, or the set of links did. */
  change: [];
}

interface Entry {
  config: LinkConfig;
  link: Link | undefined;
  /** Set while the link could not be built or started; it is retried. */
  failure: LinkStatus | undefined;
  retry: NodeJS.Timeout | undefined;
  backoff: Backoff;
  retired: boolean;
}

const ZERO = { readings: 0, framingErrors: 0, reconnects: 0, exceptions: 0, timeouts: 0 };

/**
 * Owns the running links: applies the steps `reconcileLinks` computes, hands each link a sink that
 * stamps its readings with the link id (`source`) and appends them to the outbox, and retries a
 * link that failed to build or start with capped backoff. `apply` calls run one at a time.
 */
export class LinkManager extends EventEmitter<LinkManagerEvents> {
  private readonly entries = new Map<string, Entry>();
  private configured: LinkConfig[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly clock: () => number;
  private lastAppendWarning = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: LinkManagerOptions) {
    super();
    this.clock = options.clock ?? Date.now;
  }

  /** Reconciles toward `desired` (already checked by `checkLinks`); resolves with the steps taken. */
  apply(desired: readonly LinkConfig[]): Promise<LinkStep[]> {
    const run = this.queue.then(() => this.applyNow(structuredClone([...desired])));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Every configured link, disabled ones included, in config order. */
  list(): LinkView[] {
    return this.configured.map((config) => {
      const entry = this.entries.get(config.id);
      const enabled = config.enabled !== false;
      const status: LinkStatus = entry?.failure ??
        entry?.link?.status() ?? {
          id: config.id,
          type: config.type,
          state: "disconnected",
          since: this.clock(),
          reason: enabled ? "not started" : "disabled in the config",
          counters: { ...ZERO },
        };
      return { ...status, enabled };
    });
  }

  /** The configured links (for health thresholds). */
  configs(): LinkConfig[] {
    return structuredClone(this.configured);
  }

  /** Stops every link; the manager then refuses nothing but does nothing either. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue;
    await Promise.all([...this.entries.keys()].map((id) => this.stopLink(id)));
    this.configured = [];
    this.emit("change");
  }

  private async applyNow(desired: LinkConfig[]): Promise<LinkStep[]> {
    if (this.stopped) return [];
    const current = [...this.entries.values()].map((e) => ({ id: e.config.id, config: e.config }));
    const steps = reconcileLinks(current, desired);
    this.configured = desired;
    // Every port a restart or a removal frees is released before any link opens one.
    for (const step of steps) {
      if (step.action !== "start") await this.stopLink(step.id);
    }
    for (const step of steps) {
      if (step.action !== "stop") this.startLink(step.config);
      const how = step.action === "stop" ? `stopped (${step.reason})` : `${step.action}ed`;
      this.options.logger.info({ link: step.id, action: step.action }, `link ${step.id} ${how}`);
    }
    this.emit("change");
    return steps;
  }

  private startLink(config: LinkConfig): void {
    const entry: Entry = {
      config,
      link: undefined,
      failure: undefined,
      retry: undefined,
      retired: false,
      backoff: new Backoff({
        minMs: this.options.retryMinMs ?? 1000,
        maxMs: this.options.retryMaxMs ?? 60_000,
        ...(this.options.random && { random: this.options.random }),
      }),
    };
    this.entries.set(config.id, entry);
    this.tryStart(entry);
  }

  private tryStart(entry: Entry): void {
    const { config } = entry;
    entry.retry = undefined;
    const factory = this.options.factories[config.type] as LinkFactory | undefined;
    if (!factory) {
      // Retrying cannot help: this agent has no code for the type.
      entry.failure = this.failureStatus(config, "unavailable", `this agent has no ${config.type} link support`);
      this.emit("change");
      return;
    }
    let link: Link | undefined;
    try {
      link = factory(config, {
        sink: this.sinkFor(entry),
        logger: this.options.logger,
        ...(this.options.linkPaths && { linkPaths: this.options.linkPaths }),
      });
      link.start();
      entry.link = link;
      entry.failure = undefined;
      entry.backoff.reset();
    } catch (err) {
      void link?.stop().catch(() => undefined);
      const delay = entry.backoff.next();
      const message = `${(err as Error).message}; retrying in ${Math.round(delay / 1000)}s`;
      this.options.logger.warn({ link: config.id, code: "LINK_START_FAILED" }, `link ${config.id}: ${message}`);
      entry.failure = this.failureStatus(config, "error", message);
      entry.retry = setTimeout(() => {
        if (!entry.retired && !this.stopped) this.tryStart(entry);
      }, delay);
      entry.retry.unref();
    }
    this.emit("change");
  }

  private failureStatus(config: LinkConfig, state: "error" | "unavailable", message: string): LinkStatus {
    const now = this.clock();
    return {
      id: config.id,
      type: config.type,
      state,
      since: now,
      reason: message,
      counters: { ...ZERO },
      lastError: { ts: now, code: "LINK_START_FAILED", message },
    };
  }

  private async stopLink(id: string): Promise<void> {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.retired = true;
    this.entries.delete(id);
    if (entry.retry) clearTimeout(entry.retry);
    try {
      await entry.link?.stop();
    } catch (err) {
      this.options.logger.warn({ link: id, err: (err as Error).message }, `link ${id} did not stop cleanly`);
    }
  }

  /** The sink one link writes to; it goes quiet once the link is retired, so a late callback changes nothing. */
  private sinkFor(entry: Entry): LinkSink {
    return {
      readings: (linkId, ts, readings) => {
        if (entry.retired) return;
        this.append(linkId, ts, readings);
      },
      stateChanged: () => {
        if (!entry.retired) this.emit("change");
      },
    };
  }

  private append(source: string, ts: number, readings: readonly LinkReading[]): void {
    const rows: Reading[] = readings.map((r) => ({
      name: r.name,
      ts,
      value: r.value,
      ...(r.unit !== undefined && { unit: r.unit }),
      source,
    }));
    try {
      this.options.sink.append(rows);
    } catch (err) {
      // The outbox refuses what the cloud would refuse; the link's decoders should never produce it.
      const now = this.clock();
      if (now - this.lastAppendWarning >= 60_000) {
        this.lastAppendWarning = now;
        this.options.logger.warn(
          { link: source, err: (err as Error).message },
          `readings of link ${source} were not stored`,
        );
      }
    }
  }
}

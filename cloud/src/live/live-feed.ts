/** Where a device belongs: what a live subscriber's rights are checked against. */
export interface LiveDeviceRef {
  orgId: number;
  uuid: string;
  /** The device's group path, "/1/4/". */
  groupPath: string;
}

/** Where a rollout belongs: every group its devices are in (the right on a rollout is the right on all of them). */
export interface LiveRolloutRef {
  orgId: number;
  groupPaths: readonly string[];
}

/** What changed, as subscribers get it: resolved once per flush, for every subscriber. */
export type LiveEvent =
  | { kind: "device"; device: LiveDeviceRef }
  | { kind: "job"; device: LiveDeviceRef; jobId: string }
  | { kind: "rollout"; rolloutId: number; rollout: LiveRolloutRef };

/**
 * What the services that change state are given: cheap, synchronous, never throwing. A publisher
 * names the thing by id; the feed finds out where it belongs when it delivers.
 */
export interface LiveSink {
  /** The device's row changed. `ref` is given where the row is gone by delivery time (a delete). */
  device(deviceId: number, ref?: LiveDeviceRef): void;
  /** A job of the device changed (created, progressed, finished, cancelled). */
  job(deviceId: number, jobId: string): void;
  /** A rollout's state, phase or progress changed. */
  rollout(rolloutId: number): void;
}

/** A sink that drops everything: the default of services built without a feed (tests, tools). */
export const NO_LIVE: LiveSink = {
  device: () => undefined,
  job: () => undefined,
  rollout: () => undefined,
};

type Awaitable<T> = T | Promise<T>;

/** How the feed finds where a published id belongs (by a database query, perhaps); undefined when it is gone. */
export interface LiveResolver {
  device(deviceId: number): Awaitable<LiveDeviceRef | undefined>;
  rollout(rolloutId: number): Awaitable<LiveRolloutRef | undefined>;
}

export interface LiveFeedOptions {
  resolver: LiveResolver;
  /** Changes of one thing within this long are delivered once, at its end. */
  coalesceMs?: number;
  /** At most this many distinct things wait for delivery; further ones are dropped (and counted). */
  maxPending?: number;
  /** Called when delivering fails in a way the feed cannot fix (a resolver or subscriber threw). */
  onError?: (err: unknown) => void;
}

export const LIVE_COALESCE_MS = 250;
export const LIVE_MAX_PENDING = 50_000;

type Pending =
  | { kind: "device"; deviceId: number; ref?: LiveDeviceRef }
  | { kind: "job"; deviceId: number; jobId: string }
  | { kind: "rollout"; rolloutId: number };

export type LiveSubscriber = (events: readonly LiveEvent[]) => void;

/**
 * The in-process feed of what changed, for `GET /api/v1/live`. Publishing only records a key; a
 * burst on one thing (a fleet's reconnect storm, a job's progress) is delivered once per
 * `coalesceMs`, as one batch to each subscriber. Bounded (`maxPending` keys), and a publisher is
 * never thrown into nor slowed by a subscriber.
 */
export class LiveFeed implements LiveSink {
  private pending = new Map<string, Pending>();
  private readonly subscribers = new Set<LiveSubscriber>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private readonly coalesceMs: number;
  private readonly maxPending: number;
  /** Changes dropped because `maxPending` things were already waiting. */
  dropped = 0;

  constructor(private readonly options: LiveFeedOptions) {
    this.coalesceMs = options.coalesceMs ?? LIVE_COALESCE_MS;
    this.maxPending = options.maxPending ?? LIVE_MAX_PENDING;
  }

  device(deviceId: number, ref?: LiveDeviceRef): void {
    this.add(`d:${deviceId}`, ref ? { kind: "device", deviceId, ref } : { kind: "device", deviceId });
  }

  job(deviceId: number, jobId: string): void {
    this.add(`j:${jobId}`, { kind: "job", deviceId, jobId });
  }

  rollout(rolloutId: number): void {
    this.add(`r:${rolloutId}`, { kind: "rollout", rolloutId });
  }

  /** Adds a subscriber; returns how to remove it. */
  subscribe(subscriber: LiveSubscriber): () => void {
    this.subscribers.add(subscriber);
    return () => {
      this.subscribers.delete(subscriber);
    };
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Delivers what waits now (the timer does this by itself). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = new Map();
    if (batch.size === 0 || this.subscribers.size === 0) return;
    const resolved: Awaitable<LiveEvent | undefined>[] = [];
    for (const item of batch.values()) {
      try {
        resolved.push(this.resolve(item));
      } catch (err) {
        this.options.onError?.(err);
      }
    }
    // A resolver that answers at once is delivered at once; one that queries is awaited, in order.
    if (!resolved.some((r) => r instanceof Promise)) {
      this.deliver(resolved as (LiveEvent | undefined)[]);
      return;
    }
    void Promise.all(
      resolved.map((r) =>
        Promise.resolve(r).catch((err: unknown) => {
          this.options.onError?.(err);
          return undefined;
        }),
      ),
    ).then((events) => this.deliver(events));
  }

  private deliver(resolved: readonly (LiveEvent | undefined)[]): void {
    const events = resolved.filter((e): e is LiveEvent => e !== undefined);
    if (events.length === 0 || this.closed) return;
    for (const subscriber of [...this.subscribers]) {
      try {
        subscriber(events);
      } catch (err) {
        this.options.onError?.(err);
      }
    }
  }

  /** Stops delivering; later publishes are ignored. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
    this.subscribers.clear();
  }

  private add(key: string, item: Pending): void {
    // Nobody listens: nothing to remember, and a storm costs only this check.
    if (this.closed || this.subscribers.size === 0) return;
    const known = this.pending.get(key);
    if (known) {
      // A delete's ref is kept: the row it came from is gone.
      if (item.kind === "device" && item.ref) this.pending.set(key, item);
      return;
    }
    if (this.pending.size >= this.maxPending) {
      this.dropped += 1;
      return;
    }
    this.pending.set(key, item);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.coalesceMs);
      this.timer.unref?.();
    }
  }

  private resolve(item: Pending): Awaitable<LiveEvent | undefined> {
    const { resolver } = this.options;
    switch (item.kind) {
      case "device":
        return then(item.ref ?? resolver.device(item.deviceId), (device) => device && { kind: "device", device });
      case "job":
        return then(resolver.device(item.deviceId), (device) => device && { kind: "job", device, jobId: item.jobId });
      case "rollout":
        return then(
          resolver.rollout(item.rolloutId),
          (rollout) => rollout && { kind: "rollout", rolloutId: item.rolloutId, rollout },
        );
    }
  }
}

/** `f` of the value, at once when it is there, else when it comes. */
function then<T, R>(value: Awaitable<T>, f: (value: T) => R): Awaitable<R> {
  return value instanceof Promise ? value.then(f) : f(value);
}

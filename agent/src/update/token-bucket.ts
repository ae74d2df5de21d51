/** Time for the bucket: `now` in ms and `sleep`; tests inject a fake one or use vitest fake timers. */
export interface BucketClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** The real clock, read at call time so vitest's fake timers replace it. */
export const realClock: BucketClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * A token bucket for bytes: `take(n)` resolves when `n` bytes may pass. It holds `ratePerS` bytes
 * a second with a burst of at most `burst` bytes, so over any span `t` (s) no more than
 * `burst + ratePerS * t` bytes pass. A chunk larger than the burst waits until the bucket is full,
 * then leaves it in debt, which the following chunks pay back.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly clock: BucketClock;
  readonly burst: number;

  constructor(
    readonly ratePerS: number,
    options: { burst?: number; clock?: BucketClock } = {},
  ) {
    if (!(ratePerS > 0)) throw new RangeError(`rate must be positive, got ${ratePerS}`);
    const clock = options.clock ?? realClock;
    this.clock = clock;
    // A quarter second of traffic, at least one TLS record: smooth, yet not one wake-up per packet.
    this.burst = options.burst ?? Math.max(16 * 1024, Math.ceil(ratePerS / 4));
    this.tokens = this.burst;
    this.last = clock.now();
  }

  async take(bytes: number): Promise<void> {
    this.refill();
    const needed = Math.min(bytes, this.burst);
    while (this.tokens < needed) {
      await this.clock.sleep(Math.ceil(((needed - this.tokens) * 1000) / this.ratePerS));
      this.refill();
    }
    this.tokens -= bytes;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.ratePerS) / 1000);
    this.last = now;
  }
}

const RATE_UNITS: Record<string, number> = {
  B: 1,
  kB: 1000,
  KB: 1000,
  KiB: 1024,
  MB: 1000 ** 2,
  MiB: 1024 ** 2,
  GB: 1000 ** 3,
  GiB: 1024 ** 3,
};

/** `512KiB/s`, `2MB/s`, `100000B/s` (or a bare number of bytes per second) → bytes per second. */
export function parseByteRate(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)?(\/s)?$/.exec(text.trim());
  if (!m || (m[2] !== undefined && m[3] === undefined)) return undefined;
  const rate = Math.floor(Number(m[1]) * (RATE_UNITS[m[2] ?? "B"] ?? 1));
  return rate >= 1 ? rate : undefined;
}

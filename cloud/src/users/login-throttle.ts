/** Consecutive failed logins an account may have before further tries are slowed. */
export const FREE_LOGIN_FAILURES = 5;
/** The first delay after FREE_LOGIN_FAILURES failures; it doubles with each further failure. */
export const FIRST_LOGIN_DELAY_MS = 1_000;
/** The delay never grows beyond this. */
export const MAX_LOGIN_DELAY_MS = 60_000;
/** An account's count is forgotten after this long without a failure. */
export const LOGIN_FAILURE_MEMORY_MS = 60 * 60_000;
/** At most this many emails are remembered; the least recently failed is forgotten first. */
export const MAX_TRACKED_LOGINS = 100_000;

interface Failures {
  count: number;
  lastAt: number;
}

/**
 * Progressive login delay per account (keyed by the lowercased email, known or not, so the
 * answers never tell whether an email exists). After FREE_LOGIN_FAILURES consecutive failures,
 * the next try is accepted only FIRST_LOGIN_DELAY_MS after the last failure, doubling with each
 * further failure up to MAX_LOGIN_DELAY_MS. Nobody can lock an account out: a try after the
 * delay with the right password logs in and resets the count. Bounded, in memory.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, Failures>();

  constructor(
    private readonly clock: () => number = Date.now,
    private readonly maxTracked = MAX_TRACKED_LOGINS,
    /** The first delay (`serve --login-delay`); doubles with each further failure. */
    private readonly firstDelayMs = FIRST_LOGIN_DELAY_MS,
  ) {}

  /** Milliseconds until the account's next try is accepted; 0 when it may try now. */
  waitMs(email: string): number {
    const entry = this.entry(email);
    if (!entry || entry.count < FREE_LOGIN_FAILURES) return 0;
    const delay = Math.min(this.firstDelayMs * 2 ** (entry.count - FREE_LOGIN_FAILURES), MAX_LOGIN_DELAY_MS);
    return Math.max(0, entry.lastAt + delay - this.clock());
  }

  failed(email: string): void {
    const key = email.toLowerCase();
    const count = (this.entry(key)?.count ?? 0) + 1;
    // Re-inserting keeps the map in order of last failure, so the oldest is evicted first.
    this.failures.delete(key);
    this.failures.set(key, { count, lastAt: this.clock() });
    while (this.failures.size > this.maxTracked) {
      const oldest = this.failures.keys().next().value;
      if (oldest === undefined) break;
      this.failures.delete(oldest);
    }
  }

  succeeded(email: string): void {
    this.failures.delete(email.toLowerCase());
  }

  /** How many emails are remembered (for tests). */
  get size(): number {
    return this.failures.size;
  }

  private entry(email: string): Failures | undefined {
    const key = email.toLowerCase();
    const entry = this.failures.get(key);
    if (entry && this.clock() - entry.lastAt >= LOGIN_FAILURE_MEMORY_MS) {
      this.failures.delete(key);
      return undefined;
    }
    return entry;
  }
}

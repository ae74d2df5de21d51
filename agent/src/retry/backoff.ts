/** Options of a full-jitter exponential backoff. */
export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  /** Injectable for tests; returns [0, 1). */
  random?: () => number;
}

/**
 * Full-jitter exponential backoff bounded below: the n-th delay is uniform in
 * [min, min(max, min·2ⁿ)]. The floor keeps a refused client from hammering the server;
 * the jitter spreads a fleet that lost the cloud at the same moment.
 */
export class Backoff {
  private attempt = 0;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; grows until it reaches `maxMs`. */
  next(): number {
    const { minMs, maxMs } = this.options;
    const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    return Math.round(minMs + this.random() * (ceiling - minMs));
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

/** Resolves after `ms`, or early (without rejecting) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Percentiles of a latency series, in milliseconds. */
export interface LatencySummary {
  count: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

/**
 * Keeps latency samples for percentiles. Beyond `capacity` it keeps a uniform reservoir sample,
 * so a long run stays bounded in memory and its percentiles stay unbiased.
 */
export class LatencyRecorder {
  private readonly samples: number[] = [];
  private seen = 0;
  private maxSeen = 0;

  constructor(
    private readonly capacity = 200_000,
    private readonly random: () => number = Math.random,
  ) {}

  record(ms: number): void {
    this.seen += 1;
    if (ms > this.maxSeen) this.maxSeen = ms;
    if (this.samples.length < this.capacity) {
      this.samples.push(ms);
      return;
    }
    const slot = Math.floor(this.random() * this.seen);
    if (slot < this.capacity) this.samples[slot] = ms;
  }

  get count(): number {
    return this.seen;
  }

  summary(): LatencySummary {
    if (this.seen === 0) return { count: 0, p50: null, p99: null, max: null };
    const sorted = [...this.samples].sort((a, b) => a - b);
    return {
      count: this.seen,
      p50: round(percentile(sorted, 0.5)),
      p99: round(percentile(sorted, 0.99)),
      max: round(this.maxSeen),
    };
  }
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

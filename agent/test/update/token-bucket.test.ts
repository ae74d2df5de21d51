import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parseByteRate, TokenBucket } from "../../src/update/token-bucket.js";

describe("TokenBucket (fake timers)", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Pushes `chunks` through the bucket as fast as it allows; records when each one passed. */
  async function pump(bucket: TokenBucket, chunks: number[]): Promise<{ at: number; total: number }[]> {
    const passed: { at: number; total: number }[] = [];
    let total = 0;
    const run = (async () => {
      for (const n of chunks) {
        await bucket.take(n);
        total += n;
        passed.push({ at: Date.now(), total });
      }
    })();
    while (passed.length < chunks.length) await vi.advanceTimersByTimeAsync(10);
    await run;
    return passed;
  }

  it("holds the rate: after the burst, never more than rate × elapsed", async () => {
    const bucket = new TokenBucket(100_000, { burst: 20_000 });
    const passed = await pump(bucket, Array(100).fill(16_384));
    for (const p of passed) expect(p.total).toBeLessThanOrEqual(20_000 + (100_000 * p.at) / 1000 + 16_384);
    // And it is not slower than it must be: 1.6 MB at 100 kB/s is about 16 s.
    const last = passed.at(-1) as { at: number; total: number };
    expect(last.at).toBeGreaterThanOrEqual(((last.total - 20_000) * 1000) / 100_000 - 20);
    expect(last.at).toBeLessThan(((last.total - 20_000) * 1000) / 100_000 + 500);
  });

  it("lets a burst pass at once and then waits", async () => {
    const bucket = new TokenBucket(1000, { burst: 1000 });
    const passed = await pump(bucket, [500, 500, 500]);
    expect(passed.map((p) => p.at)).toEqual([0, 0, 500]);
  });

  it("a chunk larger than the burst waits for a full bucket and leaves a debt the next chunk pays", async () => {
    const bucket = new TokenBucket(1000, { burst: 100 });
    const passed = await pump(bucket, [100, 1000, 100]);
    // 1000 bytes pass when the bucket is full again (100 ms), then 1000 ms of debt and 100 more.
    expect(passed.map((p) => p.at)).toEqual([0, 100, 1100]);
  });

  it("idle time refills only up to the burst", async () => {
    const bucket = new TokenBucket(1000, { burst: 200 });
    await vi.advanceTimersByTimeAsync(60_000);
    const passed = await pump(bucket, [200, 200]);
    expect(passed.map((p) => p.at)).toEqual([60_000, 60_200]);
  });
});

describe("parseByteRate", () => {
  it.each([
    ["512KiB/s", 512 * 1024],
    ["2MB/s", 2_000_000],
    ["1.5MiB/s", 1.5 * 1024 * 1024],
    ["100000B/s", 100_000],
    ["100000", 100_000],
    ["64kB/s", 64_000],
  ])("%s is %d bytes per second", (text, rate) => {
    expect(parseByteRate(text)).toBe(rate);
  });

  it.each(["", "fast", "0B/s", "512KiB", "-1MB/s", "2 Mbit/s", "1e6B/s"])("refuses %j", (text) => {
    expect(parseByteRate(text)).toBeUndefined();
  });
});

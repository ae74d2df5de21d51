import { describe, expect, it } from "vitest";
import { Backoff } from "../../src/retry/backoff.js";

describe("Backoff", () => {
  it("stays within [min, min(max, min·2ⁿ)] and resets", () => {
    const lows = new Backoff({ minMs: 1000, maxMs: 30_000, random: () => 0 });
    expect([lows.next(), lows.next(), lows.next()]).toEqual([1000, 1000, 1000]);
    const highs = new Backoff({ minMs: 1000, maxMs: 30_000, random: () => 0.999999 });
    expect(Array.from({ length: 7 }, () => highs.next())).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    highs.reset();
    expect(highs.next()).toBe(1000);
  });
});

import { describe, expect, it } from "vitest";
import { mannWhitneyU, median } from "./rank-test.js";

describe("the Mann–Whitney U test of the timing tests", () => {
  it("matches the textbook value for two separated samples", () => {
    const a = Array.from({ length: 10 }, (_, i) => i + 1);
    const b = Array.from({ length: 10 }, (_, i) => i + 11);
    const { u, z, p } = mannWhitneyU(a, b);
    expect(u).toBe(0);
    // z = (0 − 50) / √(10·10·21/12) = −3.780; two-sided p = 1.57e-4.
    expect(z).toBeCloseTo(-3.78, 2);
    expect(p).toBeCloseTo(1.57e-4, 5);
  });

  it("finds no difference between interleaved draws of one distribution, and a clear one after a shift", () => {
    let seed = 42;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const a = Array.from({ length: 2000 }, () => 100 + 50 * next());
    const b = Array.from({ length: 2000 }, () => 100 + 50 * next());
    expect(mannWhitneyU(a, b).p).toBeGreaterThan(1e-3);
    expect(
      mannWhitneyU(
        a.map((v) => v + 5),
        b,
      ).p,
    ).toBeLessThan(1e-10);
  });

  it("handles ties (all equal: no difference) and gives medians of odd and even samples", () => {
    expect(mannWhitneyU([3, 3, 3], [3, 3, 3]).p).toBeCloseTo(1, 6);
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});

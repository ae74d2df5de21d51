import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "../src/duration.js";

describe("durations", () => {
  it("parses units, compounds and bare seconds", () => {
    expect(parseDuration("10m")).toBe(600_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("90")).toBe(90_000);
    expect(parseDuration("1.5s")).toBe(1500);
  });
  it("returns undefined for anything else", () => {
    for (const bad of ["", "m", "10x", "10m junk", "-5s", "ten"]) expect(parseDuration(bad), bad).toBeUndefined();
  });
  it("formats for humans", () => {
    expect(formatDuration(598_000)).toBe("9m 58s");
    expect(formatDuration(0)).toBe("0ms");
    expect(formatDuration(90_061_000)).toBe("1d 1h 1m 1s");
  });
});

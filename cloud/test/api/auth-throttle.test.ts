import { describe, expect, it } from "vitest";
import { AuthThrottle, sourceOf } from "../../src/api/auth-throttle.js";

describe("auth throttle (injected clock)", () => {
  const setup = () => {
    let now = 1_000_000;
    const throttle = new AuthThrottle({ maxFailures: 3, windowMs: 60_000 }, () => now);
    return { throttle, advance: (ms: number) => (now += ms) };
  };

  it("lets a source fail up to the limit, then slows it until its oldest failure leaves the window", () => {
    const { throttle, advance } = setup();
    throttle.recordFailure("10.0.0.1");
    advance(10_000);
    throttle.recordFailure("10.0.0.1");
    expect(throttle.retryAfterSeconds("10.0.0.1")).toBe(0);
    advance(10_000);
    throttle.recordFailure("10.0.0.1");
    // The first failure was 20 s ago: it leaves the 60 s window in 40 s.
    expect(throttle.retryAfterSeconds("10.0.0.1")).toBe(40);
    advance(39_000);
    expect(throttle.retryAfterSeconds("10.0.0.1")).toBe(1);
    advance(1_000);
    expect(throttle.retryAfterSeconds("10.0.0.1")).toBe(0);
    // One more failure makes three within the window again (50 s ago, 40 s ago, now): the oldest leaves in 10 s.
    throttle.recordFailure("10.0.0.1");
    expect(throttle.retryAfterSeconds("10.0.0.1")).toBe(10);
  });

  it("keys by source only: another address is never slowed by this one's failures", () => {
    const { throttle } = setup();
    for (let i = 0; i < 5; i++) throttle.recordFailure("10.0.0.1");
    expect(throttle.retryAfterSeconds("10.0.0.1")).toBeGreaterThan(0);
    expect(throttle.retryAfterSeconds("10.0.0.2")).toBe(0);
    expect(throttle.retryAfterSeconds("::ffff:10.0.0.1")).toBeGreaterThan(0);
  });

  it("forgets failures older than the window", () => {
    const { throttle, advance } = setup();
    throttle.recordFailure("10.0.0.1");
    throttle.recordFailure("10.0.0.1");
    advance(60_001);
    throttle.recordFailure("10.0.0.1");
    expect(throttle.retryAfterSeconds("10.0.0.1")).toBe(0);
  });

  it("treats an IPv6 /64 as one source, and an IPv4-mapped address as its IPv4 one", () => {
    expect(sourceOf("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("2001:db8:1:2:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(sourceOf("::1")).toBe("0:0:0:0::/64");
    expect(sourceOf("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(sourceOf("192.0.2.7")).toBe("192.0.2.7");
  });
});

import { isIPv6 } from "node:net";
import { FieldgateError } from "@fieldgate/shared";
import type { FastifyInstance, FastifyRequest } from "fastify";

export interface AuthThrottleLimits {
  /** Failed attempts one source may make within the window before it is slowed. */
  maxFailures: number;
  windowMs: number;
}

/** Sources remembered at most; the oldest are forgotten first, so a spray of addresses cannot grow memory. */
const MAX_SOURCES = 10_000;

/**
 * Slows a source address after repeated failed authentication attempts: once it has failed
 * `maxFailures` times within the window, its attempts are refused (429 `AUTH_THROTTLED`, with
 * `Retry-After`) until the oldest of those failures leaves the window. It is keyed by source, never
 * by credential, user or device, so nobody can lock out a credential they do not hold; a correct
 * secret from another address is unaffected.
 */
export class AuthThrottle {
  /** Failure times per source, oldest first, at most `maxFailures` each. */
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limits: AuthThrottleLimits,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Seconds until `address` may try again, or 0 when it may try now. */
  retryAfterSeconds(address: string): number {
    const times = this.recent(sourceOf(address));
    if (times.length < this.limits.maxFailures) return 0;
    const oldest = times[0] ?? this.clock();
    return Math.max(1, Math.ceil((oldest + this.limits.windowMs - this.clock()) / 1000));
  }

  recordFailure(address: string): void {
    const source = sourceOf(address);
    const times = [...this.recent(source), this.clock()].slice(-this.limits.maxFailures);
    // Re-inserted last: Map order is then least recently failed first, for eviction.
    this.failures.delete(source);
    this.failures.set(source, times);
    if (this.failures.size > MAX_SOURCES) this.failures.delete(this.failures.keys().next().value as string);
  }

  private recent(source: string): number[] {
    const cutoff = this.clock() - this.limits.windowMs;
    const times = (this.failures.get(source) ?? []).filter((t) => t > cutoff);
    if (times.length === 0) this.failures.delete(source);
    return times;
  }
}

/**
 * One source: an IPv4 address, or the /64 of an IPv6 one (a host usually holds a whole /64, so
 * counting single addresses would let it rotate through them).
 */
export function sourceOf(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1] as string;
  if (!isIPv6(address)) return address;
  const [head = "", tail = ""] = address.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = address.includes("::")
    ? [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

/**
 * The answer that means "that operator secret was wrong": a guess, not a device with a stale
 * certificate. Logins have their own per-account delay (`LOGIN_THROTTLED`, users/login-throttle.ts).
 */
const GUESS_FAILURES = new Set(["AUTH_REQUIRED"]);

/**
 * Wires the throttle into the API: a throttled source is answered before any secret is checked,
 * and every wrong operator credential or session token it sends counts as a failure. Device traffic (enrollment, mTLS routes) is never throttled: a gateway retrying with a
 * bad clock must not lock out its whole site behind one NAT. Installed before access control.
 */
export function installAuthThrottle(app: FastifyInstance, throttle: AuthThrottle): void {
  app.addHook("onRequest", async (request, reply) => {
    if (!presentsSecret(request)) return;
    const retryAfter = throttle.retryAfterSeconds(request.ip);
    if (retryAfter === 0) return;
    void reply.header("retry-after", String(retryAfter));
    throw new FieldgateError(
      "AUTH_THROTTLED",
      `too many failed sign-in attempts from this address; retry in ${retryAfter} s`,
      "authorization",
    );
  });
  app.addHook("onError", async (request, _reply, error) => {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && GUESS_FAILURES.has(code) && presentsSecret(request)) {
      throttle.recordFailure(request.ip);
    }
  });
}

/** A request that carries a secret to check. */
function presentsSecret(request: FastifyRequest): boolean {
  return request.headers.authorization !== undefined;
}

import { EventEmitter } from "node:events";
import type { LinkConfig } from "@fieldgate/shared";
import { describe, expect, it } from "vitest";
import type { CheckResult } from "../../src/health/health-check.js";
import type { LinkState } from "../../src/links/link.js";
import { LinkHealth } from "../../src/links/link-health.js";
import type { LinkView } from "../../src/links/link-manager.js";

function fakeLinks(configs: LinkConfig[]) {
  const states = new Map<string, LinkState>(configs.map((c) => [c.id, "connecting"]));
  const emitter = new EventEmitter();
  return {
    states,
    configs: () => configs,
    list: (): LinkView[] =>
      configs.map((c) => ({
        id: c.id,
        type: c.type,
        enabled: c.enabled !== false,
        state: states.get(c.id) ?? "disconnected",
        since: 0,
        reason: "cable?",
        counters: { readings: 0, framingErrors: 0, reconnects: 0, exceptions: 0, timeouts: 0 },
      })),
    on: (e: "change", l: () => void) => emitter.on(e, l),
    off: (e: "change", l: () => void) => emitter.off(e, l),
  };
}

const serial = (id: string, extra: Record<string, unknown> = {}): LinkConfig =>
  ({ id, type: "serial", path: "/dev/x", protocol: { type: "lines", format: "kv" }, ...extra }) as LinkConfig;

describe("LinkHealth", () => {
  it("warns after downWarnAfter, goes critical after downCriticalAfter, and is ok once connected", () => {
    let now = 0;
    const checks = new Map<string, CheckResult>();
    const links = fakeLinks([serial("meter", { downWarnAfter: "10s", downCriticalAfter: "1m" }), serial("plain")]);
    const health = new LinkHealth({
      links,
      target: { set: (r) => checks.set(r.name, r), drop: (n) => checks.delete(n) },
      clock: () => now,
    });
    health.evaluate();
    expect(checks.get("link.meter")?.status).toBe("ok");
    now = 10_000;
    health.evaluate();
    expect(checks.get("link.meter")).toMatchObject({ status: "warning", message: "connecting for 10s: cable?" });
    expect(checks.get("link.plain")?.status).toBe("ok");
    now = 30_000;
    health.evaluate();
    expect(checks.get("link.plain")?.status).toBe("warning");
    now = 60_000;
    health.evaluate();
    expect(checks.get("link.meter")?.status).toBe("critical");
    // Without downCriticalAfter a down link only ever warns.
    now = 3_600_000;
    health.evaluate();
    expect(checks.get("link.plain")?.status).toBe("warning");
    links.states.set("meter", "connected");
    health.evaluate();
    expect(checks.get("link.meter")).toMatchObject({ status: "ok", message: "connected" });
    // Down again: the clock starts over.
    links.states.set("meter", "disconnected");
    health.evaluate();
    expect(checks.get("link.meter")?.status).toBe("ok");
  });

  it("drops the checks of removed and disabled links", () => {
    const checks = new Map<string, CheckResult>();
    const configs = [serial("a"), serial("b")];
    const links = fakeLinks(configs);
    const health = new LinkHealth({
      links,
      target: { set: (r) => checks.set(r.name, r), drop: (n) => checks.delete(n) },
    });
    health.evaluate();
    expect([...checks.keys()].sort()).toEqual(["link.a", "link.b"]);
    configs.splice(0, 1);
    configs[0] = serial("b", { enabled: false });
    health.evaluate();
    expect([...checks.keys()]).toEqual([]);
  });
});

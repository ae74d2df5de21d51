import type { LinkConfig } from "@fieldgate/shared";
import { describe, expect, it } from "vitest";
import { reconcileLinks, sameConfig } from "../../src/links/reconcile.js";

const serial = (id: string, path: string, extra: Partial<LinkConfig> = {}): LinkConfig =>
  ({ id, type: "serial", path, protocol: { type: "lines", format: "kv" }, ...extra }) as LinkConfig;

describe("reconcileLinks", () => {
  it("starts what is wanted and not running, in config order", () => {
    expect(reconcileLinks([], [serial("a", "/dev/a"), serial("b", "/dev/b")])).toEqual([
      { action: "start", id: "a", config: serial("a", "/dev/a") },
      { action: "start", id: "b", config: serial("b", "/dev/b") },
    ]);
  });

  it("does nothing when running equals wanted, whatever the key order", () => {
    const running = [{ id: "a", config: serial("a", "/dev/a") }];
    const reordered = {
      protocol: { format: "kv", type: "lines" },
      path: "/dev/a",
      type: "serial",
      id: "a",
    } as LinkConfig;
    expect(reconcileLinks(running, [reordered])).toEqual([]);
    expect(sameConfig({ a: 1, b: [1, { c: 2, d: 3 }] }, { b: [1, { d: 3, c: 2 }], a: 1 })).toBe(true);
    expect(sameConfig([1, 2], [2, 1])).toBe(false);
  });

  it("stops removed and disabled links first, then restarts changed ones, then starts new ones", () => {
    const running = [
      { id: "gone", config: serial("gone", "/dev/x") },
      { id: "changed", config: serial("changed", "/dev/y") },
      { id: "off", config: serial("off", "/dev/z") },
      { id: "same", config: serial("same", "/dev/s") },
    ];
    const desired = [
      serial("new", "/dev/x"),
      serial("changed", "/dev/y", { baudRate: 19200 } as Partial<LinkConfig>),
      serial("off", "/dev/z", { enabled: false }),
      serial("same", "/dev/s"),
    ];
    expect(reconcileLinks(running, desired).map((s) => `${s.action} ${s.id}`)).toEqual([
      "stop gone",
      "stop off",
      "restart changed",
      "start new",
    ]);
    expect(reconcileLinks(running, desired)[1]).toMatchObject({ reason: "disabled" });
  });

  it("never starts a disabled link", () => {
    expect(reconcileLinks([], [serial("a", "/dev/a", { enabled: false })])).toEqual([]);
  });
});

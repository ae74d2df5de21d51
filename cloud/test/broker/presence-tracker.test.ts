import type { Client } from "aedes";
import { describe, expect, it } from "vitest";
import { PresenceTracker } from "../../src/broker/presence-tracker.js";
import type { DeviceRegistry } from "../../src/registry/device-registry.js";

function tracker(clock: () => number) {
  const events: { code: string; message: string }[] = [];
  const presence: { online: boolean; reason: string | null }[] = [];
  const registry = {
    setPresence: async (_id: number, online: boolean, _at: number, reason: string | null) => {
      presence.push({ online, reason });
      return true;
    },
  } as unknown as DeviceRegistry;
  const recorder = {
    record: async (_id: number, code: string, _severity: string, message: string) => {
      events.push({ code, message });
    },
  };
  const t = new PresenceTracker(registry, recorder, clock);
  return { t, events, presence };
}
const client = (disconnectedCleanly = false) => ({ _disconnected: disconnectedCleanly }) as unknown as Client;

describe("PresenceTracker", () => {
  it("ignores the close of a connection that another one took over", async () => {
    const { t, presence } = tracker(() => 0);
    const first = client();
    const second = client();
    await t.connected(1, first);
    await t.connected(1, second);
    await t.disconnected(1, first);
    expect(presence.map((p) => p.online)).toEqual([true, true]);
    await t.disconnected(1, second);
    expect(presence.at(-1)).toEqual({ online: false, reason: "last-will" });
  });

  it("tells a clean DISCONNECT from a lost connection, and uses a reason given beforehand", async () => {
    const { t, presence } = tracker(() => 0);
    const clean = client(true);
    await t.connected(1, clean);
    await t.disconnected(1, clean);
    const revoked = client();
    await t.connected(2, revoked);
    t.markReason(revoked, "revoked");
    await t.disconnected(2, revoked);
    expect(presence.filter((p) => !p.online).map((p) => p.reason)).toEqual(["clean-disconnect", "revoked"]);
  });

  it("stores one device's presence changes in the order they happened, however slow a write is", async () => {
    const stored: string[] = [];
    let releaseFirst: () => void = () => undefined;
    const slowWrite = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    const registry = {
      setPresence: (_id: number, online: boolean) =>
        (online ? slowWrite : Promise.resolve()).then(() => {
          stored.push(online ? "online" : "offline");
          return true;
        }),
    } as unknown as DeviceRegistry;
    const t = new PresenceTracker(registry, { record: async () => undefined }, () => 0);
    const connection = client(true);
    const online = t.connected(1, connection);
    const offline = t.disconnected(1, connection);
    releaseFirst();
    await Promise.all([online, offline]);
    expect(stored).toEqual(["online", "offline"]);
  });

  it("reports conflicting client ids when takeovers repeat within a minute, once per ten minutes", () => {
    let now = 0;
    const { t, events } = tracker(() => now);
    t.connected(1, client());
    for (let i = 0; i < 3; i++) {
      now += 5000;
      t.connected(1, client());
    }
    expect(events.filter((e) => e.code === "CLIENT_ID_CONFLICT")).toHaveLength(1);
    now += 5000;
    t.connected(1, client());
    expect(events.filter((e) => e.code === "CLIENT_ID_CONFLICT")).toHaveLength(1);
    // A single reconnect racing its dead socket is not a conflict.
    const calm = tracker(() => 0);
    calm.t.connected(7, client());
    calm.t.connected(7, client());
    expect(calm.events.some((e) => e.code === "CLIENT_ID_CONFLICT")).toBe(false);
  });
});

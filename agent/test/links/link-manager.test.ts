import type { LinkConfig, Reading } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Link, LinkContext, LinkFactories, LinkState, LinkStatus } from "../../src/links/link.js";
import { LinkManager } from "../../src/links/link-manager.js";
import { memoryLogger } from "../helpers/logger.js";

const serial = (id: string, extra: Record<string, unknown> = {}): LinkConfig =>
  ({ id, type: "serial", path: `/dev/${id}`, protocol: { type: "lines", format: "kv" }, ...extra }) as LinkConfig;

/** A link that does what the test says, and remembers its life. */
class FakeLink implements Link {
  readonly type = "serial";
  started = 0;
  stopped = 0;
  state: LinkState = "connecting";
  constructor(
    readonly id: string,
    readonly context: LinkContext,
    readonly config: LinkConfig,
  ) {}
  start(): void {
    this.started += 1;
  }
  async stop(): Promise<void> {
    this.stopped += 1;
  }
  status(): LinkStatus {
    return {
      id: this.id,
      type: this.type,
      state: this.state,
      since: 0,
      counters: { readings: 0, framingErrors: 0, reconnects: 0, exceptions: 0, timeouts: 0 },
    };
  }
  set(state: LinkState): void {
    this.state = state;
    this.context.sink.stateChanged(this.status());
  }
}

describe("LinkManager", () => {
  let built: FakeLink[];
  let appended: Reading[];
  let failNext: number;
  let manager: LinkManager;
  const factories: LinkFactories = {
    serial: (config, context) => {
      if (failNext > 0) {
        failNext -= 1;
        throw new Error("driver missing");
      }
      const link = new FakeLink(config.id, context, config);
      built.push(link);
      return link;
    },
  };

  beforeEach(() => {
    vi.useFakeTimers();
    built = [];
    appended = [];
    failNext = 0;
    manager = new LinkManager({
      factories,
      sink: {
        append: (readings) => {
          appended.push(...readings);
          return { appended: readings.length, dropped: 0 };
        },
      },
      logger: memoryLogger().logger,
      retryMinMs: 1000,
      retryMaxMs: 4000,
      random: () => 1,
    });
  });
  afterEach(async () => {
    await manager.stop();
    vi.useRealTimers();
  });

  it("starts, restarts on change and stops on removal, leaving unchanged links alone", async () => {
    await manager.apply([serial("a"), serial("b")]);
    expect(built.map((l) => [l.id, l.started])).toEqual([
      ["a", 1],
      ["b", 1],
    ]);
    const [a, b] = built as [FakeLink, FakeLink];
    const steps = await manager.apply([serial("b", { baudRate: 19200 }), serial("c")]);
    expect(steps.map((s) => `${s.action} ${s.id}`)).toEqual(["stop a", "restart b", "start c"]);
    expect(a.stopped).toBe(1);
    expect(b.stopped).toBe(1);
    expect(built.map((l) => l.id)).toEqual(["a", "b", "b", "c"]);
    expect(manager.list().map((l) => l.id)).toEqual(["b", "c"]);
    expect(await manager.apply([serial("b", { baudRate: 19200 }), serial("c")])).toEqual([]);
  });

  it("stamps readings with the link id as their source and sends them to the outbox", async () => {
    await manager.apply([serial("meter")]);
    built[0]?.context.sink.readings("meter", 1000, [
      { name: "voltage", value: 230.5, unit: "V" },
      { name: "on", value: true },
    ]);
    expect(appended).toEqual([
      { name: "voltage", ts: 1000, value: 230.5, unit: "V", source: "meter" },
      { name: "on", ts: 1000, value: true, source: "meter" },
    ]);
  });

  it("ignores a stopped link's late callbacks", async () => {
    await manager.apply([serial("a")]);
    const old = built[0] as FakeLink;
    await manager.apply([]);
    old.context.sink.readings("a", 1, [{ name: "x", value: 1 }]);
    expect(appended).toEqual([]);
  });

  it("lists disabled links and links without an implementation, and reports state changes", async () => {
    const changes = vi.fn();
    manager.on("change", changes);
    await manager.apply([
      serial("off", { enabled: false }),
      {
        id: "env",
        type: "ble",
        match: { localName: "x" },
        characteristics: [],
      } as unknown as LinkConfig,
    ]);
    expect(built).toEqual([]);
    const [off, env] = manager.list();
    expect(off).toMatchObject({ id: "off", enabled: false, state: "disconnected", reason: "disabled in the config" });
    expect(env).toMatchObject({ id: "env", enabled: true, state: "unavailable" });
    expect(env?.reason).toContain("no ble link support");
    await manager.apply([serial("a")]);
    changes.mockClear();
    built[0]?.set("connected");
    expect(changes).toHaveBeenCalled();
    expect(manager.list()[0]?.state).toBe("connected");
  });

  it("retries a link that failed to start, with capped backoff", async () => {
    failNext = 3;
    await manager.apply([serial("a")]);
    expect(manager.list()[0]).toMatchObject({ state: "error", lastError: { code: "LINK_START_FAILED" } });
    expect(built).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1000); // 2nd attempt fails, next in 2s
    expect(built).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(2000); // 3rd attempt fails, next in 4s (the cap)
    expect(built).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(3999);
    expect(built).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(built).toHaveLength(1);
    expect(manager.list()[0]?.state).toBe("connecting");
  });

  it("cancels the retry of a link that is removed meanwhile", async () => {
    failNext = 1;
    await manager.apply([serial("a")]);
    await manager.apply([]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(built).toHaveLength(0);
  });
});

import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AccessPolicy, type Principal } from "../../src/access/access-policy.js";
import { type LiveDeviceRef, type LiveEvent, LiveFeed } from "../../src/live/live-feed.js";
import { LiveStreams } from "../../src/live/live-streams.js";

const devices = new Map<number, LiveDeviceRef>([
  [1, { orgId: 1, uuid: "u-1", groupPath: "/1/2/" }],
  [2, { orgId: 1, uuid: "u-2", groupPath: "/1/3/" }],
  [3, { orgId: 2, uuid: "u-3", groupPath: "/9/" }],
]);
const resolver = {
  device: (id: number) => devices.get(id),
  rollout: (id: number) => (id === 7 ? { orgId: 1, groupPaths: ["/1/2/"] } : undefined),
};

describe("LiveFeed", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("coalesces a burst per thing into one delivery per 250 ms", () => {
    const feed = new LiveFeed({ resolver });
    const batches: LiveEvent[][] = [];
    feed.subscribe((events) => batches.push([...events]));
    for (let i = 0; i < 1000; i++) feed.device(1);
    feed.device(2);
    feed.job(1, "job-a");
    feed.job(1, "job-a");
    feed.rollout(7);
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(249);
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(batches).toHaveLength(1);
    expect(batches[0]?.map((e) => e.kind)).toEqual(["device", "device", "job", "rollout"]);
    feed.device(1);
    vi.advanceTimersByTime(250);
    expect(batches).toHaveLength(2);
    expect(batches[1]).toEqual([{ kind: "device", device: devices.get(1) }]);
  });

  it("keeps a deleted device's ref, drops what cannot be resolved, and is bounded", () => {
    const feed = new LiveFeed({ resolver, maxPending: 2 });
    const batches: LiveEvent[][] = [];
    feed.subscribe((events) => batches.push([...events]));
    feed.device(99);
    feed.device(98, { orgId: 1, uuid: "gone", groupPath: "/1/" });
    feed.device(1);
    expect(feed.dropped).toBe(1);
    vi.advanceTimersByTime(250);
    expect(batches).toEqual([[{ kind: "device", device: { orgId: 1, uuid: "gone", groupPath: "/1/" } }]]);
  });

  it("never throws into the publisher, and remembers nothing without subscribers", () => {
    const errors: unknown[] = [];
    const feed = new LiveFeed({
      resolver: {
        device: () => {
          throw new Error("database closed");
        },
        rollout: () => undefined,
      },
      onError: (err) => errors.push(err),
    });
    feed.device(1);
    vi.advanceTimersByTime(250);
    expect(errors).toEqual([]);
    const unsubscribe = feed.subscribe(() => {
      throw new Error("subscriber broke");
    });
    expect(() => feed.device(1)).not.toThrow();
    vi.advanceTimersByTime(250);
    expect(errors).toHaveLength(1);
    unsubscribe();
    feed.close();
    expect(() => feed.rollout(7)).not.toThrow();
  });
});

describe("LiveStreams", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const viewerOf = (id: string, orgId: number, path: string): Principal => ({
    kind: "credential",
    id,
    orgId,
    grants: [{ groupId: Number(path.split("/").filter(Boolean).pop()), path, role: "viewer" }],
  });
  const read = (out: PassThrough) => {
    const chunks: string[] = [];
    out.on("data", (c: Buffer) => chunks.push(c.toString("utf8")));
    return chunks;
  };

  it("sends each stream only what its principal may read, in SSE framing", () => {
    const feed = new LiveFeed({ resolver });
    const streams = new LiveStreams(feed, new AccessPolicy());
    const whole = new PassThrough();
    const narrow = new PassThrough();
    const wholeText = read(whole);
    const narrowText = read(narrow);
    const root = viewerOf("c-root", 1, "/1/");
    const group3 = viewerOf("c-3", 1, "/1/3/");
    expect(streams.open(root, async () => root, whole).ok).toBe(true);
    expect(streams.open(group3, async () => group3, narrow).ok).toBe(true);
    feed.device(1);
    feed.device(2);
    feed.device(3);
    feed.job(1, "job-a");
    feed.rollout(7);
    vi.advanceTimersByTime(250);
    expect(wholeText.join("")).toBe(
      [
        "retry: 5000\n\n",
        'event: device\ndata: {"uuid":"u-1"}\n\n',
        'event: device\ndata: {"uuid":"u-2"}\n\n',
        'event: job\ndata: {"uuid":"u-1","jobId":"job-a"}\n\n',
        'event: rollout\ndata: {"id":7}\n\n',
      ].join(""),
    );
    expect(narrowText.join("")).toBe('retry: 5000\n\nevent: device\ndata: {"uuid":"u-2"}\n\n');
  });

  it("caps streams per principal and in all, pings, and ends a stream whose credential ended", async () => {
    const feed = new LiveFeed({ resolver });
    const streams = new LiveStreams(feed, new AccessPolicy(), {
      maxPerPrincipal: 2,
      maxTotal: 3,
      pingMs: 15_000,
      maxBufferedBytes: 1024,
    });
    const a = viewerOf("a", 1, "/1/");
    const b = viewerOf("b", 1, "/1/");
    let aValid = true;
    const outs = [new PassThrough(), new PassThrough(), new PassThrough(), new PassThrough()];
    const texts = outs.map(read);
    expect(streams.open(a, async () => (aValid ? a : undefined), outs[0] as PassThrough).ok).toBe(true);
    expect(streams.open(a, async () => (aValid ? a : undefined), outs[1] as PassThrough).ok).toBe(true);
    expect(streams.open(a, async () => a, new PassThrough())).toEqual({ ok: false, reason: "principal" });
    expect(streams.open(b, async () => b, outs[2] as PassThrough).ok).toBe(true);
    expect(streams.open(b, async () => b, outs[3] as PassThrough)).toEqual({ ok: false, reason: "total" });
    await vi.advanceTimersByTimeAsync(15_000);
    expect(texts[2]?.join("")).toContain(": ping\n\n");
    aValid = false;
    await vi.advanceTimersByTimeAsync(15_000);
    expect(outs[0]?.writableEnded).toBe(true);
    expect(outs[1]?.writableEnded).toBe(true);
    expect(streams.size).toBe(1);
    streams.closeAll();
    expect(outs[2]?.writableEnded).toBe(true);
    expect(streams.size).toBe(0);
    expect(feed.subscriberCount).toBe(0);
  });
});

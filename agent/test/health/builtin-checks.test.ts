import { describe, expect, it } from "vitest";
import {
  certificateCheck,
  clockSkewCheck,
  diskCheck,
  loadCheck,
  memoryCheck,
  outboxAgeCheck,
  outboxBacklogCheck,
  DEFAULT_THRESHOLDS as T,
} from "../../src/health/builtin-checks.js";
import type { ClockSkew, SkewSample } from "../../src/health/clock-skew.js";

const NOW = Date.parse("2030-06-01T12:00:00Z");
const now = () => NOW;

describe("built-in checks", () => {
  it("disk: free space against 15 % / 5 %", async () => {
    const disk = (free: number) => diskCheck(T, "/data", () => ({ bavail: free, blocks: 100 })).run();
    expect(await disk(40)).toEqual({ name: "disk", status: "ok", message: "40.0% free" });
    expect((await disk(15)).status).toBe("warning");
    expect((await disk(5)).status).toBe("critical");
  });

  it("memory: used share against 90 % / 97 %", async () => {
    const mem = (free: number) => memoryCheck(T, () => ({ free, total: 1000 })).run();
    expect(await mem(500)).toEqual({ name: "memory", status: "ok", message: "50.0% used" });
    expect((await mem(80)).status).toBe("warning");
    expect((await mem(20)).status).toBe("critical");
  });

  it("load: 5-minute average per core against 2 / 4", async () => {
    const load = (load5: number) => loadCheck(T, () => ({ load5, cores: 4 })).run();
    expect((await load(4)).status).toBe("ok");
    expect(await load(8)).toMatchObject({
      status: "warning",
      message: "load 8.00 over 5 min on 4 cores (2.00 per core)",
    });
    expect((await load(20)).status).toBe("critical");
  });

  it("clock: the latest measurement against 60 s / 300 s; under 2 s is noise", async () => {
    let sample: SkewSample | undefined;
    let error: string | undefined;
    const fake = { latest: () => sample, lastError: () => error } as unknown as ClockSkew;
    const run = () => clockSkewCheck(T, fake, now).run();
    expect(await run()).toMatchObject({ status: "unknown", message: "not measured yet" });
    error = "cannot reach https://cloud: ECONNREFUSED";
    expect(await run()).toMatchObject({ status: "unknown", message: `not measured: ${error}` });
    const at = NOW - 60_000;
    sample = { skewMs: 1_500, rttMs: 20, at, source: "https-date" };
    expect(await run()).toEqual({ name: "clock", status: "ok", message: "in sync with the cloud (measured 1m ago)" });
    sample = { skewMs: 90_000, rttMs: 20, at, source: "https-date" };
    expect(await run()).toMatchObject({ status: "warning", message: "1m 30s behind the cloud (measured 1m ago)" });
    sample = { skewMs: -400_000, rttMs: 20, at, source: "https-date" };
    expect(await run()).toMatchObject({ status: "critical", message: "6m 40s ahead of the cloud (measured 1m ago)" });
  });

  it("certificate: days left against 14 / 3, expired is critical", async () => {
    const cert = (days: number | undefined) =>
      certificateCheck(
        T,
        () => (days === undefined ? undefined : new Date(NOW + days * 86_400_000).toISOString()),
        now,
      ).run();
    expect(await cert(undefined)).toMatchObject({ status: "ok", message: "no certificate yet (not enrolled)" });
    expect(await cert(60)).toMatchObject({ status: "ok", message: expect.stringMatching(/^expires in 60 days/) });
    expect((await cert(10)).status).toBe("warning");
    expect((await cert(2)).status).toBe("critical");
    expect(await cert(-1)).toMatchObject({ status: "critical", message: expect.stringMatching(/^expired 1d ago/) });
  });

  it("outbox: backlog rows and the age of the oldest reading", async () => {
    const backlog = (rows: number, oldestTs: number | null) => () => ({
      rows,
      batches: 0,
      oldestTs,
      droppedTotal: 0,
      setAside: 0,
    });
    expect((await outboxBacklogCheck(T, backlog(10, NOW)).run()).status).toBe("ok");
    expect((await outboxBacklogCheck(T, backlog(100_000, NOW)).run()).status).toBe("warning");
    expect((await outboxBacklogCheck(T, backlog(900_000, NOW)).run()).status).toBe("critical");
    expect(await outboxAgeCheck(T, backlog(0, null), now).run()).toMatchObject({
      status: "ok",
      message: "nothing waiting",
    });
    expect((await outboxAgeCheck(T, backlog(5, NOW - 60_000), now).run()).status).toBe("ok");
    expect(await outboxAgeCheck(T, backlog(5, NOW - 2 * 3_600_000), now).run()).toMatchObject({
      status: "warning",
      message: "oldest reading waiting is 2h old",
    });
    expect((await outboxAgeCheck(T, backlog(5, NOW - 25 * 3_600_000), now).run()).status).toBe("critical");
  });
});

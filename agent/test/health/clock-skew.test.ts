import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClockSkew } from "../../src/health/clock-skew.js";
import { memoryLogger } from "../helpers/logger.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";

describe("ClockSkew (HTTPS Date header)", () => {
  let pki: TestPki;
  let server: Server;
  let url: string;
  /** What the fake cloud's clock is ahead of ours, in ms; `null` sends no Date header. */
  let offsetMs: number | null = 0;
  const paths: string[] = [];

  beforeAll(async () => {
    pki = await createTestPki();
    server = createServer({ key: pki.server.keyPem, cert: pki.server.certPem }, (req, res) => {
      paths.push(req.url ?? "");
      if (offsetMs === null) res.sendDate = false;
      else res.setHeader("date", new Date(Date.now() + offsetMs).toUTCString());
      res.end('{"status":"ok"}');
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `https://localhost:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const make = (ca: string | undefined) =>
    new ClockSkew({ cloudUrl: url, ca: () => ca, intervalMs: 60_000, logger: memoryLogger().logger });

  it("estimates the skew from the cloud's Date header to within the header's 1 s resolution", async () => {
    offsetMs = 120_000; // the cloud is 2 minutes ahead: our clock is behind
    const clock = make(pki.caPem);
    const sample = await clock.measure();
    expect(paths.at(-1)).toBe("/api/v1/health");
    expect(Math.abs(sample.skewMs - 120_000)).toBeLessThanOrEqual(1_000);
    expect(sample.source).toBe("https-date");
    expect(clock.latest()).toEqual(sample);
    expect(clock.lastError()).toBeUndefined();

    offsetMs = -30_000;
    expect(Math.abs((await clock.measure()).skewMs + 30_000)).toBeLessThanOrEqual(1_000);
    offsetMs = 0;
    expect(Math.abs((await clock.measure()).skewMs)).toBeLessThanOrEqual(1_000);
  });

  it("fails with CLOUD_UNREACHABLE when the cloud's certificate is not trusted, keeping the last sample", async () => {
    offsetMs = 0;
    const clock = make(pki.caPem);
    const good = await clock.measure();
    const other = await createTestPki();
    const untrusted = new ClockSkew({
      cloudUrl: url,
      ca: () => other.caPem,
      intervalMs: 60_000,
      logger: memoryLogger().logger,
    });
    await expect(untrusted.measure()).rejects.toMatchObject({ code: "CLOUD_UNREACHABLE" });
    expect(untrusted.latest()).toBeUndefined();
    expect(untrusted.lastError()).toMatch(/cannot reach https:\/\/localhost:\d+: .*certificate/i);
    expect(clock.latest()).toEqual(good);
  });

  it("fails when the answer has no Date header", async () => {
    offsetMs = null;
    await expect(make(pki.caPem).measure()).rejects.toThrow(/without a usable Date header/);
    offsetMs = 0;
  });

  it("measures on start and emits each sample", async () => {
    offsetMs = 0;
    const clock = make(pki.caPem);
    const measured = new Promise((resolve) => clock.once("measured", resolve));
    clock.start();
    await expect(measured).resolves.toMatchObject({ source: "https-date" });
    clock.stop();
  });
});

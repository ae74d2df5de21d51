import { FieldgateError } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Enroller } from "../../src/enrollment/enrollment-client.js";
import { EnrollmentLoop } from "../../src/enrollment/enrollment-loop.js";
import type { Identity } from "../../src/identity/identity-store.js";
import { memoryLogger } from "../helpers/logger.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";
const identity = { uuid: UUID, serial: "0a", notAfter: "2030-01-01T00:00:00.000Z" } as Identity;

function scripted(outcomes: (FieldgateError | "ok")[]): Enroller & { calls: number[] } {
  const calls: number[] = [];
  return {
    method: "token",
    calls,
    async enroll() {
      calls.push(Date.now());
      const next = outcomes.shift() ?? "ok";
      if (next === "ok") return identity;
      throw next;
    },
  };
}

describe("EnrollmentLoop", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("retries with backoff capped at retryMax and logs one line per distinct condition", async () => {
    const closed = () => new FieldgateError("ENROLL_WINDOW_CLOSED");
    const enroller = scripted([
      closed(),
      closed(),
      closed(),
      closed(),
      closed(),
      closed(),
      closed(),
      new FieldgateError("CLOUD_UNREACHABLE", "cannot reach"),
      "ok",
    ]);
    const { logger, lines, raw } = memoryLogger();
    // random() = 1 gives the ceiling of each interval: 1s, 2s, 4s, 8s, 16s, 30s, 30s…
    const loop = new EnrollmentLoop({
      enroller,
      uuid: UUID,
      retryMinMs: 1000,
      retryMaxMs: 30_000,
      logger,
      random: () => 1,
    });
    const done = loop.run();
    await vi.runAllTimersAsync();
    await expect(done).resolves.toBe(identity);
    const gaps = enroller.calls.slice(1).map((t, i) => t - (enroller.calls[i] as number));
    expect(gaps).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    const warns = lines.filter((l) => l.level === 40);
    expect(warns.map((l) => l.code)).toEqual(["ENROLL_WINDOW_CLOSED", "CLOUD_UNREACHABLE"]);
    expect(warns[0]?.msg).toBe(
      `enrollment window closed for ${UUID}: ask an operator to run \`fieldgate-cloud devices reset-token ${UUID}\` (or to add the device), then enroll within the window; retrying every ≤30s`,
    );
    expect(lines.some((l) => l.level === 30 && String(l.msg).startsWith(`enrolled ${UUID}`))).toBe(true);
    expect(raw.join("\n")).not.toContain("good-token");
  });

  it("enrolls within a minute of a window opening with the default retry bounds", async () => {
    const closed = Array.from({ length: 50 }, () => new FieldgateError("ENROLL_WINDOW_CLOSED"));
    const enroller = scripted(closed);
    const loop = new EnrollmentLoop({
      enroller,
      uuid: UUID,
      retryMinMs: 1000,
      retryMaxMs: 30_000,
      logger: memoryLogger().logger,
    });
    const done = loop.run();
    // The window "opens" after 10 minutes of failures; the next success comes at most retryMax later.
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    const opened = Date.now();
    closed.length = 0;
    await vi.advanceTimersByTimeAsync(30_000);
    await expect(done).resolves.toBe(identity);
    expect((enroller.calls.at(-1) as number) - opened).toBeLessThanOrEqual(30_000);
  });

  it("stops promptly", async () => {
    const enroller = scripted(Array.from({ length: 10 }, () => new FieldgateError("ENROLL_WINDOW_CLOSED")));
    const loop = new EnrollmentLoop({
      enroller,
      uuid: UUID,
      retryMinMs: 1000,
      retryMaxMs: 30_000,
      logger: memoryLogger().logger,
    });
    const done = loop.run();
    await vi.advanceTimersByTimeAsync(1500);
    loop.stop();
    await expect(done).resolves.toBeUndefined();
  });
});

import { FieldgateError } from "@fieldgate/shared";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CertificateRenewer } from "../../src/identity/certificate-renewer.js";
import type { Identity, IdentityStore } from "../../src/identity/identity-store.js";

const T0 = Date.UTC(2026, 0, 1);
const identity = (serial: string, renewAfterMs: number, notAfterMs: number): Identity => ({
  uuid: "0b6a2f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
  serial,
  notAfter: new Date(notAfterMs).toISOString(),
  renewAfter: new Date(renewAfterMs).toISOString(),
  mqttUrl: "mqtts://x:1",
  apiUrl: "https://x:2",
  enrolledAt: new Date(T0).toISOString(),
  keyPem: "k",
  certPem: "c",
  caPem: "ca",
});

/** A renewer whose network call is scripted. */
class ScriptedRenewer extends CertificateRenewer {
  calls: number[] = [];
  constructor(private readonly script: (() => Identity)[]) {
    super({
      cloudUrl: "https://x",
      identityStore: {} as IdentityStore,
      logger: pino({ level: "silent" }),
      retryMinMs: 1000,
      retryMaxMs: 8000,
      random: () => 0.5,
    });
  }
  override async renew(): Promise<Identity> {
    this.calls.push(Date.now());
    const step = this.script.shift();
    if (!step) throw new Error("no more steps");
    return step();
  }
}

describe("CertificateRenewer", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(T0);
  });
  afterEach(() => vi.useRealTimers());

  it("renews at renewAfter plus jitter, retries with backoff, then schedules the next renewal", async () => {
    const first = identity("A", T0 + 60_000, T0 + 90_000);
    const second = identity("B", T0 + 200_000, T0 + 300_000);
    const renewer = new ScriptedRenewer([
      () => {
        throw new FieldgateError("CLOUD_UNREACHABLE");
      },
      () => second,
    ]);
    const renewed: string[] = [];
    renewer.on("renewed", (i) => renewed.push(i.serial));
    renewer.start(first);
    // Jitter: random 0.5 × a tenth of (notAfter − renewAfter) = 1.5 s after renewAfter.
    await vi.advanceTimersByTimeAsync(61_499);
    expect(renewer.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(renewer.calls).toEqual([T0 + 61_500]);
    // The failure is retried after the backoff, not at once.
    await vi.advanceTimersByTimeAsync(999);
    expect(renewer.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(5000);
    expect(renewer.calls).toHaveLength(2);
    expect(renewed).toEqual(["B"]);
    renewer.stop();
  });

  it("reports the identity lost when the certificate expired or the cloud refuses it", async () => {
    const expired = new ScriptedRenewer([]);
    const lost: string[] = [];
    expired.on("lost", (e) => lost.push(e.code));
    expired.start(identity("A", T0 - 20_000, T0 - 10_000));
    // Past renewAfter: it runs after the jitter alone (0.5 × a tenth of 10 s).
    await vi.advanceTimersByTimeAsync(500);
    expect(lost).toEqual(["CERT_EXPIRED"]);
    expect(expired.calls).toHaveLength(0);

    const revoked = new ScriptedRenewer([
      () => {
        throw new FieldgateError("CERT_REVOKED");
      },
    ]);
    revoked.on("lost", (e) => lost.push(e.code));
    revoked.start(identity("A", T0, T0 + 100_000));
    await vi.advanceTimersByTimeAsync(20_000);
    expect(lost).toEqual(["CERT_EXPIRED", "CERT_REVOKED"]);
    expect(revoked.calls).toHaveLength(1);
  });
});

import https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../../test/support/cloud-process.js";
import { enrollWithToken, newUuid, registerDevice } from "../../../test/support/device-identity.js";
import { mannWhitneyU, median } from "../../../test/support/rank-test.js";

/**
 * Issue #12, item 5: answers that hide whether something exists must not show it in their timing
 * either. Each case sends many requests for a known and an unknown object, interleaved over one
 * keep-alive TLS connection to a real cloud on loopback, and compares the two latency samples with
 * a rank test. A leak is reported only when it is both significant (p < 1e-4) and larger than a
 * few microseconds, so the noise of a busy 2-core machine does not make the test flaky.
 */
const SAMPLES = 3000;
const WARM_UP = 200;
const MAX_P = 1e-4;
const MAX_MEDIAN_GAP_US = 4;

describe("timing does not tell known from unknown (real cloud)", () => {
  let cloud: CloudProcess;
  let agent: https.Agent;
  beforeAll(async () => {
    // Thousands of wrong credentials from one address: the per-source throttle would answer them all alike.
    cloud = await startCloud({ args: ["--auth-failure-limit", "10000", "--auth-failure-window", "1s"] });
    agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: cloud.caPem });
  });
  afterAll(async () => {
    agent.destroy();
    await cloud.stop();
  });

  /** Microseconds from request to the end of the answer; also checks the answer is what the case expects. */
  const timed = (method: string, path: string, body: unknown, authorization?: string) =>
    new Promise<{ us: number; status: number; text: string }>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const start = process.hrtime.bigint();
      const req = https.request(
        new URL(path, cloud.url),
        {
          method,
          agent,
          headers: {
            ...(authorization ? { authorization } : {}),
            ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
          },
        },
        (res) => {
          let text = "";
          res.on("data", (c) => {
            text += c;
          });
          res.on("end", () =>
            resolve({ us: Number(process.hrtime.bigint() - start) / 1000, status: res.statusCode ?? 0, text }),
          );
        },
      );
      req.on("error", reject);
      req.end(payload);
    });

  /** Interleaves the two kinds of request in a random order per pair and compares the samples. */
  async function compare(known: () => Promise<{ us: number }>, unknown: () => Promise<{ us: number }>) {
    for (let i = 0; i < WARM_UP; i++) await Promise.resolve().then(known).then(unknown);
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      if (Math.random() < 0.5) {
        a.push((await known()).us);
        b.push((await unknown()).us);
      } else {
        b.push((await unknown()).us);
        a.push((await known()).us);
      }
    }
    const { p } = mannWhitneyU(a, b);
    const gap = median(a) - median(b);
    return { p, gap, summary: `p = ${p.toExponential(2)}, median known − unknown = ${gap.toFixed(1)} µs` };
  }

  const leaks = (r: { p: number; gap: number }) => r.p < MAX_P && Math.abs(r.gap) > MAX_MEDIAN_GAP_US;

  it("a closed window costs the same for an enrolled uuid and an unknown one", async () => {
    const { uuid, token } = await registerDevice(cloud);
    await enrollWithToken(cloud, uuid, token);
    const body = (id: string) => ({
      v: 1,
      uuid: id,
      method: "token",
      token: `fgt_${"x".repeat(43)}`,
      csr: "c".repeat(400),
    });
    const known = await timed("POST", "/api/v1/enroll", body(uuid));
    const unknownUuid = newUuid();
    const unknown = await timed("POST", "/api/v1/enroll", body(unknownUuid));
    expect(known.status).toBe(403);
    expect(known.text).toBe(unknown.text);
    const result = await compare(
      () => timed("POST", "/api/v1/enroll", body(uuid)),
      () => timed("POST", "/api/v1/enroll", body(unknownUuid)),
    );
    console.info(`enroll, closed window: ${result.summary}`);
    expect(leaks(result), result.summary).toBe(false);
  });

  it("the registration check costs the same for a registered uuid and an unknown one", async () => {
    const { uuid } = await registerDevice(cloud);
    const body = (id: string) => ({ v: 1, uuid: id, method: "token", token: `fgt_${"y".repeat(43)}` });
    const known = await timed("POST", "/api/v1/enroll/check", body(uuid));
    const unknownUuid = newUuid();
    expect(known.text).toBe((await timed("POST", "/api/v1/enroll/check", body(unknownUuid))).text);
    const result = await compare(
      () => timed("POST", "/api/v1/enroll/check", body(uuid)),
      () => timed("POST", "/api/v1/enroll/check", body(unknownUuid)),
    );
    console.info(`enroll/check: ${result.summary}`);
    expect(leaks(result), result.summary).toBe(false);
  });

  it("a wrong Basic secret costs the same for an existing credential id and an unknown one", async () => {
    const basic = (id: string) => `Basic ${Buffer.from(`${id}:fgs_${"z".repeat(43)}`).toString("base64")}`;
    const unknownId = `fgc_${"0".repeat(16)}`;
    expect(unknownId).toHaveLength(cloud.credential.id.length);
    const known = await timed("GET", "/api/v1/organization", undefined, basic(cloud.credential.id));
    expect(known.status).toBe(401);
    expect(known.text).toBe((await timed("GET", "/api/v1/organization", undefined, basic(unknownId))).text);
    const result = await compare(
      () => timed("GET", "/api/v1/organization", undefined, basic(cloud.credential.id)),
      () => timed("GET", "/api/v1/organization", undefined, basic(unknownId)),
    );
    console.info(`Basic auth: ${result.summary}`);
    expect(leaks(result), result.summary).toBe(false);
  });
});

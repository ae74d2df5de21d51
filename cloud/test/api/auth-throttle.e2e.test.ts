import https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../../test/support/cloud-process.js";

interface Answer {
  status: number;
  retryAfter: string | undefined;
  code: string | undefined;
}

describe("failed sign-ins are throttled per source address (--auth-failure-limit 3)", () => {
  let cloud: CloudProcess;
  let basic: string;
  beforeAll(async () => {
    cloud = await startCloud({ args: ["--auth-failure-limit", "3", "--auth-failure-window", "1h"] });
    basic = `Basic ${Buffer.from(`${cloud.credential.id}:${cloud.credential.secret}`).toString("base64")}`;
  });
  afterAll(() => cloud.stop());

  /** A request from a chosen loopback address: 127.0.0.0/8 is all this host, so each is another source. */
  const call = (from: string, method: string, path: string, headers: Record<string, string> = {}, body?: unknown) =>
    new Promise<Answer>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = https.request(
        new URL(path, cloud.url),
        {
          method,
          ca: cloud.caPem,
          localAddress: from,
          agent: false,
          headers: { ...headers, ...(payload ? { "content-type": "application/json" } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            const code = text ? (JSON.parse(text) as { error?: { code?: string } }).error?.code : undefined;
            resolve({
              status: res.statusCode ?? 0,
              retryAfter: res.headers["retry-after"] as string | undefined,
              code,
            });
          });
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  const wrongSecret = `Basic ${Buffer.from(`${"x".repeat(4)}:wrong`).toString("base64")}`;

  it("answers 429 AUTH_THROTTLED with Retry-After after three wrong secrets, even to the right one", async () => {
    const attacker = "127.0.0.2";
    // Guesses at the admin's own credential id: they must not lock the admin out elsewhere.
    const guess = `Basic ${Buffer.from(`${cloud.credential.id}:not-the-secret`).toString("base64")}`;
    for (let i = 0; i < 3; i++) {
      expect((await call(attacker, "GET", "/api/v1/devices", { authorization: guess })).code).toBe("AUTH_REQUIRED");
    }
    const throttled = await call(attacker, "GET", "/api/v1/devices", { authorization: guess });
    expect(throttled).toMatchObject({ status: 429, code: "AUTH_THROTTLED" });
    expect(Number(throttled.retryAfter)).toBeGreaterThan(3500);
    expect(Number(throttled.retryAfter)).toBeLessThanOrEqual(3600);
    expect(await call(attacker, "GET", "/api/v1/devices", { authorization: basic })).toMatchObject({
      status: 429,
      code: "AUTH_THROTTLED",
    });
    // What needs no secret stays open to it.
    expect((await call(attacker, "GET", "/api/v1/health")).status).toBe(200);
  });

  it("leaves the same credential working from another address", async () => {
    expect((await call("127.0.0.1", "GET", "/api/v1/devices", { authorization: basic })).status).toBe(200);
  });

  it("does not count requests that presented no secret, nor successes", async () => {
    const from = "127.0.0.3";
    for (let i = 0; i < 5; i++) expect((await call(from, "GET", "/api/v1/devices")).code).toBe("AUTH_REQUIRED");
    for (let i = 0; i < 5; i++)
      expect((await call(from, "GET", "/api/v1/devices", { authorization: basic })).status).toBe(200);
    expect((await call(from, "GET", "/api/v1/devices", { authorization: wrongSecret })).code).toBe("AUTH_REQUIRED");
  });

  it("counts wrong session tokens like wrong credentials, and leaves logins to their own per-account limit", async () => {
    const from = "127.0.0.4";
    const login = (password: string) =>
      call(from, "POST", "/api/v1/auth/login", {}, { email: "nobody@example.test", password });
    for (let i = 0; i < 4; i++) expect((await login(`wrong ${i}`)).code).toBe("LOGIN_FAILED");
    for (let i = 0; i < 3; i++) {
      expect((await call(from, "GET", "/api/v1/devices", { authorization: `Bearer fgu_guess${i}` })).code).toBe(
        "AUTH_REQUIRED",
      );
    }
    expect((await call(from, "GET", "/api/v1/devices", { authorization: basic })).code).toBe("AUTH_THROTTLED");
  });
});

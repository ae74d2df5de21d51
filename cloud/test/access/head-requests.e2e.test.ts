import https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../../test/support/cloud-process.js";

function head(cloud: CloudProcess, path: string, authorization?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    https
      .request(
        new URL(path, cloud.url),
        { method: "HEAD", ca: cloud.caPem, headers: authorization ? { authorization } : {} },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      )
      .on("error", reject)
      .end();
  });
}

describe("HEAD requests need exactly what the GET route needs", () => {
  let cloud: CloudProcess;
  let basic: string;
  beforeAll(async () => {
    cloud = await startCloud();
    basic = `Basic ${Buffer.from(`${cloud.credential.id}:${cloud.credential.secret}`).toString("base64")}`;
  });
  afterAll(() => cloud.stop());

  it("answers a valid credential's HEAD as its GET, and refuses one without a credential", async () => {
    for (const path of ["/api/v1/devices", "/api/v1/groups", "/api/v1/auth/whoami"]) {
      expect({ path, status: await head(cloud, path, basic) }).toEqual({ path, status: 200 });
      expect({ path, status: await head(cloud, path) }).toEqual({ path, status: 401 });
    }
    expect(await head(cloud, "/api/v1/health")).toBe(200);
  });

  it("answers HEAD on the live stream with its headers and holds no stream open", async () => {
    // More than the 16 streams one credential may hold: none of them is kept.
    for (let i = 0; i < 20; i++) expect(await head(cloud, "/api/v1/live", basic)).toBe(200);
    const stream = await new Promise<number>((resolve, reject) => {
      const req = https.get(
        new URL("/api/v1/live", cloud.url),
        { ca: cloud.caPem, headers: { authorization: basic } },
        (res) => {
          resolve(res.statusCode ?? 0);
          req.destroy();
        },
      );
      req.on("error", reject);
    });
    expect(stream).toBe(200);
  });

  it("never counts a valid credential's HEAD requests as failed authentications", async () => {
    // More than the default --auth-failure-limit of 10 per source address.
    for (let i = 0; i < 15; i++) expect(await head(cloud, "/api/v1/devices", basic)).toBe(200);
    expect((await cloud.api("GET", "/api/v1/devices")).status).toBe(200);
  });
});

import https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../../test/support/cloud-process.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: AnswerBody;
}

interface AnswerBody {
  token?: string;
  csrfToken?: string;
  user?: { email: string };
  grants: { permissions: string[] }[];
  error: { code: string; field?: string };
}

function call(cloud: CloudProcess, method: string, path: string, headers: Record<string, string>, body?: unknown) {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise<Answer>((resolve, reject) => {
    const req = https.request(
      new URL(path, cloud.url),
      {
        method,
        ca: cloud.caPem,
        headers: { ...headers, ...(payload && { "content-type": "application/json" }) },
      },
      (res) => {
        let text = "";
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => {
          let parsed = text as unknown as AnswerBody;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

describe("console cookie sessions and CSRF, over the real HTTPS API", () => {
  let cloud: CloudProcess;
  const user = { email: "cookie-user@example.test", password: "a long enough password" };
  beforeAll(async () => {
    cloud = await startCloud();
    const groups = await cloud.api<{ items: { id: number; parentId: number | null }[] }>("GET", "/api/v1/groups");
    const root = groups.body.items.find((g) => g.parentId === null);
    const made = await cloud.api("POST", "/api/v1/users", { ...user, roles: [{ group: root?.id, role: "admin" }] });
    expect(made.status).toBe(201);
  });
  afterAll(() => cloud.stop());

  async function cookieLogin() {
    const login = await call(cloud, "POST", "/api/v1/auth/login", {}, { ...user, session: "cookie" });
    expect(login.status).toBe(200);
    const setCookie = String(login.headers["set-cookie"]);
    const cookie = /fg_session=[^;]+/.exec(setCookie)?.[0] ?? "";
    return { login, setCookie, cookie, csrf: login.body.csrfToken ?? "" };
  }

  it("sets an HttpOnly, Secure, SameSite=Strict cookie and answers a CSRF token instead of the session token", async () => {
    const { login, setCookie, csrf } = await cookieLogin();
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/Secure/i);
    expect(setCookie).toMatch(/SameSite=Strict/i);
    expect(setCookie).toMatch(/Path=\/api\//);
    expect(login.body.token).toBeUndefined();
    expect(csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The token mode the CLI uses is unchanged.
    const tokenLogin = await call(cloud, "POST", "/api/v1/auth/login", {}, user);
    expect(tokenLogin.body.token).toMatch(/^fgu_/);
    expect(tokenLogin.headers["set-cookie"]).toBeUndefined();
  });

  it("reads with the cookie alone; whoami answers the permissions of each grant and the CSRF token again", async () => {
    const { cookie, csrf } = await cookieLogin();
    const whoami = await call(cloud, "GET", "/api/v1/auth/whoami", { cookie });
    expect(whoami.status).toBe(200);
    expect(whoami.body).toMatchObject({ kind: "user", user: { email: user.email }, csrfToken: csrf });
    expect(whoami.body.grants[0]?.permissions).toContain("devices:write");
  });

  it("refuses a state-changing request without the CSRF token, with another session's, and accepts its own", async () => {
    const mine = await cookieLogin();
    const other = await cookieLogin();
    const body = { name: "csrf-group" };
    const none = await call(cloud, "POST", "/api/v1/groups", { cookie: mine.cookie }, body);
    expect(none.status).toBe(403);
    expect(none.body.error).toMatchObject({ code: "CSRF_INVALID", field: "x-csrf-token" });
    const foreign = await call(
      cloud,
      "POST",
      "/api/v1/groups",
      { cookie: mine.cookie, "x-csrf-token": other.csrf },
      body,
    );
    expect(foreign.status).toBe(403);
    expect(foreign.body.error.code).toBe("CSRF_INVALID");
    const own = await call(cloud, "POST", "/api/v1/groups", { cookie: mine.cookie, "x-csrf-token": mine.csrf }, body);
    expect(own.status).toBe(201);
  });

  it("does not treat a request with an Authorization header as a cookie session", async () => {
    const { cookie } = await cookieLogin();
    const basic = `Basic ${Buffer.from(`${cloud.credential.id}:${cloud.credential.secret}`).toString("base64")}`;
    const res = await call(cloud, "POST", "/api/v1/groups", { cookie, authorization: basic }, { name: "basic-group" });
    expect(res.status).toBe(201);
  });

  it("logs out: the session ends on the server and the cookie is cleared", async () => {
    const { cookie, csrf } = await cookieLogin();
    const out = await call(cloud, "POST", "/api/v1/auth/logout", { cookie, "x-csrf-token": csrf });
    expect(out.status).toBe(204);
    expect(String(out.headers["set-cookie"])).toMatch(/fg_session=;/);
    const after = await call(cloud, "GET", "/api/v1/auth/whoami", { cookie });
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe("AUTH_REQUIRED");
  });

  it("answers a forged or expired cookie 401, never 500", async () => {
    const res = await call(cloud, "GET", "/api/v1/devices", { cookie: "fg_session=fgu_not-a-session" });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("AUTH_REQUIRED");
    const garbage = await call(cloud, "GET", "/api/v1/devices", { cookie: "fg_session=%E0%A4%A" });
    expect(garbage.status).toBe(401);
  });

  it("puts the security headers on API answers too, and does not serve source maps", async () => {
    const res = await call(cloud, "GET", "/api/v1/health", {});
    expect(res.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(res.headers["x-frame-options"]).toBe("DENY");
    const map = await call(cloud, "GET", "/assets/index.js.map", {});
    expect(map.status).not.toBe(200);
  });
});

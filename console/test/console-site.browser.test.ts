import https from "node:https";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../test/support/cloud-process.js";
import {
  accessibilityViolations,
  type ConsoleUser,
  createUser,
  launchBrowser,
  logIn,
  openConsole,
  screenshot,
} from "./support/console-browser.js";

function get(cloud: CloudProcess, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>(
    (resolve, reject) => {
      https
        .get(new URL(path, cloud.url), { ca: cloud.caPem, headers }, (res) => {
          let body = "";
          res.on("data", (c) => {
            body += c;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        })
        .on("error", reject);
    },
  );
}

describe("the console is served by the cloud, logged into with a cookie session, in a real browser", () => {
  let cloud: CloudProcess;
  let browser: Browser;
  let admin: ConsoleUser;
  beforeAll(async () => {
    [cloud, browser] = await Promise.all([startCloud(), launchBrowser()]);
    admin = await createUser(cloud, "admin");
  });
  afterAll(async () => {
    await browser?.close();
    await cloud?.stop();
  });

  it("serves index.html no-cache and hashed assets immutable, under a strict CSP, never framed", async () => {
    const index = await get(cloud, "/");
    expect(index.status).toBe(200);
    expect(index.headers["cache-control"]).toBe("no-cache");
    expect(index.headers["content-security-policy"]).toContain("script-src 'self'");
    expect(index.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    expect(index.headers["x-frame-options"]).toBe("DENY");
    expect(index.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(index.body)?.[1];
    expect(asset).toBeDefined();
    const script = await get(cloud, asset as string);
    expect(script.status).toBe(200);
    expect(script.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    // A bookmarked console page opens the console; an unknown API path stays a JSON 404.
    const deep = await get(cloud, "/devices/00000000-0000-4000-8000-000000000000");
    expect(deep.status).toBe(200);
    expect(deep.body).toContain('<div id="app">');
    const api = await get(cloud, "/api/v1/nothing-here");
    expect(api.status).toBe(404);
    expect(JSON.parse(api.body).error.code).toBe("NOT_FOUND");
  });

  it("logs in into an HttpOnly, Secure, SameSite=Strict cookie, and logs out", async () => {
    const { context, page, problems } = await openConsole(browser, cloud);
    await screenshot(page, "login");
    expect(await accessibilityViolations(page)).toEqual([]);
    await logIn(page, admin);
    const cookie = (await context.cookies()).find((c) => c.name === "fg_session");
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: "Strict" });
    // Scripts on the page cannot read it.
    expect(await page.evaluate(() => document.cookie)).not.toContain("fg_session");
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("button", { name: "Log in" }).waitFor();
    expect((await context.cookies()).find((c) => c.name === "fg_session")).toBeUndefined();
    expect(problems).toEqual([]);
    await context.close();
  });

  it("refuses a wrong password with the API's message and keeps the form", async () => {
    const { context, page } = await openConsole(browser, cloud);
    await page.getByLabel("Email").fill(admin.email);
    await page.getByLabel("Password").fill("not the password");
    await page.getByRole("button", { name: "Log in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("Wrong email or password");
    await context.close();
  });

  it("refuses a cookie session's state-changing request without its CSRF token", async () => {
    const { context, page } = await openConsole(browser, cloud, admin);
    const answer = await page.evaluate(async () => {
      const response = await fetch("/api/v1/groups", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "csrf-probe" }),
      });
      return { status: response.status, body: await response.json() };
    });
    expect(answer.status).toBe(403);
    expect(answer.body.error.code).toBe("CSRF_INVALID");
    await context.close();
  });
});

import { execFileSync } from "node:child_process";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, httpsJson, startCloud } from "../../test/support/cloud-process.js";
import { newUuid } from "../../test/support/device-identity.js";
import { createUser, launchBrowser, openConsole } from "./support/console-browser.js";

/** What a page's own script gets from the API with the page's cookie session (and its CSRF token). */
async function fromPage(page: import("playwright-core").Page, method: string, path: string, body?: unknown) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const whoami = await (await fetch("/api/v1/auth/whoami")).json();
      const response = await fetch(path, {
        method,
        headers: {
          "x-csrf-token": whoami.csrfToken ?? "",
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: response.status, body: await response.json() };
    },
    { method, path, body },
  );
}

describe("console sessions see only their own organization, and only what their role allows", () => {
  let cloud: CloudProcess;
  let browser: Browser;
  let otherOrgAuth: string;
  const ours = { uuid: newUuid(), name: "ours-gateway" };
  const theirs = { uuid: newUuid(), name: "theirs-gateway" };

  beforeAll(async () => {
    [cloud, browser] = await Promise.all([startCloud(), launchBrowser()]);
    const created = JSON.parse(
      execFileSync(
        process.execPath,
        [cloudBin, "organizations", "create", "tenant-b", "--data-dir", cloud.dataDir, "--json"],
        {
          encoding: "utf8",
        },
      ),
    ) as { credentialId: string; secret: string };
    otherOrgAuth = `Basic ${Buffer.from(`${created.credentialId}:${created.secret}`).toString("base64")}`;
    expect((await cloud.api("POST", "/api/v1/devices", ours)).status).toBe(201);
    expect((await cloud.api("POST", "/api/v1/devices", theirs, otherOrgAuth)).status).toBe(201);
  });
  afterAll(async () => {
    await browser?.close();
    await cloud?.stop();
  });

  it("a session cookie of one organization shows nothing of another, as if it did not exist", async () => {
    const groups = await httpsJson<{ items: { id: number; parentId: number | null }[] }>(
      cloud.url,
      cloud.caPem,
      "GET",
      "/api/v1/groups",
      undefined,
      otherOrgAuth,
    );
    const rootB = groups.body.items.find((g) => g.parentId === null)?.id;
    const memberB = await (async () => {
      const email = `b-admin-${process.pid}@example.test`;
      const password = "tenant-b-password-long";
      const res = await httpsJson(
        cloud.url,
        cloud.caPem,
        "POST",
        "/api/v1/users",
        { email, password, roles: [{ group: rootB, role: "admin" }] },
        otherOrgAuth,
      );
      expect(res.status).toBe(201);
      return { email, password };
    })();
    const { context, page } = await openConsole(browser, cloud, memberB);
    await page.getByText(theirs.name).first().waitFor();
    expect(await page.getByText(ours.name).count()).toBe(0);
    // The other organization's device answers exactly what a uuid nobody registered answers.
    const foreign = await fromPage(page, "GET", `/api/v1/devices/${ours.uuid}`);
    const unknown = await fromPage(page, "GET", `/api/v1/devices/${newUuid()}`);
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe(unknown.body.error.code);
    expect(foreign.body.error.message.replace(ours.uuid, "<uuid>")).toBe(
      unknown.body.error.message.replace(/[0-9a-f-]{36}/, "<uuid>"),
    );
    const edit = await fromPage(page, "PATCH", `/api/v1/devices/${ours.uuid}`, { name: "taken-over" });
    expect(edit.status).toBe(404);
    await page.goto(`/devices/${ours.uuid}`);
    await page
      .getByText(/not found/i)
      .first()
      .waitFor();
    expect(await page.getByText(ours.name).count()).toBe(0);
    await context.close();
  });

  it("a viewer's session is refused every write by the API even when it sends a valid CSRF token", async () => {
    const viewer = await createUser(cloud, "viewer");
    const { context, page } = await openConsole(browser, cloud, viewer);
    await page.getByText(ours.name).first().waitFor();
    await expect.poll(() => page.getByRole("button", { name: /add device/i }).count()).toBe(0);
    const create = await fromPage(page, "POST", "/api/v1/devices", { uuid: newUuid() });
    expect(create, JSON.stringify(create.body)).toMatchObject({ status: 403 });
    expect(create.body.error.code).toBe("FORBIDDEN");
    const remove = await fromPage(page, "DELETE", `/api/v1/devices/${ours.uuid}`);
    expect(remove.status).toBe(403);
    expect((await cloud.api("GET", `/api/v1/devices/${ours.uuid}`)).status).toBe(200);
    await context.close();
  });
});

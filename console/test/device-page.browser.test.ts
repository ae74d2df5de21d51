import { execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { chmodSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../../test/support/agent-process.js";
import { type CloudProcess, cloudBin, eventually, startCloud, tempDir } from "../../test/support/cloud-process.js";
import { uploadImage } from "../../test/support/firmware.js";
import {
  accessibilityViolations,
  type ConsoleUser,
  createUser,
  launchBrowser,
  openConsole,
  screenshot,
} from "./support/console-browser.js";

type DeviceAnswer = {
  name: string;
  tags: string[];
  online: boolean;
  health: string | null;
  telemetryCount: number;
  certificate: { serial: string } | null;
};
type CertificatesAnswer = { items: { serial: string; current: boolean; revokeReason: string | null }[] };

const PHONE = { width: 390, height: 844 };

// test/support/device-identity.ts does not typecheck under this folder's DOM lib: the same, here.
const newUuid = () => randomUUID();
async function registerDevice(cloud: CloudProcess, extra: Record<string, unknown> = {}) {
  const uuid = newUuid();
  const res = await cloud.api<{ enrollmentToken: string }>("POST", "/api/v1/devices", { uuid, ...extra });
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${res.text}`);
  return { uuid, token: res.body.enrollmentToken };
}

/** Opens the device page and waits until its information is shown. */
async function openDevice(page: Page, uuid: string): Promise<void> {
  // Under the test's own timeout, so a wait that fails says what it waited for.
  page.setDefaultTimeout(15_000);
  await page.goto(`/devices/${uuid}`);
  await page.getByRole("heading", { name: "Information" }).waitFor();
}

async function chooseAction(page: Page, action: string): Promise<void> {
  await page.getByRole("button", { name: "Actions" }).click();
  await page.getByRole("menuitem", { name: action }).click();
}

describe("the device detail page, against a real cloud and a real agent", () => {
  let cloud: CloudProcess;
  let browser: Browser;
  let manager: ConsoleUser;
  let viewer: ConsoleUser;
  let agent: AgentProcess | undefined;
  let uuid: string;

  beforeAll(async () => {
    // A firmware key and an image for the device's type, so an update job can be sent to it.
    const dataDir = tempDir("console-device-cloud");
    execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir], { stdio: "pipe" });
    [cloud, browser] = await Promise.all([
      startCloud({ dataDir, args: ["--firmware-dir", path.join(tempDir("console-device-fw"), "store")] }),
      launchBrowser(),
    ]);
    [manager, viewer] = await Promise.all([createUser(cloud, "device-manager"), createUser(cloud, "viewer")]);
    const type = await cloud.api("POST", "/api/v1/device-types", { name: "gw-a", firmwareCompat: "acme-gw-a" });
    expect(type.status, type.text).toBe(201);
    const image = await uploadImage(cloud, "name=gw-os&version=2.0.0&compatible=acme-gw-a", randomBytes(4096));
    expect(image.status, image.text).toBe(201);
    const device = await registerDevice(cloud, {
      name: "press-4",
      location: "hall 3",
      tags: ["line-1"],
      type: "gw-a",
    });
    uuid = device.uuid;
    const dir = tempDir("console-device-agent");
    const check = path.join(dir, "valve.sh");
    writeFileSync(check, '#!/bin/sh\necho "valve stuck at 40 %"\nexit 1\n');
    chmodSync(check, 0o755);
    agent = startAgent(
      writeAgentConfig(dir, {
        uuid,
        dataDir: path.join(dir, "data"),
        cloud: { url: cloud.url, caFile: cloud.caFile },
        enrollment: { retryMin: "200ms", retryMax: "1s" },
        mqtt: { keepalive: "2s", reconnectMin: "200ms", reconnectMax: "1s" },
        telemetry: { sampleInterval: "1s", publishInterval: "200ms" },
        health: {
          checkInterval: "1s",
          // Only the valve decides the status: a loaded test machine must not turn it critical.
          loadPerCoreWarn: 1000,
          loadPerCoreCrit: 1000,
          memoryUsedWarnPct: 100,
          memoryUsedCritPct: 100,
          commands: [{ name: "valve", command: [check], interval: "1s", timeout: "5s" }],
        },
      }),
      { FIELDGATE_AGENT_ENROLLMENT_TOKEN: device.token },
    );
    await eventually(
      async () => {
        const d = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
        return d.online && d.health === "warning" && d.telemetryCount >= 6 ? true : undefined;
      },
      30_000,
      "the agent online, warning, with telemetry",
    );
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await browser?.close();
    await cloud?.stop();
  });

  it("shows the information, the health checks with their messages, and telemetry as charts and a table", async () => {
    const { context, page, problems } = await openConsole(browser, cloud, manager);
    // Every request the page makes is answered; only the live stream may be missing (the page polls then).
    const refused: string[] = [];
    page.on("response", (response) => {
      if (response.status() >= 400 && !response.url().endsWith("/api/v1/live"))
        refused.push(`${response.status()} ${response.url()}`);
    });
    await openDevice(page, uuid);
    await page.getByRole("heading", { level: 1, name: "press-4" }).waitFor();
    const info = page.getByRole("region", { name: "Information", exact: true });
    await expect.poll(() => info.getByTestId("device-uuid").textContent()).toBe(uuid);
    expect(await info.textContent()).toContain("hall 3");
    expect(await info.getByRole("list", { name: "Tags" }).textContent()).toContain("line-1");
    await info.getByRole("button", { name: "Copy uuid" }).waitFor();

    const checks = page.getByRole("list", { name: "Health checks" });
    await expect.poll(() => checks.textContent(), { timeout: 10_000 }).toContain("valve stuck at 40 %");
    expect(await checks.locator('[data-check="command.valve"]').textContent()).toMatch(/Warning.*valve.*valve stuck/);

    const telemetry = page.getByRole("region", { name: "Telemetry", exact: true });
    await telemetry.getByRole("img", { name: /Chart of system\.load1/ }).waitFor();
    await telemetry.locator(".metric-chart canvas").first().waitFor();
    await telemetry.getByRole("cell", { name: "system.mem.used_pct" }).first().waitFor();
    const csv = await telemetry.getByRole("link", { name: "Export CSV" }).getAttribute("href");
    expect(csv).toMatch(new RegExp(`^/api/v1/devices/${uuid}/telemetry\\?format=csv&from=`));
    await page
      .getByRole("region", { name: "Presence history", exact: true })
      .getByRole("cell", { name: "Online" })
      .first()
      .waitFor();
    await screenshot(page, "device");
    await telemetry.getByLabel("Time range").selectOption("custom");
    await telemetry.getByRole("button", { name: "Show range" }).click();
    await telemetry.getByRole("img", { name: /Chart of system\.load1/ }).waitFor();
    expect(await telemetry.getByRole("link", { name: "Export CSV" }).getAttribute("href")).toMatch(/&to=/);

    const presence = page.getByRole("region", { name: "Presence history", exact: true });
    await presence.getByRole("cell", { name: "Online" }).first().waitFor();
    const certificate = page.getByRole("region", { name: "Certificate", exact: true });
    await certificate.getByRole("cell", { name: "Current" }).waitFor();
    await page.getByRole("region", { name: "Firmware", exact: true }).getByText("No update was sent").waitFor();
    await page.getByRole("region", { name: "Logs", exact: true }).getByLabel("Forwarded log level").waitFor();

    await page
      .getByRole("region", { name: "Events", exact: true })
      .getByRole("cell", { name: "HEALTH_CHANGED" })
      .first()
      .waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);
    expect(refused).toEqual([]);
    expect(problems.filter((p) => !/status of 404/.test(p))).toEqual([]);
    await context.close();
  });

  it("edits the name and tags, and shows the API's refusal of a bad tag", async () => {
    const { context, page } = await openConsole(browser, cloud, manager);
    await openDevice(page, uuid);
    // The actions menu by keyboard: Enter opens it on its first item, arrows move, Escape closes it.
    const actions = page.getByRole("button", { name: "Actions" });
    await actions.focus();
    await page.keyboard.press("Enter");
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe("Edit");
    await page.keyboard.press("ArrowDown");
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe("Reset token");
    await page.keyboard.press("Escape");
    await page.getByRole("menu").waitFor({ state: "hidden" });
    expect(await actions.getAttribute("aria-expanded")).toBe("false");
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute("aria-haspopup"))).toBe("menu");
    await page.keyboard.press("ArrowDown");
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe("Edit");
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog", { name: "Edit device" });
    await dialog.waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);

    await dialog.getByLabel("New tag").fill("not ok");
    await dialog.getByRole("button", { name: "Add tag" }).click();
    await dialog.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => dialog.getByRole("alert").textContent()).toMatch(/tags\[1\]/);
    // The refused tag's chip says so.
    expect(await dialog.locator(".chip.invalid").textContent()).toContain("not ok (refused)");
    expect((await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body.tags).toEqual(["line-1"]);

    await dialog.getByRole("button", { name: "Remove tag not ok" }).click();
    await dialog.getByLabel("Name").fill("press-4b");
    await dialog.getByLabel("New tag").fill("hall-3");
    await dialog.getByLabel("New tag").press("Enter");
    await dialog.getByRole("button", { name: "Save" }).click();
    await dialog.waitFor({ state: "detached" });
    await page.getByRole("heading", { level: 1, name: "press-4b" }).waitFor();
    expect(
      await page
        .getByRole("region", { name: "Information", exact: true })
        .getByRole("list", { name: "Tags" })
        .textContent(),
    ).toContain("hall-3");
    const saved = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
    expect(saved).toMatchObject({ name: "press-4b", tags: ["line-1", "hall-3"] });
    await context.close();
  });

  it("shows a viewer the device without any write control", async () => {
    const { context, page } = await openConsole(browser, cloud, viewer);
    await openDevice(page, uuid);
    await page.getByRole("list", { name: "Health checks" }).waitFor();
    await page.getByRole("region", { name: "Configuration", exact: true }).getByTestId("desired-config").waitFor();
    expect(await page.getByRole("button", { name: "Actions" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Edit desired config" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Set level" }).count()).toBe(0);
    expect(await page.getByRole("region", { name: "Logs", exact: true }).textContent()).toContain(
      "Forwarded log level",
    );
    expect(await accessibilityViolations(page)).toEqual([]);
    await context.close();
  });

  it("filters the logs by level, and sets the forwarded log level, which the agent applies", async () => {
    const { context, page } = await openConsole(browser, cloud, manager);
    await openDevice(page, uuid);
    const logs = page.getByRole("region", { name: "Logs", exact: true });
    await logs.getByRole("cell", { name: "info" }).first().waitFor();
    await logs.getByLabel("Show level").selectOption("warn");
    await expect
      .poll(async () => {
        const levels = await logs.locator("tbody tr td:nth-child(2)").allTextContents();
        return levels.length === 0 || levels.every((l) => ["warn", "error", "fatal"].includes(l));
      })
      .toBe(true);

    await logs.getByLabel("Forwarded log level").selectOption("warn");
    await logs.getByRole("button", { name: "Set level" }).click();
    await expect
      .poll(() => logs.getByTestId("reported-forward-level").textContent(), { timeout: 25_000 })
      .toBe("device forwards warn");
    const config = page.getByRole("region", { name: "Configuration", exact: true });
    await expect.poll(() => config.getByTestId("config-state").textContent()).toContain("Applied");
    expect(await config.getByTestId("desired-config").textContent()).toContain('"level": "warn"');

    // A desired config the cloud refuses stays in the editor with the API's message.
    await config.getByRole("button", { name: "Edit desired config" }).click();
    await config.getByLabel("Desired config (JSON)").fill('{"logLevel": "loud"}');
    await config.getByRole("button", { name: "Save desired config" }).click();
    await expect.poll(() => config.getByRole("alert").textContent()).toMatch(/logLevel/);
    await config.getByLabel("Desired config (JSON)").fill("{not json");
    await config.getByRole("button", { name: "Save desired config" }).click();
    await expect.poll(() => config.getByRole("alert").textContent()).toContain("not valid JSON");
    expect(await accessibilityViolations(page)).toEqual([]);
    await context.close();
  }, 60_000);

  it("shows an update's steps, its failure with the reason, and its report, as the device reports them", async () => {
    const { context, page } = await openConsole(browser, cloud, manager);
    await openDevice(page, uuid);
    const firmware = page.getByRole("region", { name: "Firmware", exact: true });
    await firmware.getByText("No update was sent").waitFor();
    // Updates are off on this agent (updates.enabled defaults to false): it refuses at the first check.
    const created = await cloud.api<{ id: string }>("POST", `/api/v1/devices/${uuid}/jobs`, {
      firmware: "gw-os@2.0.0",
    });
    expect(created.status, created.text).toBe(201);
    // The page re-reads by itself (a job event, or the poll tick without the live stream).
    await expect.poll(() => firmware.getByTestId("job-status").textContent(), { timeout: 25_000 }).toBe("Failed");
    expect(await firmware.textContent()).toContain("UPDATES_DISABLED");
    const steps = firmware.getByRole("list", { name: "Update steps" });
    expect(await steps.locator(".step-failed").textContent()).toContain("Checking permissions");
    expect(await steps.locator(".step-done").first().textContent()).toContain("Queued");
    await firmware.getByText(/^Report \(\d+ statuses\)$/).click();
    await firmware.getByRole("cell", { name: "CHECKING_PERMISSIONS" }).first().waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);
    await context.close();
  }, 60_000);

  it("says 'Device not found' for a device of another group or organization, as for one that does not exist", async () => {
    const groups = await cloud.api<{ items: { id: number; parentId: number | null }[] }>("GET", "/api/v1/groups");
    const root = groups.body.items.find((g) => g.parentId === null)?.id;
    const plantA = await cloud.api<{ id: number }>("POST", "/api/v1/groups", { name: "plant-a", parent: root });
    const plantB = await cloud.api<{ id: number }>("POST", "/api/v1/groups", { name: "plant-b", parent: root });
    expect([plantA.status, plantB.status]).toEqual([201, 201]);
    const other = await registerDevice(cloud, { name: "elsewhere", group: plantB.body.id });
    // And a device of another organization, made with that organization's own admin credential.
    const org = JSON.parse(
      execFileSync(
        process.execPath,
        [cloudBin, "organizations", "create", "other-org", "--json", "--data-dir", cloud.dataDir],
        { encoding: "utf8" },
      ),
    ) as { credentialId: string; secret: string };
    const foreignUuid = newUuid();
    const foreign = await cloud.api(
      "POST",
      "/api/v1/devices",
      { uuid: foreignUuid, name: "foreign" },
      `Basic ${Buffer.from(`${org.credentialId}:${org.secret}`).toString("base64")}`,
    );
    expect(foreign.status, foreign.text).toBe(201);

    const scoped = await createUser(cloud, "admin", plantA.body.id);
    const { context, page } = await openConsole(browser, cloud, scoped);
    for (const target of [other.uuid, foreignUuid, newUuid(), "not-a-uuid"]) {
      await page.goto(`/devices/${target}`);
      await page.getByRole("heading", { level: 1, name: "Device not found" }).waitFor();
      expect(await page.getByText(/elsewhere|foreign/).count()).toBe(0);
    }
    expect(await accessibilityViolations(page)).toEqual([]);
    await context.close();
    // An admin of the whole organization sees plant-b's device, but still not the other organization's.
    const admin = await createUser(cloud, "admin");
    const wide = await openConsole(browser, cloud, admin);
    await openDevice(wide.page, other.uuid);
    await wide.page.getByRole("heading", { level: 1, name: "elsewhere" }).waitFor();
    await wide.page.goto(`/devices/${foreignUuid}`);
    await wide.page.getByRole("heading", { level: 1, name: "Device not found" }).waitFor();
    await wide.context.close();
  });

  it("deletes a device after saying that all its data goes, and goes back to the list", async () => {
    const doomed = await registerDevice(cloud, { name: "to-delete" });
    const { context, page } = await openConsole(browser, cloud, manager);
    await openDevice(page, doomed.uuid);
    await chooseAction(page, "Delete");
    const dialog = page.getByRole("dialog", { name: "Delete this device?" });
    await dialog.waitFor();
    const text = await dialog.textContent();
    expect(text).toContain("all its data");
    expect(text).toContain("can be added again");
    expect(await accessibilityViolations(page)).toEqual([]);
    // Cancel keeps it.
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "detached" });
    expect((await cloud.api("GET", `/api/v1/devices/${doomed.uuid}`)).status).toBe(200);

    await chooseAction(page, "Delete");
    await dialog.getByRole("button", { name: "Delete device" }).click();
    await page.waitForURL((url) => url.pathname === "/");
    expect((await cloud.api("GET", `/api/v1/devices/${doomed.uuid}`)).status).toBe(404);
    await context.close();
  });

  it("resets the token on a phone, one-handed: the dialog, then the new token and its countdown", async () => {
    const enrolled = await registerDevice(cloud, { name: "cabinet-7", tags: ["phone"] });
    const { context, page } = await openConsole(browser, cloud, manager, PHONE);
    // The agent's page on the phone: sections stack, and nothing is wider than the screen.
    await openDevice(page, uuid);
    await page.getByRole("list", { name: "Health checks" }).waitFor();
    await page.getByRole("img", { name: /Chart of system\.load1/ }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
    await screenshot(page, "device-phone");
    expect(await accessibilityViolations(page)).toEqual([]);

    await openDevice(page, enrolled.uuid);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
    await page.getByRole("button", { name: "Actions" }).click();
    await page.getByRole("menuitem", { name: "Reset token" }).click();
    const confirm = page.getByRole("dialog", { name: "Reset the enrollment token?" });
    await confirm.waitFor();
    expect(await confirm.textContent()).toContain("revokes the device's certificate");
    expect(await accessibilityViolations(page)).toEqual([]);
    await confirm.getByRole("button", { name: "Reset token" }).click();
    const result = page.getByRole("dialog", { name: "New enrollment token" });
    await result.getByTestId("enrollment-token").waitFor();
    expect(await result.getByTestId("enrollment-token").textContent()).toMatch(/^fgt_/);
    await expect.poll(() => result.getByRole("timer").textContent()).toMatch(/Rollout enabled for the next \d+ min/);
    const box = await result.getByRole("button", { name: "Done" }).boundingBox();
    expect(box && box.x + box.width).toBeLessThanOrEqual(PHONE.width);
    expect(await accessibilityViolations(page)).toEqual([]);
    await result.getByRole("button", { name: "Done" }).click();
    await result.waitFor({ state: "detached" });
    await context.close();
  });

  it("resets the agent's token: its certificate is revoked and the page shows it offline", async () => {
    const before = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
    expect(before.certificate).not.toBeNull();
    const { context, page } = await openConsole(browser, cloud, manager);
    await openDevice(page, uuid);
    await chooseAction(page, "Reset token");
    const confirm = page.getByRole("dialog", { name: "Reset the enrollment token?" });
    await confirm.getByRole("button", { name: "Reset token" }).click();
    const result = page.getByRole("dialog", { name: "New enrollment token" });
    await result.getByTestId("window-countdown").waitFor();
    expect(await result.getByTestId("window-countdown").textContent()).toMatch(/\d+:\d\d/);
    const certificates = await cloud.api<CertificatesAnswer>("GET", `/api/v1/devices/${uuid}/certificates`);
    expect(certificates.body.items.find((c) => c.serial === before.certificate?.serial)).toMatchObject({
      current: false,
      revokeReason: "reset-token",
    });
    const after = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
    expect(after.certificate).toBeNull();
    await result.getByRole("button", { name: "Done" }).click();
    await page.getByTestId("no-certificate").waitFor();
    await page
      .getByRole("region", { name: "Certificate", exact: true })
      .getByRole("cell", { name: /reset-token/ })
      .waitFor();
    await page.locator('.page-header [data-health="offline"]').getByText("Offline (last: Warning)").waitFor();
    await context.close();
  });
});

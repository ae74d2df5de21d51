import path from "node:path";
import type { MqttClient } from "mqtt";
import type { Browser, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgent, writeAgentConfig } from "../../test/support/agent-process.js";
import { type CloudProcess, startCloud, tempDir } from "../../test/support/cloud-process.js";
import { connectDevice, enrollWithToken, newUuid, registerDevice } from "../../test/support/device-identity.js";
import { localApi } from "../../test/support/local-api.js";
import {
  accessibilityViolations,
  type ConsoleUser,
  createUser,
  launchBrowser,
  logIn,
  openConsole,
  screenshot,
} from "./support/console-browser.js";

/** Live updates come from the stream, or from the 10 s poll where the stream is not there. */
const LIVE_MS = 30_000;

/** The health badge of a row, as the person reads it ("OK", "Warning", "Offline (last: Critical)"). */
function badge(row: Locator) {
  return row.locator(".health-badge");
}

function row(page: Page, uuid: string): Locator {
  return page.locator(`tr[data-uuid="${uuid}"]`);
}

describe("the devices list and Add device follow a real agent, in a real browser", () => {
  let cloud: CloudProcess;
  let browser: Browser;
  let admin: ConsoleUser;
  const agents: AgentProcess[] = [];
  const clients: MqttClient[] = [];
  beforeAll(async () => {
    [cloud, browser] = await Promise.all([startCloud(), launchBrowser()]);
    admin = await createUser(cloud, "admin");
  });
  afterAll(async () => {
    for (const client of clients) client.end(true);
    await Promise.all(agents.map((a) => a.stop()));
    await browser?.close();
    await cloud?.stop();
  });

  it("adds a device with tag chips, shows its token, and follows its agent from never connected to ok, warning, critical and offline", async () => {
    const { context, page, problems } = await openConsole(browser, cloud);
    // Until the cloud serves GET /api/v1/live, the console polls; Chromium logs the stream's 404.
    let liveMissing = false;
    page.on("response", (response) => {
      if (response.status() === 404 && new URL(response.url()).pathname === "/api/v1/live") liveMissing = true;
    });
    await logIn(page, admin);
    await page.getByRole("heading", { name: "Devices" }).waitFor();

    // 1. Add device, with tags as chips (Enter and comma confirm, × removes).
    await page.getByRole("button", { name: "Add device" }).click();
    const dialog = page.getByRole("dialog", { name: "Add device" });
    await dialog.waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);
    const uuid = newUuid();
    await dialog.getByLabel("UUID (required)").fill(uuid);
    await dialog.getByLabel("Name").fill("Pump station 7");
    await dialog.getByLabel("Location").fill("Hall B");
    const tags = dialog.getByLabel("Tags", { exact: true });
    await tags.fill("pump");
    await tags.press("Enter");
    await tags.pressSequentially("north,wrong,");
    const chips = dialog.getByRole("list", { name: "Tags added" });
    await expect.poll(() => chips.getByRole("listitem").allTextContents()).toEqual(["pump×", "north×", "wrong×"]);
    await dialog.getByRole("button", { name: "Remove tag wrong" }).click();
    await expect.poll(() => chips.getByRole("listitem").allTextContents()).toEqual(["pump×", "north×"]);
    // The remove button is reachable by keyboard: Tab from the field goes forward, Shift+Tab back to it.
    await dialog.getByRole("button", { name: "Remove tag north" }).focus();
    await page.keyboard.press("Enter");
    await expect.poll(() => chips.getByRole("listitem").allTextContents()).toEqual(["pump×"]);
    await tags.fill("north");
    await tags.press("Enter");
    await dialog.getByRole("button", { name: "Add device" }).click();

    const added = page.getByRole("dialog", { name: "Device added" });
    await added.waitFor();
    const token = (await added.getByTestId("enrollment-token").textContent()) ?? "";
    expect(token.length).toBeGreaterThan(20);
    await expect
      .poll(() => added.getByTestId("window-countdown").textContent())
      .toMatch(/Rollout enabled for the next 10 min \(9:5\d\)/);
    await added.getByRole("button", { name: "Copy" }).waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);
    await screenshot(page, "add-device");
    await added.getByRole("button", { name: "Done" }).click();

    // The new row: never connected, with its tags, linking to the device page.
    const mine = row(page, uuid);
    await expect.poll(() => badge(mine).textContent()).toContain("Never connected");
    expect(await mine.getByRole("link", { name: "Pump station 7" }).getAttribute("href")).toBe(`/devices/${uuid}`);
    expect(await mine.locator('td[data-column="tags"]').textContent()).toBe("pumpnorth");
    const stored = await cloud.api<{ tags: string[]; location: string }>("GET", `/api/v1/devices/${uuid}`);
    expect(stored.body).toMatchObject({ tags: ["pump", "north"], location: "Hall B" });

    // 2. A real agent enrolls with the token from the dialog: the row turns white (ok) by itself.
    const dir = tempDir("console-devices-agent");
    const dataDir = path.join(dir, "data");
    const agent = startAgent(
      writeAgentConfig(dir, {
        uuid,
        dataDir,
        cloud: { url: cloud.url, caFile: cloud.caFile },
        enrollment: { retryMin: "200ms", retryMax: "1s" },
        mqtt: { keepalive: "2s", reconnectMin: "200ms", reconnectMax: "1s" },
        health: {
          checkInterval: "1s",
          // Only the posted statuses decide: a loaded test machine must not turn it yellow.
          loadPerCoreWarn: 1000,
          loadPerCoreCrit: 1000,
          memoryUsedWarnPct: 100,
          memoryUsedCritPct: 100,
        },
      }),
      { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token },
    );
    agents.push(agent);
    await expect.poll(() => badge(mine).textContent(), { timeout: LIVE_MS + 20_000 }).toContain("OK");
    expect(await mine.getAttribute("class")).toBe("health-ok");
    await agent.waitForLog(/local API listening/);
    const socket = path.join(dataDir, "agent.sock");

    // 3. Warning, then critical, posted through the agent's local API: yellow, then red, no reload.
    await page.getByLabel("Search").focus();
    const posted = await localApi(socket, "POST", "/v1/status/valve", { status: "warning", message: "valve slow" });
    expect(posted.status).toBe(200);
    await expect.poll(() => badge(mine).textContent(), { timeout: LIVE_MS }).toContain("Warning");
    expect(await mine.getAttribute("class")).toBe("health-warning");
    expect(await mine.locator(".health-badge .icon").textContent()).toBe("▲");
    // The live re-read keeps the focus where it was.
    expect(await page.evaluate(() => document.activeElement?.getAttribute("type"))).toBe("text");
    expect((await localApi(socket, "POST", "/v1/status/valve", { status: "critical", message: "stuck" })).status).toBe(
      200,
    );
    await expect.poll(() => badge(mine).textContent(), { timeout: LIVE_MS }).toContain("Critical");
    expect(await mine.getAttribute("class")).toBe("health-critical");

    // 4. kill -9: grey, keeping the last status's icon.
    await agent.kill9();
    await expect
      .poll(() => badge(mine).textContent(), { timeout: LIVE_MS + 10_000 })
      .toBe("■ Offline (last: Critical)");
    expect(await mine.getAttribute("class")).toBe("offline health-was-critical");

    // 7. A mix of colours for the screenshot: devices that report over MQTT themselves.
    for (const [name, status] of [
      ["Boiler 1", "ok"],
      ["Chiller 2", "warning"],
      ["Compressor 3", "critical"],
    ] as const) {
      const registered = await registerDevice(cloud, { name, location: "Hall A", tags: ["hvac"] });
      const device = await enrollWithToken(cloud, registered.uuid, registered.token);
      const client = await connectDevice(cloud, device, device.uuid);
      clients.push(client);
      await client.publishAsync(
        `fieldgate/v1/${device.uuid}/health`,
        JSON.stringify({ v: 1, ts: Date.now(), status, checks: [] }),
        { qos: 1 },
      );
    }
    await registerDevice(cloud, { name: "Spare gateway", location: "Store" });
    await expect
      .poll(
        async () => (await page.locator("tbody .health-badge").allTextContents()).map((t) => t.replace(/^. /, "")),
        {
          timeout: LIVE_MS,
        },
      )
      .toEqual(expect.arrayContaining(["OK", "Warning", "Critical", "Offline (last: Critical)", "Never connected"]));
    expect(await accessibilityViolations(page)).toEqual([]);
    await screenshot(page, "devices");
    expect(problems.filter((p) => !(liveMissing && /status of 404/.test(p)))).toEqual([]);
    await context.close();
  }, 180_000);

  it("shows the API's message for a uuid that exists, and refuses a malformed uuid before sending it", async () => {
    const existing = await registerDevice(cloud);
    const { context, page } = await openConsole(browser, cloud, admin);
    await page.getByRole("button", { name: "Add device" }).click();
    const dialog = page.getByRole("dialog", { name: "Add device" });
    await dialog.getByLabel("UUID (required)").fill("not-a-uuid");
    await dialog.getByRole("button", { name: "Add device" }).click();
    await expect.poll(() => dialog.locator(".field-problem").textContent()).toContain("Not a uuid");
    expect(await dialog.getByLabel("UUID (required)").getAttribute("aria-invalid")).toBe("true");

    await dialog.getByLabel("UUID (required)").fill(existing.uuid);
    await dialog.getByRole("button", { name: "Add device" }).click();
    const apiAnswer = await cloud.api<{ error: { message: string } }>("POST", "/api/v1/devices", {
      uuid: existing.uuid,
    });
    expect(apiAnswer.status).toBe(409);
    await expect.poll(() => dialog.getByRole("alert").textContent()).toContain(apiAnswer.body.error.message);
    // The form stays filled in, so the operator can correct it.
    expect(await dialog.getByLabel("UUID (required)").inputValue()).toBe(existing.uuid);
    expect(await accessibilityViolations(page)).toEqual([]);
    await context.close();
  });

  it("offers only the device types defined for the chosen group or above it", async () => {
    const root = (await cloud.api<{ items: { id: number; parentId: number | null }[] }>("GET", "/api/v1/groups")).body
      .items[0];
    const plant = await cloud.api<{ id: number; fullName: string }>("POST", "/api/v1/groups", {
      name: `plant-${Date.now()}`,
    });
    expect(plant.status).toBe(201);
    expect(
      (await cloud.api("POST", "/api/v1/device-types", { name: `everywhere-${Date.now()}`, group: root?.id })).status,
    ).toBe(201);
    const local = `plant-only-${Date.now()}`;
    expect((await cloud.api("POST", "/api/v1/device-types", { name: local, group: plant.body.id })).status).toBe(201);

    const { context, page } = await openConsole(browser, cloud, admin);
    await page.getByRole("button", { name: "Add device" }).click();
    const dialog = page.getByRole("dialog", { name: "Add device" });
    const typeOptions = () => dialog.getByLabel("Type", { exact: true }).locator("option").allTextContents();
    await expect.poll(typeOptions).toContainEqual(expect.stringMatching(/^everywhere-/));
    expect(await typeOptions()).not.toContain(local);
    await dialog.getByLabel("Group", { exact: true }).selectOption({ label: plant.body.fullName });
    await expect.poll(typeOptions).toContain(local);
    const uuid = newUuid();
    await dialog.getByLabel("UUID (required)").fill(uuid);
    await dialog.getByLabel("Type", { exact: true }).selectOption({ label: local });
    await dialog.getByRole("button", { name: "Add device" }).click();
    await page.getByRole("dialog", { name: "Device added" }).waitFor();
    const stored = await cloud.api<{ type: { name: string }; group: { fullName: string } }>(
      "GET",
      `/api/v1/devices/${uuid}`,
    );
    expect(stored.body).toMatchObject({ type: { name: local }, group: { fullName: plant.body.fullName } });
    await context.close();
  });
});

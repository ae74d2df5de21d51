import { execFileSync } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { canonicalManifest, type FirmwareManifest } from "@fieldgate/shared";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signManifest } from "../../cloud/src/firmware/firmware-keys.js";
import { type AgentProcess, startAgent, writeAgentConfig } from "../../test/support/agent-process.js";
import { type CloudProcess, cloudBin, eventually, startCloud, tempDir } from "../../test/support/cloud-process.js";
import { LENIENT_HEALTH, uploadImage } from "../../test/support/firmware.js";
import {
  accessibilityViolations,
  type ConsoleUser,
  createUser,
  launchBrowser,
  openConsole,
  screenshot,
} from "./support/console-browser.js";

type RolloutView = { id: number; state: string; counts: { succeeded: number; cancelled: number } };

/**
 * The Firmware and Rollouts pages in a real browser against a real cloud and two real agents whose
 * installer succeeds: an image uploaded through the page is rolled out through the page, phase by
 * phase, until both devices run it.
 */
describe("firmware and rollouts in the console, with two real agents", () => {
  let cloud: CloudProcess;
  let browser: Browser;
  let admin: ConsoleUser;
  let viewer: ConsoleUser;
  let work: string;
  const agents: AgentProcess[] = [];
  const devices: string[] = [];
  const image = randomBytes(300_000);

  const startDevice = async (i: number) => {
    const uuid = randomUUID();
    const registered = await cloud.api<{ enrollmentToken: string }>("POST", "/api/v1/devices", {
      uuid,
      type: "gw-a",
      name: `gateway-${i}`,
    });
    expect(registered.status, registered.text).toBe(201);
    const token = registered.body.enrollmentToken;
    const dir = tempDir(`console-rollout-${i}`);
    const dataDir = path.join(dir, "data");
    // The factory image's version, as a real device would have it recorded.
    fs.mkdirSync(path.join(dataDir, "firmware"), { recursive: true, mode: 0o700 });
    fs.writeFileSync(
      path.join(dataDir, "firmware", "installed.json"),
      `${JSON.stringify({ version: "1.0.0", installedAt: new Date().toISOString() })}\n`,
    );
    const configFile = writeAgentConfig(dir, {
      uuid,
      dataDir,
      cloud: { url: cloud.url, caFile: cloud.caFile },
      enrollment: { retryMin: "200ms", retryMax: "1s" },
      telemetry: { sampleInterval: "1h" },
      mqtt: { reconnectMin: "200ms", reconnectMax: "1s" },
      health: LENIENT_HEALTH,
      updates: {
        enabled: true,
        installer: { type: "script", command: ["true", "{image}"] },
        confirmDeadline: "5s",
      },
    });
    const agent = startAgent(configFile, { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token });
    agents.push(agent);
    await agent.waitForLog(/connected to /, 60_000);
    return uuid;
  };

  const firmwareOf = async (uuid: string) =>
    (await cloud.api<{ firmwareVersion: string | null }>("GET", `/api/v1/devices/${uuid}`)).body.firmwareVersion;

  /**
   * What went wrong on the page beyond the expected: Chromium logs every 4xx as a failed load, the
   * API's refusals a test provokes (`allowed` statuses) and the live stream's 404 while
   * `GET /api/v1/live` is not in this build (the console then polls).
   */
  const openWatched = async (user: ConsoleUser) => {
    const opened = await openConsole(browser, cloud, user);
    const missing: string[] = [];
    opened.page.on("response", (response) => {
      if (response.status() === 404 && !response.url().endsWith("/api/v1/live")) missing.push(response.url());
    });
    const unexpected = (allowed: number[] = []) => [
      ...missing,
      ...opened.problems.filter((p) => !new RegExp(`status of (404${allowed.map((a) => `|${a}`).join("")})`).test(p)),
    ];
    return { ...opened, unexpected };
  };

  /** The file an image input gets: written to disk, as a user would pick it. */
  const file = (name: string, content: Buffer | string) => {
    const target = path.join(work, name);
    fs.writeFileSync(target, content);
    return target;
  };

  const upload = async (page: Page, fields: { name: string; version: string; compatible: string }, bytes: Buffer) => {
    await page.getByLabel("Image file").setInputFiles(file(`${fields.name}-${fields.version}.bin`, bytes));
    await page.getByLabel("Name", { exact: true }).fill(fields.name);
    await page.getByLabel("Version", { exact: true }).fill(fields.version);
    await page.getByLabel("Compatible device types").fill(fields.compatible);
    await page.getByRole("button", { name: "Upload" }).click();
  };

  beforeAll(async () => {
    const dataDir = tempDir("console-rollout-cloud");
    work = tempDir("console-rollout-work");
    execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir], { stdio: "pipe" });
    [cloud, browser] = await Promise.all([
      startCloud({ dataDir, args: ["--firmware-dir", path.join(work, "store"), "--rollout-tick", "200ms"] }),
      launchBrowser(),
    ]);
    admin = await createUser(cloud, "admin");
    viewer = await createUser(cloud, "viewer");
    expect(
      (await cloud.api("POST", "/api/v1/device-types", { name: "gw-a", firmwareCompat: "acme-gw-a" })).status,
    ).toBe(201);
    devices.push(...(await Promise.all([0, 1].map(startDevice))));
    // Every device has told the cloud the version it runs.
    await eventually(
      async () => ((await Promise.all(devices.map(firmwareOf))).every((v) => v === "1.0.0") ? true : undefined),
      30_000,
      "both devices to report firmware 1.0.0",
    );
  }, 180_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await browser?.close();
    await cloud?.stop();
  });

  it("uploads an image through the page with a progress bar to 100%, and lists it", async () => {
    const { context, page, unexpected } = await openWatched(admin);
    await page.getByRole("link", { name: "Firmware" }).click();
    await page.getByRole("heading", { name: "Firmware", level: 1 }).waitFor();
    expect(await accessibilityViolations(page)).toEqual([]);
    await upload(page, { name: "gw-os", version: "2.0.0", compatible: "acme-gw-a" }, image);
    const progress = page.getByRole("progressbar", { name: "Upload progress" });
    await expect.poll(() => progress.getAttribute("value"), { timeout: 20_000 }).toBe(String(image.length));
    expect(await progress.getAttribute("max")).toBe(String(image.length));
    await expect.poll(() => page.locator(".upload-percent").textContent()).toMatch(/^100% /);
    await page.getByRole("status").filter({ hasText: "Uploaded gw-os@2.0.0" }).waitFor();
    const row = page.getByRole("table", { name: "Firmware images" }).getByRole("row").filter({ hasText: "2.0.0" });
    await expect.poll(() => row.textContent()).toContain("gw-os");
    const listed = (
      await cloud.api<{ items: { version: string; keyId: string; size: number }[] }>("GET", "/api/v1/firmware")
    ).body.items;
    expect(listed).toEqual([expect.objectContaining({ version: "2.0.0", size: image.length })]);
    expect(await row.textContent()).toContain(listed[0]?.keyId);
    expect(await row.textContent()).toContain("acme-gw-a");
    expect(await accessibilityViolations(page)).toEqual([]);
    await screenshot(page, "firmware");
    expect(unexpected()).toEqual([]);
    await context.close();
  });

  it("shows the API's refusal of a duplicate version and of a bad offline signature", async () => {
    const { context, page } = await openConsole(browser, cloud, admin);
    await page.goto("/firmware");
    await upload(page, { name: "gw-os", version: "2.0.0", compatible: "acme-gw-a" }, randomBytes(1000));
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("gw-os@2.0.0 is already in the store");

    // A manifest for these very bytes, signed by a key this cloud does not hold.
    const bytes = randomBytes(2000);
    const manifest: FirmwareManifest = {
      v: 1,
      name: "gw-os",
      version: "2.5.0",
      compatible: ["acme-gw-a"],
      size: bytes.length,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      created: new Date().toISOString(),
    };
    const stranger = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(canonicalManifest(manifest)).toContain('"version":"2.5.0"');
    await page.reload();
    await page.getByLabel("Image file").setInputFiles(file("signed.bin", bytes));
    await page
      .getByLabel("Signed manifest (optional)")
      .setInputFiles(file("signed.json", JSON.stringify(signManifest(manifest, stranger))));
    // The manifest fills the fields, as `firmware upload --signature` does.
    await expect.poll(() => page.getByLabel("Version", { exact: true }).inputValue()).toBe("2.5.0");
    expect(await page.getByLabel("Compatible device types").inputValue()).toBe("acme-gw-a");
    await page.getByRole("button", { name: "Upload" }).click();
    await expect
      .poll(() => page.getByRole("alert").textContent())
      .toContain("the offline signature does not verify with this cloud's firmware public key");
    expect((await cloud.api<{ items: unknown[] }>("GET", "/api/v1/firmware")).body.items).toHaveLength(1);
    await context.close();
  });

  it("creates a rollout to both agents in the page and shows its phases move until both devices succeeded", {
    timeout: 120_000,
  }, async () => {
    const { context, page, unexpected } = await openWatched(admin);
    await page.getByRole("link", { name: "Rollouts" }).click();
    await page.getByRole("heading", { name: "Rollouts", level: 1 }).waitFor();
    await page.getByRole("button", { name: "New rollout" }).click();
    const dialog = page.getByRole("dialog", { name: "New rollout" });
    await expect.poll(() => dialog.getByLabel("Image").inputValue()).toBe("gw-os@2.0.0");
    expect(await accessibilityViolations(page)).toEqual([]);

    // A refusal first: the API's message, with the field it names.
    await dialog.getByLabel("Device UUIDs").fill(devices.join("\n"));
    await dialog.getByLabel("Phases").fill("50%,2");
    await dialog.getByRole("button", { name: "Start rollout" }).click();
    await expect.poll(() => dialog.getByRole("alert").textContent()).toContain("all percentages or all counts");

    await dialog.getByLabel("Phases").fill("1,2");
    await dialog.getByLabel("Success threshold").fill("100%");
    await dialog.getByLabel("Timeout per device").fill("5m");
    await dialog.getByRole("button", { name: "Start rollout" }).click();
    await page.waitForURL(/\/rollouts\/\d+$/);
    const id = Number(page.url().split("/").pop());
    await page.getByRole("heading", { name: `Rollout ${id}: gw-os@2.0.0` }).waitFor();

    const phases = page.getByRole("table", { name: "Phases" });
    const deviceRows = page.getByRole("table", { name: "Devices in this rollout" }).getByRole("row");
    // Each device links to its page, in target order and phase.
    for (const [i, uuid] of devices.entries()) {
      const row = deviceRows.filter({ has: page.getByRole("link", { name: `gateway-${i}` }) });
      expect(await row.getByRole("link").getAttribute("href")).toBe(`/devices/${uuid}`);
      expect(await row.getByRole("cell").nth(1).textContent()).toBe(String(i + 1));
    }
    // Phase by phase, live (the stream, or the console's poll): both devices end succeeded.
    const seen = new Set<string>();
    await expect
      .poll(
        async () => {
          const states = await Promise.all(
            devices.map((_, i) =>
              deviceRows
                .filter({ has: page.getByRole("link", { name: `gateway-${i}` }) })
                .getByRole("cell")
                .nth(2)
                .textContent(),
            ),
          );
          seen.add(states.join(","));
          return states;
        },
        { timeout: 60_000, interval: 500 },
      )
      .toEqual(["succeeded", "succeeded"]);
    expect(seen.size, `states seen: ${[...seen].join(" | ")}`).toBeGreaterThan(1);
    await expect.poll(() => page.locator(".rollout-state").textContent(), { timeout: 30_000 }).toBe("completed");
    for (const phase of [1, 2]) {
      const cells = phases.getByRole("row").nth(phase).getByRole("cell");
      // Up to, Devices, Pending, Running, Succeeded, Failed.
      expect(await cells.nth(1).textContent()).toBe("1");
      expect(await cells.nth(4).textContent()).toBe("1");
      expect(await cells.nth(5).textContent()).toBe("0");
    }
    expect(await deviceRows.nth(1).getByRole("cell").nth(3).textContent()).toBe("SUCCEEDED");
    expect(await Promise.all(devices.map(firmwareOf))).toEqual(["2.0.0", "2.0.0"]);
    expect(await page.getByRole("progressbar", { name: "Rollout progress" }).getAttribute("value")).toBe("2");
    expect(await accessibilityViolations(page)).toEqual([]);
    await screenshot(page, "rollout");

    // The list shows it, with its state and progress.
    await page.getByRole("link", { name: "All rollouts" }).click();
    const listed = page
      .getByRole("table", { name: "Rollouts" })
      .getByRole("row")
      .filter({ hasText: `Rollout ${id}` });
    await expect.poll(() => listed.textContent()).toContain("completed");
    expect(await listed.textContent()).toContain("2 of 2 done: 2 succeeded");
    expect(await accessibilityViolations(page)).toEqual([]);
    expect(unexpected([400])).toEqual([]);
    await context.close();
  });

  it("pauses, resumes and aborts (after a confirmation) another rollout; its image cannot be deleted meanwhile", {
    timeout: 60_000,
  }, async () => {
    const up = await uploadImage(cloud, "name=gw-os&version=3.0.0&compatible=acme-gw-a", randomBytes(5000));
    expect(up.status, up.text).toBe(201);
    // A window that is closed now (1 January only): the rollout stays open with nothing installing.
    const created = await cloud.api<RolloutView>("POST", "/api/v1/rollouts", {
      firmware: "gw-os@3.0.0",
      target: { devices },
      maintenanceWindow: "0 0 1 1 *, 1m",
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id;
    const { context, page, unexpected } = await openWatched(admin);
    await page.goto(`/rollouts/${id}`);
    const state = page.locator(".rollout-state");
    await expect.poll(() => state.textContent()).toBe("running");
    expect(await page.getByText("maintenance-window").count()).toBe(1);

    await page.getByRole("button", { name: "Pause" }).click();
    await expect.poll(() => state.textContent()).toBe("paused (OPERATOR)");
    expect((await cloud.api<RolloutView>("GET", `/api/v1/rollouts/${id}`)).body.state).toBe("paused");

    // The image of a paused rollout is in use: the page shows the API's refusal.
    const firmware = await context.newPage();
    await firmware.goto("/firmware");
    await firmware.getByRole("button", { name: "Delete gw-os@3.0.0" }).click();
    const confirm = firmware.getByRole("dialog", { name: "Delete gw-os@3.0.0?" });
    await confirm.getByRole("button", { name: "Delete image" }).click();
    await expect
      .poll(() => confirm.getByRole("alert").textContent())
      .toContain("an active rollout or an unfinished job uses gw-os@3.0.0");
    await confirm.getByRole("button", { name: "Cancel" }).click();
    await firmware.close();

    await page.getByRole("button", { name: "Resume" }).click();
    await expect.poll(() => state.textContent()).toBe("running");

    // Abort asks first; Cancel leaves it running.
    await page.getByRole("button", { name: "Abort" }).click();
    const abort = page.getByRole("dialog", { name: `Abort rollout ${id}?` });
    expect(await accessibilityViolations(page)).toEqual([]);
    await abort.getByRole("button", { name: "Cancel" }).click();
    expect((await cloud.api<RolloutView>("GET", `/api/v1/rollouts/${id}`)).body.state).toBe("running");
    await page.getByRole("button", { name: "Abort" }).click();
    await abort.getByRole("button", { name: "Abort rollout" }).click();
    await expect.poll(() => state.textContent()).toBe("aborted (OPERATOR)");
    const aborted = (await cloud.api<RolloutView>("GET", `/api/v1/rollouts/${id}`)).body;
    expect(aborted).toMatchObject({ state: "aborted", counts: { cancelled: 2 } });
    expect(await page.getByRole("button", { name: /Pause|Resume|Abort/ }).count()).toBe(0);
    expect(await Promise.all(devices.map(firmwareOf))).toEqual(["2.0.0", "2.0.0"]);

    // Aborted, the image is free again and deletes after the confirmation.
    await page.goto("/firmware");
    await page.getByRole("button", { name: "Delete gw-os@3.0.0" }).click();
    await page
      .getByRole("dialog", { name: "Delete gw-os@3.0.0?" })
      .getByRole("button", { name: "Delete image" })
      .click();
    await expect.poll(() => page.getByRole("button", { name: "Delete gw-os@3.0.0" }).count()).toBe(0);
    expect(unexpected()).toEqual([]);
    await context.close();
  });

  it("shows a viewer the images and rollouts without upload, create, delete, pause or abort controls", async () => {
    const { context, page, unexpected } = await openWatched(viewer);
    await page.getByRole("link", { name: "Firmware" }).click();
    await page.getByRole("table", { name: "Firmware images" }).waitFor();
    expect(await page.getByLabel("Image file").count()).toBe(0);
    expect(await page.getByRole("button", { name: /Upload|Delete/ }).count()).toBe(0);
    expect(await accessibilityViolations(page)).toEqual([]);

    await page.getByRole("link", { name: "Rollouts" }).click();
    const rows = page.getByRole("table", { name: "Rollouts" }).getByRole("row");
    await expect.poll(() => rows.count()).toBeGreaterThan(1);
    expect(await page.getByRole("button", { name: "New rollout" }).count()).toBe(0);
    expect(await accessibilityViolations(page)).toEqual([]);
    // Even a rollout that is open shows no steering to a viewer.
    const up = await uploadImage(cloud, "name=gw-os&version=4.0.0&compatible=acme-gw-a", randomBytes(5000));
    expect(up.status, up.text).toBe(201);
    const open = await cloud.api<RolloutView>("POST", "/api/v1/rollouts", {
      firmware: "gw-os@4.0.0",
      target: { devices },
      maintenanceWindow: "0 0 1 1 *, 1m",
    });
    expect(open.status, open.text).toBe(201);
    await page.goto(`/rollouts/${open.body.id}`);
    await expect.poll(() => page.locator(".rollout-state").textContent()).toBe("running");
    await page.getByRole("table", { name: "Devices in this rollout" }).waitFor();
    expect(await page.getByRole("button", { name: /Pause|Resume|Abort/ }).count()).toBe(0);
    expect(await accessibilityViolations(page)).toEqual([]);
    expect((await cloud.api("POST", `/api/v1/rollouts/${open.body.id}/abort`)).status).toBe(200);
    expect(unexpected()).toEqual([]);
    await context.close();
  });
});

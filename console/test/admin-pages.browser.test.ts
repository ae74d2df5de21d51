import { randomUUID } from "node:crypto";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../test/support/cloud-process.js";
import {
  accessibilityViolations,
  type ConsoleUser,
  createUser,
  launchBrowser,
  openConsole,
  screenshot,
} from "./support/console-browser.js";

interface GroupView {
  id: number;
  name: string;
  fullName: string;
  timezone: string;
  parentId: number | null;
}

async function groupsOf(cloud: CloudProcess): Promise<GroupView[]> {
  return (await cloud.api<{ items: GroupView[] }>("GET", "/api/v1/groups")).body.items;
}

/** Opens a console page through the side navigation, as a person would. */
async function go(page: Page, label: string, heading: string): Promise<void> {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: label, exact: true }).click();
  await page.getByRole("heading", { level: 1, name: heading }).waitFor();
}

describe("groups, device types, users and API credentials in the console, in a real browser", () => {
  let cloud: CloudProcess;
  let browser: Browser;
  let admin: ConsoleUser;
  let viewer: ConsoleUser;
  let root: GroupView;
  beforeAll(async () => {
    [cloud, browser] = await Promise.all([startCloud(), launchBrowser()]);
    admin = await createUser(cloud, "admin");
    viewer = await createUser(cloud, "viewer");
    root = (await groupsOf(cloud)).find((g) => g.parentId === null) as GroupView;
  });
  afterAll(async () => {
    await browser?.close();
    await cloud?.stop();
  });

  it("creates a group tree with a child in its own time zone, walks it with the keyboard, and shows a refused delete", async () => {
    const { context, page, problems } = await openConsole(browser, cloud, admin);
    await go(page, "Groups", "Groups");
    const tree = page.getByRole("tree", { name: "Groups" });
    await tree.getByRole("treeitem", { name: root.name }).waitFor();

    await page.getByRole("button", { name: "New group" }).click();
    let dialog = page.getByRole("dialog", { name: "New group" });
    await dialog.getByLabel("Parent group", { exact: true }).selectOption({ label: root.fullName });
    await dialog.getByLabel("Name", { exact: true }).fill("plant-a");
    await dialog.getByLabel("Description", { exact: true }).fill("Hall A presses");
    await dialog.getByRole("button", { name: "Create group" }).click();
    await tree.getByRole("treeitem", { name: "plant-a" }).waitFor();
    await expect.poll(() => page.getByRole("heading", { level: 2 }).first().textContent()).toBe("plant-a");

    await page.getByRole("button", { name: "New sub-group" }).click();
    dialog = page.getByRole("dialog", { name: "New group" });
    await expect.poll(() => dialog.getByLabel("Parent group", { exact: true }).inputValue()).not.toBe("");
    expect(await dialog.getByLabel("Parent group", { exact: true }).locator("option:checked").textContent()).toBe(
      `${root.fullName}/plant-a`,
    );
    await dialog.getByLabel("Name", { exact: true }).fill("line-1");
    await dialog.getByLabel("Time zone", { exact: true }).selectOption("Europe/Berlin");
    await dialog.getByRole("button", { name: "Create group" }).click();
    const child = tree.getByRole("treeitem", { name: "line-1" });
    await child.waitFor();
    const details = page.locator(".group-details");
    await expect.poll(() => details.textContent()).toContain("Europe/Berlin");
    expect(await details.textContent()).toContain(`${root.fullName}/plant-a/line-1`);
    // The parent counts its sub-group.
    expect(await tree.getByRole("treeitem", { name: "plant-a" }).getAttribute("aria-expanded")).toBe("true");
    expect(await page.locator(".tree-counts").nth(1).textContent()).toBe("0 devices · 1 sub-group");

    // The API holds what the page shows.
    const created = (await groupsOf(cloud)).find((g) => g.name === "line-1");
    expect(created).toMatchObject({ fullName: `${root.fullName}/plant-a/line-1`, timezone: "Europe/Berlin" });

    // Keyboard: up to plant-a, Left collapses it (line-1 leaves the tree), Right opens it again.
    await child.focus();
    await page.keyboard.press("ArrowUp");
    await expect
      .poll(() => tree.getByRole("treeitem", { selected: true }).getAttribute("aria-labelledby"))
      .toBe(await tree.getByRole("treeitem", { name: "plant-a" }).getAttribute("aria-labelledby"));
    await page.keyboard.press("ArrowLeft");
    await expect.poll(() => child.count()).toBe(0);
    await page.keyboard.press("ArrowRight");
    await child.waitFor();
    await page.keyboard.press("ArrowRight");
    await expect.poll(() => child.getAttribute("aria-selected")).toBe("true");
    await page.keyboard.press("ArrowUp");

    // Deleting plant-a, which holds line-1, is refused with the API's message.
    await page.getByRole("button", { name: "Delete" }).click();
    const confirm = page.getByRole("dialog", { name: "Delete group plant-a?" });
    await confirm.getByRole("button", { name: "Delete group" }).click();
    await expect.poll(() => confirm.getByRole("alert").textContent()).toContain("1 sub-group(s)");
    await confirm.getByRole("button", { name: "Cancel" }).click();
    expect((await groupsOf(cloud)).some((g) => g.name === "plant-a")).toBe(true);

    // With "everything in it" checked, a throwaway subtree goes at once.
    await page.getByRole("button", { name: "New sub-group" }).click();
    const scratch = page.getByRole("dialog", { name: "New group" });
    await scratch.getByLabel("Name", { exact: true }).fill("scratch");
    await scratch.getByRole("button", { name: "Create group" }).click();
    await tree.getByRole("treeitem", { name: "scratch" }).waitFor();
    await tree.getByRole("treeitem", { name: "plant-a" }).click();
    await page.getByRole("button", { name: "New sub-group" }).click();
    await page
      .getByRole("dialog", { name: "New group" })
      .getByLabel("Parent group", { exact: true })
      .selectOption({
        label: `${root.fullName}/plant-a/scratch`,
      });
    await page.getByRole("dialog", { name: "New group" }).getByLabel("Name", { exact: true }).fill("inner");
    await page.getByRole("dialog", { name: "New group" }).getByRole("button", { name: "Create group" }).click();
    await tree.getByRole("treeitem", { name: "inner" }).waitFor();
    await tree.getByRole("treeitem", { name: "scratch" }).click();
    await page.getByRole("button", { name: "Delete" }).click();
    const wipe = page.getByRole("dialog", { name: "Delete group scratch?" });
    await wipe.getByLabel(/Also delete everything in it/).check();
    await wipe.getByRole("button", { name: "Delete group and everything in it" }).click();
    await expect.poll(() => tree.getByRole("treeitem", { name: "scratch" }).count()).toBe(0);
    expect((await groupsOf(cloud)).map((g) => g.name)).not.toContain("inner");

    // Move line-1 under the root, edit its description.
    await tree.getByRole("treeitem", { name: "line-1" }).click();
    await page.getByRole("button", { name: "Move" }).click();
    const move = page.getByRole("dialog", { name: "Move group line-1" });
    await move.getByLabel("New parent group", { exact: true }).selectOption({ label: root.fullName });
    await move.getByRole("button", { name: "Move" }).click();
    await expect.poll(() => details.textContent()).toContain(`${root.fullName}/line-1`);
    await page.getByRole("button", { name: "Edit" }).click();
    const edit = page.getByRole("dialog", { name: "Edit group line-1" });
    await edit.getByLabel("Description", { exact: true }).fill("Line 1, moved");
    await edit.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => details.textContent()).toContain("Line 1, moved");

    await screenshot(page, "groups");
    expect(await accessibilityViolations(page)).toEqual([]);
    expect(problems.filter((p) => !/status of 409/.test(p))).toEqual([]);
    await context.close();
  });

  it("creates a device type with keep-alive and firmware compatibility, and shows a refused duplicate", async () => {
    const { context, page, problems } = await openConsole(browser, cloud, admin);
    await go(page, "Device types", "Device types");
    const create = async (name: string) => {
      await page.getByRole("button", { name: "New device type" }).click();
      const dialog = page.getByRole("dialog", { name: "New device type" });
      await dialog.getByLabel("Group", { exact: true }).selectOption({ label: root.fullName });
      await dialog.getByLabel("Name", { exact: true }).fill(name);
      await dialog.getByLabel("Keep-alive (minutes)", { exact: true }).fill("15");
      await dialog.getByLabel("Firmware compatibility", { exact: true }).fill("press-ctl-v2");
      await dialog.getByLabel("Health thresholds (JSON object of numbers)", { exact: true }).fill('{"cpu_temp_c": 85}');
      await dialog.getByRole("button", { name: "Create device type" }).click();
      return dialog;
    };
    await create("press-ctl");
    const row = page.getByRole("row").filter({ has: page.getByRole("rowheader", { name: "press-ctl" }) });
    await row.waitFor();
    expect(await row.textContent()).toContain("15 min");
    expect(await row.textContent()).toContain("press-ctl-v2");
    const types = await cloud.api<{ items: { name: string; keepaliveMinutes: number; healthThresholds: unknown }[] }>(
      "GET",
      "/api/v1/device-types",
    );
    expect(types.body.items.find((t) => t.name === "press-ctl")).toMatchObject({
      keepaliveMinutes: 15,
      healthThresholds: { cpu_temp_c: 85 },
    });

    const again = await create("press-ctl");
    await expect.poll(() => again.getByRole("alert").textContent()).toMatch(/already/i);
    await again.getByRole("button", { name: "Cancel" }).click();

    // Edit, then delete with its confirmation.
    await page.getByRole("button", { name: "Edit press-ctl" }).click();
    const edit = page.getByRole("dialog", { name: "Edit device type press-ctl" });
    await edit.getByLabel("Keep-alive (minutes)", { exact: true }).fill("30");
    await edit.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => row.textContent()).toContain("30 min");
    expect(await accessibilityViolations(page)).toEqual([]);

    // A type a device uses is refused, with the API's message; once unused, it is deleted.
    const uuid = randomUUID();
    expect((await cloud.api("POST", "/api/v1/devices", { uuid, type: "press-ctl" })).status).toBe(201);
    await page.getByRole("button", { name: "Delete press-ctl" }).click();
    const confirm = page.getByRole("dialog", { name: "Delete device type press-ctl?" });
    await confirm.getByRole("button", { name: "Delete device type" }).click();
    await expect.poll(() => confirm.getByRole("alert").textContent()).toContain("still use this type");
    expect(await row.count()).toBe(1);
    expect((await cloud.api("DELETE", `/api/v1/devices/${uuid}`)).status).toBeLessThan(300);
    await confirm.getByRole("button", { name: "Delete device type" }).click();
    await expect.poll(() => row.count()).toBe(0);
    expect(problems.filter((p) => !/status of 409/.test(p))).toEqual([]);
    await context.close();
  });

  it("creates a user with roles on two groups and shows R/W per area beside the role", async () => {
    const { context, page } = await openConsole(browser, cloud, admin);
    await go(page, "Users", "Users");
    await page.getByRole("button", { name: "New user" }).click();
    const dialog = page.getByRole("dialog", { name: "New user" });
    await dialog.getByLabel("Email", { exact: true }).fill("ops-lead@example.test");
    await dialog.getByLabel("Name", { exact: true }).fill("Ops Lead");
    await dialog.getByLabel("Password", { exact: true }).fill("correct-horse-battery");
    // The first line is there already; a second one is added.
    await dialog
      .getByLabel("Group", { exact: true })
      .first()
      .selectOption({ label: `${root.fullName}/plant-a` });
    await dialog.getByLabel("Role", { exact: true }).first().selectOption("device-manager");
    await dialog.getByRole("button", { name: "Add role" }).click();
    await dialog.getByLabel("Group", { exact: true }).nth(1).selectOption({ label: root.fullName });
    await dialog.getByLabel("Role", { exact: true }).nth(1).selectOption("viewer");
    await dialog.getByRole("button", { name: "Create user" }).click();

    const row = page.getByRole("row").filter({ has: page.getByRole("rowheader", { name: "ops-lead@example.test" }) });
    await row.waitFor();
    const manager = row.locator(".role-access").filter({ hasText: "device-manager" });
    expect(await manager.textContent()).toContain(`on ${root.fullName}/plant-a`);
    expect(await manager.getByRole("listitem").filter({ hasText: "Devices" }).textContent()).toBe("Devices R/W");
    expect(await manager.getByRole("listitem").filter({ hasText: "Firmware" }).textContent()).toBe("Firmware R");
    const reader = row.locator(".role-access").filter({ hasText: "viewer" });
    expect(await reader.getByRole("listitem").filter({ hasText: "Devices" }).textContent()).toBe("Devices R");
    expect(await reader.textContent()).not.toContain("R/W");
    const users = await cloud.api<{ items: { email: string; roles: { role: string }[] }[] }>("GET", "/api/v1/users");
    expect(
      users.body.items
        .find((u) => u.email === "ops-lead@example.test")
        ?.roles.map((r) => r.role)
        .sort(),
    ).toEqual(["device-manager", "viewer"]);

    await screenshot(page, "users");

    // The same email again: the API's refusal beside the form.
    await page.getByRole("button", { name: "New user" }).click();
    const again = page.getByRole("dialog", { name: "New user" });
    await again.getByLabel("Email", { exact: true }).fill("ops-lead@example.test");
    await again.getByLabel("Password", { exact: true }).fill("another-long-password");
    await again.getByRole("button", { name: "Create user" }).click();
    await expect.poll(() => again.getByRole("alert").textContent()).toMatch(/already/i);
    await again.getByRole("button", { name: "Cancel" }).click();

    // A password shorter than the API's minimum is not sent.
    await page.getByRole("button", { name: "Edit ops-lead@example.test" }).click();
    const edit = page.getByRole("dialog", { name: "Edit user ops-lead@example.test" });
    expect(await edit.getByLabel("New password", { exact: true }).getAttribute("minlength")).toBe("12");
    await edit.getByLabel("Name", { exact: true }).fill("Ops Lead (plant A)");
    await edit.getByRole("button", { name: "Remove role 2" }).click();
    await edit.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => row.textContent()).toContain("Ops Lead (plant A)");
    expect(await row.locator(".role-access").count()).toBe(1);

    expect(await accessibilityViolations(page)).toEqual([]);
    await context.close();
  });

  it("creates an API credential whose secret is shown once and works, and regenerates it so the old one is refused", async () => {
    const { context, page } = await openConsole(browser, cloud, admin);
    await go(page, "API credentials", "API credentials");
    await page.getByRole("button", { name: "New API credential" }).click();
    const dialog = page.getByRole("dialog", { name: "New API credential" });
    await dialog.getByLabel("Name", { exact: true }).fill("erp-sync");
    await dialog.getByLabel("Group", { exact: true }).selectOption({ label: `${root.fullName}/plant-a` });
    await dialog.getByLabel("Role", { exact: true }).selectOption("device-manager");
    await dialog.getByRole("button", { name: "Create credential" }).click();

    const panel = page.getByRole("region", { name: "New API secret" });
    const first = (await panel.getByTestId("credential-secret").textContent()) ?? "";
    expect(first.length).toBeGreaterThan(20);
    expect(await panel.textContent()).toContain("only now");
    const row = page.getByRole("row").filter({ has: page.getByRole("rowheader", { name: "erp-sync" }) });
    const id = ((await row.locator("td.mono").textContent()) ?? "").trim();
    expect(id).toMatch(/^fgc_[0-9a-f]{16}$/);
    expect(await row.textContent()).toContain("Devices R/W");
    const basic = (secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
    expect((await cloud.api("GET", "/api/v1/devices", undefined, basic(first))).status).toBe(200);

    // Shown once: hidden, it is gone from the page.
    await panel.getByRole("button", { name: "Done, hide the secret" }).click();
    await expect.poll(() => page.getByTestId("credential-secret").count()).toBe(0);
    expect(await page.content()).not.toContain(first);

    await page.getByRole("button", { name: "Regenerate erp-sync" }).click();
    await page
      .getByRole("dialog", { name: "Regenerate the secret of erp-sync?" })
      .getByRole("button", { name: "Regenerate secret" })
      .click();
    const second = (await page.getByTestId("credential-secret").textContent()) ?? "";
    expect(second).not.toBe(first);
    expect((await cloud.api("GET", "/api/v1/devices", undefined, basic(first))).status).toBe(401);
    expect((await cloud.api("GET", "/api/v1/devices", undefined, basic(second))).status).toBe(200);

    await screenshot(page, "credentials");
    expect(await accessibilityViolations(page)).toEqual([]);

    await page.getByRole("button", { name: "Delete erp-sync" }).click();
    await page
      .getByRole("dialog", { name: "Delete API credential erp-sync?" })
      .getByRole("button", { name: "Delete credential" })
      .click();
    await expect.poll(() => row.count()).toBe(0);
    expect((await cloud.api("GET", "/api/v1/devices", undefined, basic(second))).status).toBe(401);
    await context.close();
  });

  it("shows an admin of a sub-group its own subtree to manage, and no user management", async () => {
    const plantA = (await groupsOf(cloud)).find((g) => g.name === "plant-a") as GroupView;
    const local = await createUser(cloud, "admin", plantA.id);
    const { context, page, problems } = await openConsole(browser, cloud, local);
    await go(page, "Groups", "Groups");
    const tree = page.getByRole("tree", { name: "Groups" });
    const first = tree.getByRole("treeitem").first();
    await expect.poll(() => first.textContent()).toContain("plant-a");
    expect(await first.getAttribute("aria-level")).toBe("1");
    expect(await tree.locator(".tree-name").allTextContents()).not.toContain(root.name);
    expect(await page.getByRole("button", { name: "New group" }).count()).toBe(1);

    await go(page, "Users", "Users");
    await page.getByText("only roles held on its root group list them").waitFor();
    expect(await page.getByRole("button", { name: "New user" }).count()).toBe(0);
    expect(await page.getByRole("alert").count()).toBe(0);
    expect(problems).toEqual([]);
    await context.close();
  });

  it("fits a phone's width: tables scroll inside their frame, the page does not", async () => {
    const { context, page } = await openConsole(browser, cloud, admin, { width: 390, height: 844 });
    for (const [label, heading] of <[string, string][]>[
      ["Groups", "Groups"],
      ["Device types", "Device types"],
      ["Users", "Users"],
      ["API credentials", "API credentials"],
      ["Bulk operations", "Bulk operations"],
    ]) {
      await go(page, label, heading);
      await page.locator(".loading").waitFor({ state: "detached" });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, label).toBeLessThanOrEqual(0);
    }
    await context.close();
  });

  it("shows a viewer the lists and none of the write controls", async () => {
    const { context, page, problems } = await openConsole(browser, cloud, viewer);
    const writeControls = [
      "New group",
      "New sub-group",
      "Edit",
      "Move",
      "Delete",
      "New device type",
      "New user",
      "New API credential",
      "Regenerate",
      "Dry run",
      "Apply",
    ];
    const noWriteControls = async () => {
      for (const name of writeControls) expect(await page.getByRole("button", { name }).count(), name).toBe(0);
    };

    await go(page, "Groups", "Groups");
    await page.getByRole("tree", { name: "Groups" }).getByRole("treeitem", { name: "plant-a" }).waitFor();
    await noWriteControls();
    expect(await accessibilityViolations(page)).toEqual([]);

    await go(page, "Device types", "Device types");
    await page
      .getByText(/No device types yet|Keep-alive/)
      .first()
      .waitFor();
    await noWriteControls();

    await go(page, "Users", "Users");
    await page.getByRole("rowheader", { name: "ops-lead@example.test" }).waitFor();
    await noWriteControls();
    expect(await accessibilityViolations(page)).toEqual([]);

    await go(page, "API credentials", "API credentials");
    await page
      .getByText(/No API credentials|Last used/)
      .first()
      .waitFor();
    await noWriteControls();

    await go(page, "Bulk operations", "Bulk operations");
    await page.getByText("Your role cannot change devices").waitFor();
    expect(await page.locator("input[type=file]").count()).toBe(0);
    await noWriteControls();
    expect(await accessibilityViolations(page)).toEqual([]);
    expect(problems).toEqual([]);
    await context.close();
  });
});

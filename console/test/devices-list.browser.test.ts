import fs from "node:fs";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../test/support/cloud-process.js";
import { parseCsv } from "../../test/support/csv.js";
import { newUuid } from "../../test/support/device-identity.js";
import {
  accessibilityViolations,
  type ConsoleUser,
  createUser,
  launchBrowser,
  openConsole,
} from "./support/console-browser.js";

const number = (n: number) => String(n).padStart(2, "0");

/** The table as a person reads it: header labels, and each row's cells (times as their ISO value). */
async function shownTable(page: Page): Promise<{ header: string[]; rows: string[][] }> {
  return page.evaluate(() => {
    const table = document.querySelector("table.device-table") as HTMLTableElement;
    const header = [...table.querySelectorAll("thead th")].map((th) =>
      (th.querySelector("button")?.firstChild?.textContent ?? th.textContent ?? "").trim(),
    );
    const rows = [...table.querySelectorAll("tbody tr[data-uuid]")].map((tr) =>
      [...tr.querySelectorAll("td")].map((td) => {
        const time = td.querySelector("time");
        if (time) return time.dateTime;
        const tags = td.querySelectorAll(".tag");
        if (tags.length || td.dataset.column === "tags") return [...tags].map((t) => t.textContent).join(" ");
        const badge = td.querySelector(".health-badge");
        if (badge)
          return [...badge.childNodes]
            .filter((n) => !(n instanceof HTMLElement && n.ariaHidden))
            .map((n) => n.textContent)
            .join("")
            .trim();
        return (td.textContent ?? "").trim();
      }),
    );
    return { header, rows };
  });
}

describe("the devices list filters, sorts, pages and exports through the API, in a real browser", () => {
  let cloud: CloudProcess;
  let browser: Browser;
  let admin: ConsoleUser;
  let lineFullName = "";
  let plantFullName = "";
  beforeAll(async () => {
    [cloud, browser] = await Promise.all([startCloud(), launchBrowser()]);
    admin = await createUser(cloud, "admin");
    const plant = await cloud.api<{ id: number; fullName: string }>("POST", "/api/v1/groups", { name: "plant-a" });
    const line = await cloud.api<{ id: number; fullName: string }>("POST", "/api/v1/groups", {
      name: "line-1",
      parent: plant.body.id,
    });
    plantFullName = plant.body.fullName;
    lineFullName = line.body.fullName;
    // 32 devices: meter-01…meter-30 (north and south, even and odd), two in plant-a and line-1.
    for (let i = 1; i <= 30; i++) {
      const res = await cloud.api("POST", "/api/v1/devices", {
        uuid: newUuid(),
        name: `meter-${number(i)}`,
        location: i % 2 ? "North field" : "South field",
        tags: [i % 2 ? "odd" : "even", "meter"],
        comment: i === 7 ? 'says "hello", twice' : "",
      });
      expect(res.status).toBe(201);
    }
    for (const [name, group] of [
      ["plant-gateway", plant.body.id],
      ["line-gateway", line.body.id],
    ] as const) {
      expect((await cloud.api("POST", "/api/v1/devices", { uuid: newUuid(), name, group })).status).toBe(201);
    }
  });
  afterAll(async () => {
    await browser?.close();
    await cloud?.stop();
  });

  it("filters by free text and by a column, sorts by a header, pages, and keeps it all in the URL", async () => {
    const { context, page, problems } = await openConsole(browser, cloud, admin);
    const count = page.getByTestId("device-count");
    await expect.poll(() => count.textContent()).toBe("25 / 32 devices (rows 1–25)");
    expect(await accessibilityViolations(page)).toEqual([]);

    // Sort by name: ascending, then descending; aria-sort says which.
    const nameHeader = page.getByRole("columnheader", { name: "Name" });
    expect(await nameHeader.getAttribute("aria-sort")).toBe("none");
    await nameHeader.getByRole("button").click();
    await expect.poll(() => nameHeader.getAttribute("aria-sort")).toBe("ascending");
    await expect.poll(async () => (await shownTable(page)).rows[0]?.[1]).toBe("line-gateway");
    await nameHeader.getByRole("button").click();
    await expect.poll(() => nameHeader.getAttribute("aria-sort")).toBe("descending");
    await expect.poll(async () => (await shownTable(page)).rows[0]?.[1]).toBe("plant-gateway");
    await expect.poll(async () => (await shownTable(page)).rows[2]?.[1]).toBe("meter-29");

    // Page 2 of 2, then a filter goes back to page 1 and keeps the sort.
    await page.getByRole("navigation", { name: "Pages" }).getByRole("button", { name: "Next" }).click();
    await expect.poll(() => count.textContent()).toBe("7 / 32 devices (rows 26–32)");
    expect(page.url()).toContain("offset=25");
    await page.getByLabel("Search").fill("meter-1");
    await expect.poll(() => count.textContent()).toBe("10 / 10 devices");
    expect(page.url()).not.toContain("offset=");
    expect((await shownTable(page)).rows.map((r) => r[1])).toEqual(
      Array.from({ length: 10 }, (_, i) => `meter-${19 - i}`),
    );

    // A column filter on top: the location.
    await page.getByText("Column filters").click();
    await page.getByLabel("Location contains").fill("north");
    await expect.poll(() => count.textContent()).toBe("5 / 5 devices");
    expect((await shownTable(page)).rows.map((r) => r[1])).toEqual([
      "meter-19",
      "meter-17",
      "meter-15",
      "meter-13",
      "meter-11",
    ]);
    await page.getByLabel("Health").selectOption("critical");
    await expect.poll(() => count.textContent()).toBe("0 / 0 devices");
    await page.getByText("No device matches this filter.").waitFor();
    await page.getByLabel("Health").selectOption("");
    await expect.poll(() => count.textContent()).toBe("5 / 5 devices");

    // A reload (or a shared link) shows the same list.
    const url = page.url();
    expect(url).toContain("q=meter-1");
    expect(url).toContain("location=north");
    expect(url).toContain("sort=-name");
    await page.reload();
    await expect.poll(() => count.textContent()).toBe("5 / 5 devices");
    expect(await page.getByLabel("Search").inputValue()).toBe("meter-1");
    expect(await page.getByLabel("Location contains").inputValue()).toBe("north");
    expect(await page.getByRole("columnheader", { name: "Name" }).getAttribute("aria-sort")).toBe("descending");

    // A uuid filter the API refuses: its message, shown.
    await page.getByLabel("UUID starts with").fill("xyz");
    await expect.poll(() => page.getByRole("alert").textContent()).toMatch(/uuid/i);
    await page.getByLabel("UUID starts with").fill("");
    await expect.poll(() => page.getByRole("alert").count()).toBe(0);
    expect(problems.filter((p) => !/status of (400|404)/.test(p))).toEqual([]);
    await context.close();
  });

  it("picks a group with or without its sub-groups", async () => {
    const { context, page } = await openConsole(browser, cloud, admin);
    const count = page.getByTestId("device-count");
    await expect.poll(() => count.textContent()).toBe("25 / 32 devices (rows 1–25)");
    await page.getByRole("combobox", { name: "Group", exact: true }).selectOption({ label: plantFullName });
    await expect.poll(() => count.textContent()).toBe("1 / 1 devices");
    expect((await shownTable(page)).rows[0]?.[1]).toBe("plant-gateway");
    await page.getByLabel("Include sub-groups").check();
    await expect.poll(() => count.textContent()).toBe("2 / 2 devices");
    expect((await shownTable(page)).rows.map((r) => r[3]).sort()).toEqual([lineFullName, plantFullName].sort());
    await context.close();
  });

  it("chooses up to 8 columns, refusing a 9th, and exports exactly the rows and columns shown to CSV", async () => {
    const { context, page } = await openConsole(browser, cloud, admin);
    const count = page.getByTestId("device-count");
    await expect.poll(() => count.textContent()).toBe("25 / 32 devices (rows 1–25)");
    await page.getByText(/^Columns \(8 of at most 8\)/).click();
    const chooser = page.getByRole("group", { name: "Columns shown" });
    await chooser.getByLabel("Location").click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("At most 8 columns");
    expect(await chooser.getByLabel("Location").isChecked()).toBe(false);
    expect((await shownTable(page)).header).not.toContain("Location");
    // Take Type and Firmware off, put Location and Comment on: they come last, in that order.
    await chooser.getByLabel("Type").uncheck();
    await chooser.getByLabel("Firmware").uncheck();
    await chooser.getByLabel("Location").check();
    await chooser.getByLabel("Comment").check();
    await expect
      .poll(async () => (await shownTable(page)).header)
      .toEqual(["Status", "Name", "UUID", "Group", "Tags", "Last seen", "Location", "Comment"]);
    expect(await accessibilityViolations(page)).toEqual([]);

    // Sorted by name, filtered to the meters: 30 rows over two pages; the CSV has all of them.
    await page.getByRole("columnheader", { name: "Name" }).getByRole("button").click();
    await page.getByLabel("Search").fill("meter");
    await expect.poll(() => count.textContent()).toBe("25 / 30 devices (rows 1–25)");
    const firstPage = await shownTable(page);
    await page.getByRole("button", { name: "Next" }).click();
    await expect.poll(() => count.textContent()).toBe("5 / 30 devices (rows 26–30)");
    const secondPage = await shownTable(page);
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Export CSV" }).click(),
    ]);
    expect(download.suggestedFilename()).toBe("devices.csv");
    const csv = parseCsv(fs.readFileSync((await download.path()) as string, "utf8"));
    expect(csv[0]).toEqual(firstPage.header);
    expect(csv.slice(1)).toEqual([...firstPage.rows, ...secondPage.rows]);
    expect(csv.slice(1).map((r) => r[1])).toEqual(Array.from({ length: 30 }, (_, i) => `meter-${number(i + 1)}`));
    expect(csv[7]?.[7]).toBe('says "hello", twice');
    await context.close();
  });

  it("saves a filter under a name, restores it from the list, and deletes it", async () => {
    const { context, page } = await openConsole(browser, cloud, admin);
    const count = page.getByTestId("device-count");
    await page.getByLabel("Search").fill("field");
    await page.getByText("Column filters").click();
    await page.getByLabel("Tags (all of, comma-separated)").fill("even");
    await expect.poll(() => count.textContent()).toBe("15 / 15 devices");
    await page.getByLabel("Filter name").fill("Even meters");
    await page.getByRole("button", { name: "Save filter" }).click();
    await page.getByRole("button", { name: "Clear filters" }).click();
    await expect.poll(() => count.textContent()).toBe("25 / 32 devices (rows 1–25)");

    // Still there after a reload: it lives in this browser, for this user and organization.
    await page.reload();
    const saved = page.getByLabel("Saved filters");
    await expect.poll(() => saved.locator("option").allTextContents()).toContain("Even meters");
    await saved.selectOption({ label: "Even meters" });
    await expect.poll(() => count.textContent()).toBe("15 / 15 devices");
    expect(await page.getByLabel("Search").inputValue()).toBe("field");
    await page.getByRole("button", { name: "Delete “Even meters”" }).click();
    await expect.poll(() => saved.locator("option").allTextContents()).toEqual(["None saved yet"]);
    // A nameless filter is refused with a message.
    await page.getByRole("button", { name: "Save filter" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toBe("Name the filter first.");
    await context.close();
  });

  it("shows a viewer the list without Add device, and fits a phone by scrolling the table sideways", async () => {
    const viewer = await createUser(cloud, "viewer");
    const { context, page } = await openConsole(browser, cloud, viewer, { width: 390, height: 844 });
    await expect.poll(() => page.getByTestId("device-count").textContent()).toBe("25 / 32 devices (rows 1–25)");
    expect(await page.getByRole("button", { name: "Add device" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Export CSV" }).isVisible()).toBe(true);
    // The page itself does not scroll sideways; the table does.
    const widths = await page.evaluate(() => {
      const wrap = document.querySelector(".device-table-wrap") as HTMLElement;
      return { page: document.documentElement.scrollWidth, wrap: wrap.clientWidth, table: wrap.scrollWidth };
    });
    expect(widths.page).toBeLessThanOrEqual(390);
    expect(widths.table).toBeGreaterThan(widths.wrap);
    expect(await accessibilityViolations(page)).toEqual([]);
    await context.close();
  });
});

import { randomUUID } from "node:crypto";
import fs from "node:fs";
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

async function openBulk(page: Page): Promise<void> {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Bulk operations" }).click();
  await page.getByRole("heading", { level: 1, name: "Bulk operations" }).waitFor();
}

function chooseCsv(page: Page, name: string, csv: string): Promise<void> {
  return page.getByLabel("CSV file", { exact: true }).setInputFiles({
    name,
    mimeType: "text/csv",
    buffer: Buffer.from(csv),
  });
}

/** Drops a file on the drop zone the way a browser does: a drop event carrying it. */
async function dropCsv(page: Page, name: string, csv: string): Promise<void> {
  await page.getByTestId("drop-zone").evaluate(
    (zone, [fileName, text]) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([text], fileName, { type: "text/csv" }));
      zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    },
    [name, csv] as const,
  );
}

async function registered(cloud: CloudProcess, uuid: string): Promise<boolean> {
  const answer = await cloud.api("GET", `/api/v1/devices/${uuid}`);
  if (answer.status !== 200 && answer.status !== 404) throw new Error(`unexpected ${answer.status} ${answer.text}`);
  return answer.status === 200;
}

describe("bulk operations in the console: dry-run preview, apply, per-row report, in a real browser", () => {
  let cloud: CloudProcess;
  let browser: Browser;
  let manager: ConsoleUser;
  beforeAll(async () => {
    [cloud, browser] = await Promise.all([startCloud(), launchBrowser()]);
    manager = await createUser(cloud, "device-manager");
  });
  afterAll(async () => {
    await browser?.close();
    await cloud?.stop();
  });

  it("previews an import of 3 devices without writing, applies it, and shows the tokens once with a CSV download", async () => {
    const { context, page, problems } = await openConsole(browser, cloud, manager);
    await openBulk(page);
    const uuids = [randomUUID(), randomUUID(), randomUUID()];
    const csv = `uuid,name,location\n${uuids.map((u, i) => `${u},press-${i + 1},hall ${i + 1}`).join("\n")}\n`;
    await chooseCsv(page, "series.csv", csv);
    await expect.poll(() => page.getByText("Chosen: series.csv").count()).toBe(1);
    // Apply waits for a dry run.
    expect(await page.getByRole("button", { name: "Apply" }).isDisabled()).toBe(true);

    await page.getByRole("button", { name: "Dry run" }).click();
    const report = page.getByRole("region", { name: "Dry-run report" });
    await report.waitFor();
    expect(await report.getByRole("status").textContent()).toBe(
      "Dry run: 3 rows would be registered, 0 failed. Nothing was written.",
    );
    const rows = report.locator("tbody tr");
    expect(await rows.count()).toBe(3);
    for (const [i, uuid] of uuids.entries()) {
      expect(await rows.nth(i).textContent()).toContain(uuid);
      expect(await rows.nth(i).textContent()).toContain(`press-${i + 1}`);
      expect(await rows.nth(i).textContent()).toContain("OK");
    }
    // The dry run wrote nothing and issued no token.
    for (const uuid of uuids) expect(await registered(cloud, uuid)).toBe(false);
    expect(await page.getByTestId("bulk-token").count()).toBe(0);
    expect(await accessibilityViolations(page)).toEqual([]);

    await page.getByRole("button", { name: "Apply" }).click();
    const applied = page.getByRole("region", { name: "Report", exact: true });
    await applied.waitFor();
    expect(await applied.getByRole("status").textContent()).toBe("Applied: 3 rows registered, 0 failed.");
    for (const uuid of uuids) expect(await registered(cloud, uuid)).toBe(true);

    const tokens = page.getByRole("region", { name: "Enrollment tokens" });
    expect(await tokens.getByTestId("bulk-token").count()).toBe(3);
    const shown = await tokens.getByTestId("bulk-token").allTextContents();
    for (const token of shown) expect(token.length).toBeGreaterThan(16);
    await screenshot(page, "bulk");
    expect(await accessibilityViolations(page)).toEqual([]);

    const [download] = await Promise.all([
      page.waitForEvent("download"),
      tokens.getByRole("button", { name: "Download tokens (CSV)" }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^fieldgate-tokens-.*\.csv$/);
    const lines = fs
      .readFileSync(await download.path(), "utf8")
      .trim()
      .split(/\r\n/);
    expect(lines[0]).toBe("line,uuid,name,old_uuid,token,window_expires_at");
    expect(lines.slice(1).map((l) => l.split(",")[1])).toEqual(uuids);
    expect(lines.slice(1).map((l) => l.split(",")[4])).toEqual(shown);

    // Shown once: hidden, the tokens are gone from the page.
    await tokens.getByRole("button", { name: "Done, hide the tokens" }).click();
    await expect.poll(() => page.getByTestId("bulk-token").count()).toBe(0);
    expect(await page.content()).not.toContain(shown[0]);
    expect(problems).toEqual([]);
    await context.close();
  });

  it("shows a bad row's error in the dry run of a dropped file, and a file it cannot read with the API's message", async () => {
    const { context, page } = await openConsole(browser, cloud, manager);
    await openBulk(page);
    const [a, b] = [randomUUID(), randomUUID()];
    await dropCsv(page, "bad-row.csv", `uuid,name\n${a},ok-one\n${a},twice\n${b},ok-two\n`);
    await expect.poll(() => page.getByText("Chosen: bad-row.csv").count()).toBe(1);
    await page.getByRole("button", { name: "Dry run" }).click();
    const report = page.getByRole("region", { name: "Dry-run report" });
    await report.waitFor();
    expect(await report.getByRole("status").textContent()).toContain("1 failed");
    const bad = report.locator("tr[data-line='3']");
    expect(await bad.textContent()).toContain("Error");
    expect(await bad.textContent()).toContain("CSV_DUPLICATE_UUID");
    expect(await report.locator("tr[data-line='2']").textContent()).toContain("OK");
    expect(await report.locator("tr[data-line='4']").textContent()).toContain("OK");

    // Atomic: applying writes nothing, and says so.
    await page.getByRole("button", { name: "Apply" }).click();
    const outcome = page.getByRole("region", { name: "Report", exact: true }).getByRole("status");
    await expect
      .poll(() => outcome.textContent())
      .toBe("Not applied: 1 row failed, so nothing was written (atomic mode).");
    expect(await registered(cloud, a)).toBe(false);
    expect(await registered(cloud, b)).toBe(false);

    // A file without a header row is refused as a whole, with the API's message beside the form.
    await chooseCsv(page, "no-header.csv", `${randomUUID()}\n`);
    await page.getByRole("button", { name: "Dry run" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("header");
    expect(await page.getByRole("region", { name: "Dry-run report" }).count()).toBe(0);
    await context.close();
  });

  it("transfers listed devices to a chosen group", async () => {
    const uuids = [randomUUID(), randomUUID()];
    for (const uuid of uuids) expect((await cloud.api("POST", "/api/v1/devices", { uuid })).status).toBe(201);
    const target = await cloud.api<{ id: number; fullName: string }>("POST", "/api/v1/groups", { name: "plant-b" });
    expect(target.status).toBe(201);
    const { context, page } = await openConsole(browser, cloud, manager);
    await openBulk(page);
    await page.getByLabel("Operation", { exact: true }).selectOption("transfer");
    await page.getByLabel("Target group", { exact: true }).selectOption({ label: target.body.fullName });
    await chooseCsv(page, "transfer.csv", `uuid\n${uuids.join("\n")}\n`);
    await page.getByRole("button", { name: "Dry run" }).click();
    await expect
      .poll(() => page.getByRole("region", { name: "Dry-run report" }).getByRole("status").textContent())
      .toContain("2 rows would be moved");
    await page.getByRole("button", { name: "Apply" }).click();
    await expect
      .poll(() => page.getByRole("region", { name: "Report", exact: true }).getByRole("status").textContent())
      .toBe("Applied: 2 rows moved, 0 failed.");
    for (const uuid of uuids) {
      const device = await cloud.api<{ group: { fullName: string } }>("GET", `/api/v1/devices/${uuid}`);
      expect(device.body.group.fullName).toBe(target.body.fullName);
    }
    await context.close();
  });

  it("deletes listed devices only after a dry run and a confirmation", async () => {
    const uuid = randomUUID();
    expect((await cloud.api("POST", "/api/v1/devices", { uuid })).status).toBe(201);
    const { context, page } = await openConsole(browser, cloud, manager);
    await openBulk(page);
    await page.getByLabel("Operation", { exact: true }).selectOption("delete");
    await chooseCsv(page, "delete.csv", `uuid\n${uuid}\n`);
    await page.getByRole("button", { name: "Dry run" }).click();
    await expect
      .poll(() => page.getByRole("region", { name: "Dry-run report" }).getByRole("status").textContent())
      .toContain("1 row would be deleted");
    await page.getByRole("button", { name: "Apply" }).click();
    const confirm = page.getByRole("dialog", { name: "Delete 1 device?" });
    await confirm.getByRole("button", { name: "Delete 1 device" }).click();
    await expect
      .poll(() => page.getByRole("region", { name: "Report", exact: true }).getByRole("status").textContent())
      .toBe("Applied: 1 row deleted, 0 failed.");
    expect(await registered(cloud, uuid)).toBe(false);
    await context.close();
  });
});

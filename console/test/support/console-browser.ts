import fs from "node:fs";
import path from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { type CloudProcess, repoRoot } from "../../../test/support/cloud-process.js";

/** Debian's Chromium (`apt-get install chromium`); the tests never download a browser. */
export const CHROMIUM = process.env.FIELDGATE_CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
}

/** Console users are made through the API with the cloud's admin credential, like an operator would. */
export interface ConsoleUser {
  email: string;
  password: string;
}

let userCount = 0;

/** A user holding `role` on `group` (default: the organization's root group). */
export async function createUser(
  cloud: CloudProcess,
  role: "viewer" | "device-manager" | "firmware-manager" | "admin",
  group?: string | number,
): Promise<ConsoleUser> {
  userCount += 1;
  const email = `${role}-${userCount}-${process.pid}@example.test`;
  const password = `pw-${role}-correct-horse-${userCount}`;
  const root = group ?? (await rootGroupId(cloud));
  const res = await cloud.api("POST", "/api/v1/users", {
    email,
    name: `${role} ${userCount}`,
    password,
    roles: [{ group: root, role }],
  });
  if (res.status !== 201) throw new Error(`user create failed: ${res.status} ${res.text}`);
  return { email, password };
}

async function rootGroupId(cloud: CloudProcess): Promise<number> {
  const res = await cloud.api<{ items: { id: number; parentId: number | null }[] }>("GET", "/api/v1/groups");
  const root = res.body.items.find((g) => g.parentId === null);
  if (!root) throw new Error(`no root group: ${res.text}`);
  return root.id;
}

export interface ConsolePage {
  context: BrowserContext;
  page: Page;
  /** Messages the page logged as errors and requests the page could not make (CSP refusals among them). */
  problems: string[];
}

/**
 * A fresh browser context (its own cookies) on the console, logged in through the login form.
 * The cloud's certificate is from its own CA, which this browser does not trust.
 */
export async function openConsole(
  browser: Browser,
  cloud: CloudProcess,
  user?: ConsoleUser,
  viewport: { width: number; height: number } = { width: 1366, height: 900 },
): Promise<ConsolePage> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport, baseURL: cloud.url });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("console", (message) => {
    // Chromium logs every 4xx answer; the console asks whoami before anyone has logged in.
    if (message.type() === "error" && !/status of 401/.test(message.text())) problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(error.message));
  await page.goto("/");
  if (user) await logIn(page, user);
  return { context, page, problems };
}

export async function logIn(page: Page, user: ConsoleUser): Promise<void> {
  await page.getByLabel("Email").fill(user.email);
  await page.getByLabel("Password").fill(user.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("navigation", { name: "Main" }).waitFor();
}

const axeSource = () => fs.readFileSync(path.join(repoRoot, "node_modules/axe-core/axe.min.js"), "utf8");

/**
 * axe-core's WCAG 2.1 A/AA rules on the page as it is. Injected through the DevTools protocol, so
 * the console's CSP (no inline or foreign scripts) stays on while it runs.
 */
export async function accessibilityViolations(page: Page): Promise<string[]> {
  await page.evaluate(axeSource());
  const result = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<AxeResult> } }).axe;
    return axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
  });
  return result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}

interface AxeResult {
  violations: { id: string; help: string; nodes: { target: string[] }[] }[];
}

/**
 * Saves a screenshot for docs/console/ when FIELDGATE_CONSOLE_SCREENSHOTS names a directory
 * (`FIELDGATE_CONSOLE_SCREENSHOTS=docs/console npx vitest run console`); otherwise does nothing.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  const dir = process.env.FIELDGATE_CONSOLE_SCREENSHOTS;
  if (!dir) return;
  fs.mkdirSync(path.resolve(repoRoot, dir), { recursive: true });
  await page.screenshot({ path: path.resolve(repoRoot, dir, `${name}.png`), fullPage: false });
}

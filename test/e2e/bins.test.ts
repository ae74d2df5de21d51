import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

// The commands the README tells a user to run with npx must exist from `npm install` on: a bin
// that points into an unbuilt dist/ is not linked, and npx then looks the name up on a registry.
const root = path.resolve(import.meta.dirname, "../..");
const run = promisify(execFile);

interface Bin {
  workspace: string;
  name: string;
  file: string;
}

function workspaceBins(): Bin[] {
  const rootPkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { workspaces: string[] };
  return rootPkg.workspaces.flatMap((workspace) => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, workspace, "package.json"), "utf8")) as {
      bin?: Record<string, string>;
    };
    return Object.entries(pkg.bin ?? {}).map(([name, file]) => ({ workspace, name, file }));
  });
}

const bins = workspaceBins();
const tracked = new Set(
  (await run("git", ["ls-files"], { cwd: root })).stdout.split("\n").filter((line) => line.length > 0),
);
const temp = fs.mkdtempSync(path.join(os.tmpdir(), "fieldgate-bins-"));
afterAll(() => fs.rmSync(temp, { recursive: true, force: true }));

describe("workspace bins", () => {
  it("are the three commands the docs name", () => {
    expect(bins.map((b) => b.name).sort()).toEqual(["fieldgate-agent", "fieldgate-cloud", "fieldgate-sim"]);
  });

  it.each(bins)("$name is a committed, executable file outside dist/", ({ workspace, file }) => {
    const relative = path.posix.join(workspace, path.posix.normalize(file));
    expect(relative.split("/")).not.toContain("dist");
    expect(tracked.has(relative), `${relative} must be committed`).toBe(true);
    const full = path.join(root, relative);
    expect(fs.statSync(full).mode & 0o111, `${relative} must be executable`).not.toBe(0);
    expect(fs.readFileSync(full, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });

  it.each(bins)("$name is linked in node_modules/.bin and runs the built CLI", async ({ workspace, name, file }) => {
    const link = path.join(root, "node_modules", ".bin", name);
    expect(fs.realpathSync(link)).toBe(fs.realpathSync(path.join(root, workspace, file)));
    const { stdout } = await run(link, ["--help"], { cwd: root });
    expect(stdout).toContain(`Usage: ${name}`);
  });

  it.each(bins)("$name says how to build when its dist entry is missing", async ({ workspace, name, file }) => {
    // A copy of the launcher and its helper in the same layout, with no dist/ beside it.
    const copyRoot = fs.mkdtempSync(path.join(temp, `${name}-`));
    for (const relative of [path.join(workspace, file), "scripts/run-built.mjs"]) {
      fs.mkdirSync(path.dirname(path.join(copyRoot, relative)), { recursive: true });
      fs.copyFileSync(path.join(root, relative), path.join(copyRoot, relative));
    }
    const failure = await run(process.execPath, [path.join(copyRoot, workspace, file), "--help"]).then(
      () => undefined,
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stdout).toBe("");
    expect(failure?.stderr).toBe(`${name} is not built yet: run \`npm run build\` in ${copyRoot}\n`);
  });
});

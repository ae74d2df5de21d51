import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import { newUuid } from "../../../test/support/device-identity.js";
import { buildProgram } from "../../src/cli/program.js";
import { postCsv } from "../bulk/bulk-support.js";
import { capturedIo } from "./captured-io.js";

const run = promisify(execFile);

function inProcess(env: NodeJS.ProcessEnv = {}) {
  const { io, out, err } = capturedIo(env);
  return { run: (...argv: string[]) => buildProgram(io, "9.8.7").run(argv), out, err };
}

/** `fieldgate-cloud … | head -1` in a real shell; the exit status is the CLI's (pipefail). */
function pipedIntoHead(args: string[], env: NodeJS.ProcessEnv) {
  const quoted = [process.execPath, cloudBin, ...args].map((a) => `'${a}'`).join(" ");
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = spawn("bash", ["-c", `set -o pipefail; ${quoted} | head -1`], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe("fieldgate-cloud usage errors and global options", () => {
  it("an unknown option or a missing argument is `error VALIDATION_FAILED:` with exit 2, as docs/cli.md says", async () => {
    const unknown = inProcess();
    expect(await unknown.run("devices", "list", "--bogus")).toBe(2);
    expect(unknown.err).toEqual([
      "error VALIDATION_FAILED: unknown option '--bogus' (see `fieldgate-cloud devices list --help`)",
    ]);
    const missing = inProcess();
    expect(await missing.run("devices", "show")).toBe(2);
    expect(missing.err.join("\n")).toMatch(/^error VALIDATION_FAILED: missing required argument 'uuid'/);
    const group = inProcess();
    expect(await group.run("devices")).toBe(2);
    expect(group.err.at(-1)).toBe("error VALIDATION_FAILED: give one of the subcommands listed above");
    const help = inProcess();
    expect(await help.run("devices", "list", "--help")).toBe(0);
    expect(help.out.join("\n")).toContain("--sort <column>");
  });

  it("--version before a subcommand is the CLI's; after `firmware manifest` it is the image's", async () => {
    const version = inProcess();
    expect(await version.run("--version")).toBe(0);
    expect(version.out).toEqual(["9.8.7"]);
    const dir = tempDir("cli-usage");
    const image = path.join(dir, "image.bin");
    fs.writeFileSync(image, "firmware");
    const manifest = inProcess();
    expect(
      await manifest.run("firmware", "manifest", image, "--name", "gw", "--version", "1.2.3", "--compatible", "gw"),
    ).toBe(0);
    expect(JSON.parse(manifest.out.join("\n"))).toMatchObject({ name: "gw", version: "1.2.3", size: 8 });
  });

  describe("against a cloud", () => {
    let cloud: CloudProcess;
    const uuid = newUuid();
    beforeAll(async () => {
      cloud = await startCloud();
      // Enough devices that the export outlives a pipe buffer, so the reader really goes away mid-stream.
      const rows = Array.from({ length: 1500 }, (_, i) => `${newUuid()},piped-${i}`);
      const imported = await postCsv(cloud, "import", `uuid,name\n${uuid},first\n${rows.join("\n")}\n`);
      expect(imported.body.summary).toMatchObject({ ok: 1501, failed: 0 });
    }, 60_000);
    afterAll(() => cloud.stop());

    it("takes --data-dir and --json before or after the subcommand", async () => {
      for (const argv of [
        ["--data-dir", cloud.dataDir, "--json", "devices", "show", uuid],
        ["devices", "show", uuid, "--data-dir", cloud.dataDir, "--json"],
        ["--json", "devices", "show", uuid, "--data-dir", cloud.dataDir],
      ]) {
        const c = inProcess();
        expect(await c.run(...argv), `${argv.join(" ")}: ${c.err.join("\n")}`).toBe(0);
        expect(JSON.parse(c.out.join("\n")), argv.join(" ")).toMatchObject({ uuid, name: "first" });
      }
      const url = inProcess({ FIELDGATE_DATA_DIR: cloud.dataDir });
      expect(await url.run("--url", "http://localhost:1", "devices", "list")).toBe(2);
      expect(url.err).toEqual([
        `error CONFIG_INVALID: --url "http://localhost:1": the API is HTTPS only: use https://localhost:1; expected the cloud's https URL, like https://cloud.example:8443 (field: url)`,
      ]);
    });

    it("exits quietly when the reader of its output goes away (`| head -1`)", async () => {
      const env = { FIELDGATE_DATA_DIR: cloud.dataDir, NO_COLOR: "1" };
      for (const args of [
        ["devices", "list", "--format", "csv"],
        ["devices", "list", "--limit", "1000"],
        ["devices", "list", "--json"],
      ]) {
        const piped = await pipedIntoHead(args, env);
        expect(piped.stderr, args.join(" ")).toBe("");
        expect(piped.code, args.join(" ")).toBe(0);
        expect(piped.stdout.split("\n").length, args.join(" ")).toBe(2);
      }
    }, 60_000);

    it("prints usage errors of the real binary with the code and exit 2", async () => {
      const failed = await run(process.execPath, [cloudBin, "devices", "list", "--limit"]).catch(
        (e: { code: number; stderr: string }) => e,
      );
      expect((failed as { code: number }).code).toBe(2);
      expect((failed as { stderr: string }).stderr).toBe(
        "error VALIDATION_FAILED: option '--limit <n>' argument missing (see `fieldgate-cloud devices list --help`)\n",
      );
    });
  });
});

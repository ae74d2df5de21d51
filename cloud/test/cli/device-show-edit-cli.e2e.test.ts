import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import { newUuid } from "../../../test/support/device-identity.js";
import { uploadImage } from "../../../test/support/firmware.js";

const run = promisify(execFile);

describe("devices show, edit tags, list order and limits (operator CLI)", () => {
  let cloud: CloudProcess;
  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [cloudBin, ...args, "--data-dir", cloud.dataDir], {
        env: { ...process.env, NO_COLOR: "1" },
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  beforeAll(async () => {
    const dataDir = tempDir("show-edit");
    execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir], { stdio: "pipe" });
    cloud = await startCloud({ dataDir, args: ["--firmware-dir", path.join(dataDir, "store")] });
    expect((await cloud.api("POST", "/api/v1/groups", { name: "plant-a" })).status).toBe(201);
    expect((await cloud.api("POST", "/api/v1/device-types", { name: "gw", firmwareCompat: "acme-gw" })).status).toBe(
      201,
    );
    expect((await uploadImage(cloud, "name=gw-os&version=1.0.0&compatible=acme-gw", randomBytes(2000))).status).toBe(
      201,
    );
  });
  afterAll(() => cloud.stop());

  it("show lists group, type, comment and the status colour; --json adds the latest update job", async () => {
    const uuid = newUuid();
    const add = await cli(
      "devices",
      "add",
      uuid,
      "--group",
      "plant-a",
      "--type",
      "gw",
      "--comment",
      "spare for hall 2",
    );
    expect(add.code, add.stderr).toBe(0);
    const before = JSON.parse((await cli("devices", "show", uuid, "--json")).stdout) as { latestJob: unknown };
    expect(before.latestJob).toBeNull();

    const update = await cli("devices", "update", uuid, "--firmware", "gw-os@1.0.0", "--json");
    expect(update.code, update.stderr).toBe(0);
    const job = JSON.parse(update.stdout) as { id: string };

    const human = await cli("devices", "show", uuid);
    expect(human.stdout).toMatch(/^group: +default\/plant-a$/m);
    expect(human.stdout).toMatch(/^type: +gw$/m);
    expect(human.stdout).toMatch(/^comment: +spare for hall 2$/m);
    expect(human.stdout).toMatch(/^status: +offline \(last: unknown\) \(grey\)$/m);
    expect(human.stdout).toContain(`update ${job.id}: gw-os@1.0.0`);

    const shown = JSON.parse((await cli("devices", "show", uuid, "--json")).stdout) as {
      group: { fullName: string };
      type: { name: string };
      comment: string;
      latestJob: { id: string; firmware: { name: string; version: string }; status: string; steps: unknown[] };
    };
    expect(shown).toMatchObject({
      group: { fullName: "default/plant-a" },
      type: { name: "gw" },
      comment: "spare for hall 2",
    });
    expect(shown.latestJob).toMatchObject({ id: job.id, firmware: { name: "gw-os", version: "1.0.0" } });
    expect(Array.isArray(shown.latestJob.steps)).toBe(true);
  });

  it("edit --add-tag/--remove-tag change the current tags; --tag still replaces them; mixing is refused", async () => {
    const uuid = newUuid();
    await cli("devices", "add", uuid, "--tag", "line-a", "spare");
    const tags = async () =>
      (JSON.parse((await cli("devices", "show", uuid, "--json")).stdout) as { tags: string[] }).tags;

    expect((await cli("devices", "edit", uuid, "--add-tag", "hall-2", "--add-tag", "line-a")).code).toBe(0);
    expect(await tags()).toEqual(["line-a", "spare", "hall-2"]);
    expect((await cli("devices", "edit", uuid, "--remove-tag", "spare", "--add-tag", "new")).code).toBe(0);
    expect(await tags()).toEqual(["line-a", "hall-2", "new"]);
    expect((await cli("devices", "edit", uuid, "--tag", "only")).code).toBe(0);
    expect(await tags()).toEqual(["only"]);

    const mixed = await cli("devices", "edit", uuid, "--tag", "x", "--add-tag", "y");
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toContain(
      "error VALIDATION_FAILED: give --tag (replaces every tag) or --add-tag/--remove-tag",
    );
    const both = await cloud.api<{ error: { field: string } }>("PATCH", `/api/v1/devices/${uuid}`, {
      addTags: ["a"],
      removeTags: ["a"],
    });
    expect(both.status).toBe(400);
    expect(both.body.error.field).toBe("removeTags");
    const many = await cloud.api<{ error: { message: string } }>("PATCH", `/api/v1/devices/${uuid}`, {
      addTags: Array.from({ length: 32 }, (_, i) => `t${i}`),
    });
    expect(many.status).toBe(400);
    expect(many.body.error.message).toContain("at most 32 tags; this would make 33");
  });

  it("adds from concurrent requests are all kept (applied in one transaction each)", async () => {
    const uuid = newUuid();
    await cloud.api("POST", "/api/v1/devices", { uuid });
    const added = Array.from({ length: 12 }, (_, i) => `c${i}`);
    const answers = await Promise.all(
      added.map((tag) => cloud.api("PATCH", `/api/v1/devices/${uuid}`, { addTags: [tag] })),
    );
    expect(answers.map((a) => a.status)).toEqual(added.map(() => 200));
    const device = await cloud.api<{ tags: string[] }>("GET", `/api/v1/devices/${uuid}`);
    expect([...device.body.tags].sort()).toEqual([...added].sort());
  });

  it("list --sort name is natural (meter-9 before meter-10) across pages", async () => {
    const tag = `sort-${Date.now()}`;
    for (const n of [10, 9, 1, 100, 2, 11]) {
      await cloud.api("POST", "/api/v1/devices", { uuid: newUuid(), name: `meter-${n}`, tags: [tag] });
    }
    // Table pages (--limit/--offset), and the export, which walks every match in one go.
    const list = (...extra: string[]) => cli("devices", "list", "--tag", tag, "--sort", "name", ...extra);
    const names: string[] = [];
    for (const offset of ["0", "4"]) {
      const page = await list("--limit", "4", "--offset", offset);
      names.push(
        ...page.stdout
          .split("\n")
          .slice(1, -2)
          .map((l) => l.split(/\s+/)[1] ?? ""),
      );
    }
    const natural = ["meter-1", "meter-2", "meter-9", "meter-10", "meter-11", "meter-100"];
    expect(names).toEqual(natural);
    const exported = JSON.parse((await list("--json")).stdout) as { name: string }[];
    expect(exported.map((d) => d.name)).toEqual(natural);
    const table = await cli("devices", "list", "--tag", tag, "--sort", "-name", "--limit", "2");
    expect(
      table.stdout
        .split("\n")
        .slice(1, 3)
        .map((l) => l.split(/\s+/)[1]),
    ).toEqual(["meter-100", "meter-11"]);
  });

  it("a limit over the maximum names limit and the maximum", async () => {
    const over = await cli("devices", "list", "--limit", "1001");
    expect(over.code).toBe(2);
    expect(over.stderr).toBe(
      "error VALIDATION_FAILED: limit must be at most 1000: fetch further pages with offset (field: limit)\n",
    );
    const openapi = await cloud.api<{
      paths: Record<string, { get: { parameters: { name: string; description?: string }[] } }>;
    }>("GET", "/api/v1/openapi.json", undefined, false);
    const limit = openapi.body.paths["/api/v1/devices"]?.get.parameters.find((p) => p.name === "limit");
    expect(limit?.description).toContain("1 to 1000");
  });

  it("a CSV over the size limit is refused with the limit and how to split it, by the CLI and by the API", async () => {
    const dir = tempDir("big-csv");
    const big = path.join(dir, "big.csv");
    const row = `${"0".repeat(8)}-0000-4000-8000-000000000000,${"x".repeat(100)}\n`;
    const rows = Math.ceil((32 * 1024 * 1024) / row.length) + 10;
    fs.writeFileSync(big, `uuid,name\n${row.repeat(rows)}`);
    const local = await cli("devices", "import", big, "--dry-run");
    expect(local.code).toBe(2);
    expect(local.stderr).toContain("a bulk file may have at most 33554432 (32 MiB): split it into several files");
    const api = await postTooLarge(cloud, "/api/v1/devices/bulk/import?dryRun=true", fs.readFileSync(big));
    expect(api.status).toBe(400);
    expect(api.body.error).toEqual({
      code: "VALIDATION_FAILED",
      message:
        "the CSV file is larger than the 32 MiB (33554432 bytes) a bulk request takes: split it into several files (keep the header row in each) and send them one after another",
      field: "body",
    });
  }, 60_000);
});

/**
 * POSTs a body the cloud refuses by its Content-Length: the answer can arrive while the body is
 * still being sent, and the cloud then closes the connection.
 */
function postTooLarge(
  cloud: CloudProcess,
  target: string,
  body: Buffer,
): Promise<{ status: number; body: { error: { code: string; message: string; field?: string } } }> {
  const auth = `Basic ${Buffer.from(`${cloud.credential.id}:${cloud.credential.secret}`).toString("base64")}`;
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = https.request(new URL(target, cloud.url), {
      method: "POST",
      ca: cloud.caPem,
      headers: { authorization: auth, "content-type": "text/csv", "content-length": body.length },
    });
    req.on("response", (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) });
      });
    });
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    // The cloud answers from the Content-Length alone: send only the start of the body, so the
    // answer never races a write into a connection the cloud has already closed.
    req.write(body.subarray(0, 64 * 1024));
  });
}

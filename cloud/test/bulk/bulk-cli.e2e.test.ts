import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import { newUuid, registerDevice } from "../../../test/support/device-identity.js";

const run = promisify(execFile);

describe("fieldgate-cloud devices import | bulk-edit | transfer | replace | bulk-delete", () => {
  let cloud: CloudProcess;
  let dir: string;
  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [cloudBin, ...args, "--data-dir", cloud.dataDir], {
        env: { ...process.env, FIELDGATE_URL: cloud.url },
        cwd: dir,
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  beforeAll(async () => {
    cloud = await startCloud();
    dir = tempDir("bulk-cli");
  });
  afterAll(() => cloud.stop());

  it("imports, writing the tokens only to a 0600 CSV with formula cells escaped", async () => {
    const [a, b] = [newUuid(), newUuid()];
    const input = file("series.csv", `uuid,name\r\n${a},"=HYPERLINK(""x"")"\r\n${b},"press, 2"\r\n`);
    const out = path.join(dir, "tokens.csv");
    const res = await cli("devices", "import", input, "--out", out);
    expect(res.code, `${res.stdout}${res.stderr}`).toBe(0);
    expect(res.stdout).toMatch(new RegExp(`2\\s+${a}\\s+ok`));
    expect(res.stdout).toContain("2 ok, 0 failed");
    expect(res.stdout).toContain(`written to ${out} (mode 0600)`);
    expect(`${res.stdout}${res.stderr}`).not.toContain("fgt_");
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    const lines = fs.readFileSync(out, "utf8").trimEnd().split("\r\n");
    expect(lines[0]).toBe("line,uuid,name,old_uuid,token,window_expires_at");
    expect(lines[1]).toMatch(new RegExp(`^2,${a},"'=HYPERLINK\\(""x""\\)",,fgt_[A-Za-z0-9_-]{43},`));
    expect(lines[2]).toMatch(new RegExp(`^3,${b},"press, 2",,fgt_`));

    // Tokens are never overwritten: an existing --out stops the import before it starts.
    const c = newUuid();
    const again = await cli("devices", "import", file("more.csv", `uuid\n${c}\n`), "--out", out);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("CONFIG_INVALID");
    expect((await cloud.api("GET", `/api/v1/devices/${c}`)).status).toBe(404);
  });

  it("prints each failed row with its line and code, and exits 1", async () => {
    const good = newUuid();
    const input = file("bad.csv", `uuid,name\n${good},ok\nnot-a-uuid,x\n${good},dup\n`);
    const dry = await cli("devices", "import", input, "--dry-run");
    expect(dry.code).toBe(1);
    expect(dry.stdout).toMatch(/3\s+not-a-uuid\s+error\s+VALIDATION_FAILED/);
    expect(dry.stdout).toMatch(/4\s+\S+\s+error\s+CSV_DUPLICATE_UUID/);
    expect(dry.stdout).toContain("nothing was changed");
    const rows = await cli("devices", "import", input, "--mode", "rows", "--out", path.join(dir, "t2.csv"), "--json");
    expect(rows.code).toBe(1);
    const report = JSON.parse(rows.stdout) as { summary: { ok: number }; rows: { token?: string }[] };
    expect(report.summary.ok).toBe(1);
    expect(report.rows[0]?.token).toBe("[written to --out]");
    expect(fs.readFileSync(path.join(dir, "t2.csv"), "utf8")).toContain(good);
  });

  it("edits, transfers, replaces and deletes from files", async () => {
    await cloud.api("POST", "/api/v1/groups", { name: "cli-target" });
    const a = (await registerDevice(cloud)).uuid;
    const b = (await registerDevice(cloud)).uuid;
    expect((await cli("devices", "bulk-edit", file("edit.csv", `uuid,location\n${a},north\n`))).code).toBe(0);
    const moved = await cli("devices", "transfer", file("list.txt", `uuid\n${a}\n${b}\n`), "--to-group", "cli-target");
    expect(moved.code).toBe(0);
    expect(moved.stdout).toContain("2 ok, 0 failed");
    const both = await cli(
      "devices",
      "transfer",
      file("l2.txt", `uuid\n${a}\n`),
      "--to-group",
      "x",
      "--keep-history",
      "--drop-history",
    );
    expect(both.code).toBe(2);

    const c = newUuid();
    const out = path.join(dir, "replace-tokens.csv");
    const replaced = await cli("devices", "replace", file("pairs.csv", `old_uuid,new_uuid\n${a},${c}\n`), "--out", out);
    expect(replaced.code).toBe(0);
    expect(replaced.stdout).toContain(`replaces ${a}`);
    expect(fs.readFileSync(out, "utf8")).toMatch(new RegExp(`2,${c},,${a},fgt_`));
    const device = await cloud.api<{ location: string; group: { fullName: string } }>("GET", `/api/v1/devices/${c}`);
    expect(device.body).toMatchObject({ location: "north", group: { fullName: "default/cli-target" } });

    // Not on a terminal and without --yes, bulk-delete refuses before sending anything.
    const list = file("delete.csv", `uuid\n${b}\n${c}\n`);
    const refused = await cli("devices", "bulk-delete", list);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--yes");
    expect((await cloud.api("GET", `/api/v1/devices/${b}`)).status).toBe(200);
    const deleted = await cli("devices", "bulk-delete", list, "--yes");
    expect(deleted.code).toBe(0);
    expect((await cloud.api("GET", `/api/v1/devices/${b}`)).status).toBe(404);
  });
});

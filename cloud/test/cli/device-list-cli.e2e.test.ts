import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud } from "../../../test/support/cloud-process.js";
import { newUuid } from "../../../test/support/device-identity.js";

const run = promisify(execFile);

describe("fieldgate-cloud devices list (filters, columns, formats)", () => {
  let cloud: CloudProcess;
  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [cloudBin, ...args, "--data-dir", cloud.dataDir], {
        env: { ...process.env, FIELDGATE_URL: cloud.url },
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  const uuids: string[] = [];

  beforeAll(async () => {
    cloud = await startCloud();
    const plant = (await cloud.api<{ id: number }>("POST", "/api/v1/groups", { name: "plant" })).body;
    await cloud.api("POST", "/api/v1/groups", { name: "line", parent: plant.id });
    for (const [name, group, tags] of [
      ["press-1", "plant", ["hot"]],
      ["press-2", "plant/line", ["hot", "loud"]],
      ["=cmd|' /C calc'!A0", "default", ["cold"]],
    ] as const) {
      const uuid = newUuid();
      uuids.push(uuid);
      const res = await cloud.api("POST", "/api/v1/devices", { uuid, name, group, tags });
      expect(res.status, res.text).toBe(201);
    }
  });
  afterAll(() => cloud.stop());

  it("filters and picks table columns", async () => {
    const table = await cli("devices", "list", "--tag", "hot", "--columns", "name,group,tags", "--sort", "-name");
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split("\n").map((l) => l.trimEnd())).toEqual([
      "NAME     GROUP               TAGS",
      "press-2  default/plant/line  hot loud",
      "press-1  default/plant       hot",
      "2 of 2 device(s)",
      "",
    ]);
    const exact = await cli("devices", "list", "--group", "plant", "--columns", "name");
    expect(exact.stdout).toContain("press-1");
    expect(exact.stdout).not.toContain("press-2");
    const tree = await cli(
      "devices",
      "list",
      "--group",
      "plant",
      "--include-subgroups",
      "--offline",
      "--columns",
      "name",
    );
    expect(tree.stdout).toContain("press-2");
    expect(tree.stdout).toContain("2 of 2 device(s)");
    const none = await cli("devices", "list", "--online", "--columns", "name");
    expect(none.stdout).toContain("0 of 0 device(s)");
  });

  it("exports CSV and JSON to stdout through the export endpoint, escaping formulas", async () => {
    const csv = await cli("devices", "list", "--format", "csv", "--columns", "name,tags", "--sort", "name");
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stdout).toBe(`name,tags\r\n'=cmd|' /C calc'!A0,cold\r\npress-1,hot\r\npress-2,hot loud\r\n`);
    const json = await cli("devices", "list", "--json", "--columns", "uuid", "--tag", "loud");
    expect(JSON.parse(json.stdout)).toEqual([{ uuid: uuids[1] }]);
    const same = await cli("devices", "list", "--format", "json", "--columns", "uuid", "--tag", "loud");
    expect(same.stdout).toBe(json.stdout);
  });

  it("refuses more than eight columns, an unknown format, and --online with --offline (exit 2)", async () => {
    const nine = await cli("devices", "list", "--columns", "uuid,name,location,comment,tags,group,type,status,online");
    expect(nine.code).toBe(2);
    expect(nine.stderr).toMatch(/error VALIDATION_FAILED: columns: at most 8 .*\(field: columns\)/);
    const format = await cli("devices", "list", "--format", "xml");
    expect(format.code).toBe(2);
    expect(format.stderr).toContain("(field: format)");
    const both = await cli("devices", "list", "--online", "--offline");
    expect(both.code).toBe(2);
    const badSort = await cli("devices", "list", "--sort", "colour", "--format", "csv");
    expect(badSort.code).toBe(2);
    expect(badSort.stderr).toContain("(field: sort)");
  });
});

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud } from "../../../test/support/cloud-process.js";
import { newUuid } from "../../../test/support/device-identity.js";

const run = promisify(execFile);

describe("fieldgate-cloud devices (operator CLI)", () => {
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
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(() => cloud.stop());

  it("adds, lists, shows, edits, resets and deletes a device, finding credentials in --data-dir", async () => {
    const uuid = newUuid();
    const add = await cli(
      "devices",
      "add",
      uuid,
      "--name",
      "press-4",
      "--location",
      "hall 2",
      "--tag",
      "line-a",
      "line-b",
    );
    expect(add.code).toBe(0);
    expect(add.stdout).toContain(`registered ${uuid}`);
    expect(add.stdout).toMatch(/enrollment token \(shown once\): fgt_/);

    const list = await cli("devices", "list", "-q", "press-4");
    expect(list.stdout).toMatch(
      new RegExp(`${uuid}\\s+press-4\\s+offline \\(last: unknown\\)\\s+never\\s+none\\s+open`),
    );
    // Not a terminal: words only, no colour codes.
    expect(list.stdout).not.toContain("\\u001b[");

    const show = await cli("devices", "show", uuid, "--json");
    const device = JSON.parse(show.stdout) as { name: string; tags: string[]; window: { open: boolean } };
    expect(device).toMatchObject({ name: "press-4", tags: ["line-a", "line-b"], window: { open: true } });
    const human = await cli("devices", "show", uuid);
    for (const label of ["status:", "last seen:", "certificate:", "cert expires:", "window:", "readings:"])
      expect(human.stdout).toContain(label);

    expect((await cli("devices", "edit", uuid, "--name", "press-5")).stdout).toContain(`updated ${uuid}`);
    const reset = await cli("devices", "reset-token", uuid, "--json");
    expect(JSON.parse(reset.stdout).enrollmentToken).toMatch(/^fgt_/);

    const telemetry = await cli("devices", "telemetry", uuid);
    expect(telemetry.stdout).toContain("0 shown, 0 stored");

    const refused = await cli("devices", "delete", uuid);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--yes");
    expect((await cli("devices", "delete", uuid, "--yes")).stdout).toContain(`deleted ${uuid}`);
    const gone = await cli("devices", "show", uuid);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("error DEVICE_NOT_FOUND");
  });

  it("prints a coded error naming the field for bad input, and for a wrong credential", async () => {
    const bad = await cli("devices", "add", "not-a-uuid");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/error VALIDATION_FAILED: uuid .*\(field: uuid\)/);
    const wrong = await cli("devices", "list", "--credential", `${cloud.credential.id}:fgs_nope`);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("error AUTH_REQUIRED");
  });
});

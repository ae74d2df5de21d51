import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud, tempDir } from "../../../test/support/cloud-process.js";

describe("fieldgate-cloud groups, device-types, credentials, users, login (operator CLI)", () => {
  let cloud: CloudProcess;
  let configHome: string;
  /** Runs the CLI; `input` goes to stdin (passwords are read from there when it is not a terminal). */
  const cli = (args: string[], input = "", env: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [cloudBin, ...args], {
        env: { ...process.env, FIELDGATE_DATA_DIR: cloud.dataDir, XDG_CONFIG_HOME: configHome, ...env },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
      child.stdin.end(input);
    });

  beforeAll(async () => {
    cloud = await startCloud();
    configHome = tempDir("xdg");
  });
  afterAll(() => cloud.stop());

  it("manages the group tree by name paths", async () => {
    expect((await cli(["groups", "create", "plant-a", "--timezone", "Europe/Vienna"])).stdout).toMatch(
      /created group default\/plant-a \(id \d+\)/,
    );
    expect((await cli(["groups", "create", "line-1", "--parent", "plant-a"])).code).toBe(0);
    expect((await cli(["groups", "create", "plant-b"])).code).toBe(0);
    const moved = await cli(["groups", "move", "plant-a/line-1", "--to", "plant-b"]);
    expect(moved.stdout).toContain("moved to default/plant-b/line-1");
    const edited = await cli(["groups", "edit", "plant-b/line-1", "--description", "assembly", "--json"]);
    expect(JSON.parse(edited.stdout)).toMatchObject({ fullName: "default/plant-b/line-1", description: "assembly" });
    const list = await cli(["groups", "list"]);
    expect(list.stdout).toMatch(/default\/plant-b\/line-1\s+Europe\/Vienna/);
    const refused = await cli(["groups", "delete", "plant-b"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("error GROUP_NOT_EMPTY");
    const missing = await cli(["groups", "show", "nowhere"]);
    expect(missing.stderr).toContain("error GROUP_NOT_FOUND");
  });

  it("creates a device type with a keep-alive and files a device under it", async () => {
    expect((await cli(["device-types", "create", "meter-x", "--group", "plant-b", "--keepalive", "15"])).code).toBe(0);
    const list = await cli(["device-types", "list"]);
    expect(list.stdout).toMatch(/meter-x\s+default\/plant-b\s+15 min\s+meter-x\s+0/);
    const add = await cli([
      "devices",
      "add",
      "0b6a2f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
      "--group",
      "plant-b/line-1",
      "--type",
      "meter-x",
    ]);
    expect(add.code).toBe(0);
    const show = await cli(["devices", "show", "0b6a2f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b", "--json"]);
    expect(JSON.parse(show.stdout)).toMatchObject({
      group: { fullName: "default/plant-b/line-1" },
      type: { name: "meter-x" },
    });
  });

  it("creates a scoped credential whose secret works once shown, and regenerates it", async () => {
    const made = await cli([
      "credentials",
      "create",
      "--name",
      "erp",
      "--role",
      "viewer",
      "--group",
      "plant-b",
      "--json",
    ]);
    const { credential, secret } = JSON.parse(made.stdout) as { credential: { id: string }; secret: string };
    const who = await cli(["whoami"], "", { FIELDGATE_CREDENTIAL: `${credential.id}:${secret}` });
    expect(who.stdout).toContain("viewer on default/plant-b");
    const listed = await cli(["credentials", "list"]);
    expect(listed.stdout).toContain(credential.id);
    expect(listed.stdout).not.toContain(secret);
    expect((await cli(["credentials", "regenerate", credential.id])).stdout).toContain("secret (shown once): fgs_");
    const stale = await cli(["whoami"], "", { FIELDGATE_CREDENTIAL: `${credential.id}:${secret}` });
    expect(stale.stderr).toContain("error AUTH_REQUIRED");
  });

  it("creates a user, logs in with the password on stdin, saves the session 0600, and logs out", async () => {
    const created = await cli(
      ["users", "create", "ops@example.test", "--role", "plant-b=device-manager"],
      "a long enough password\n",
    );
    expect(created.stdout).toContain("device-manager on default/plant-b");
    const login = await cli(["login", "--email", "ops@example.test"], "a long enough password\n");
    expect(login.code).toBe(0);
    const file = path.join(configHome, "fieldgate", "session.json");
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // Without the admin credential file in reach, the saved session is what authenticates.
    const who = await cli([
      "whoami",
      "--data-dir",
      tempDir("elsewhere"),
      "--url",
      cloud.url,
      "--ca-file",
      cloud.caFile,
    ]);
    expect(who.stdout).toContain("user user:");
    expect(who.stdout).toContain("device-manager on default/plant-b");
    expect((await cli(["logout"])).stdout).toContain("logged out");
    expect(fs.existsSync(file)).toBe(false);
    const wrong = await cli(["login", "--email", "ops@example.test"], "not the password\n");
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("error LOGIN_FAILED");
  });
});

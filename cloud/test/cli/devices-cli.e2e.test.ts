import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentCli } from "../../../test/support/agent-process.js";
import { type CloudProcess, cloudBin, eventually, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import { connectDevice, enrollWithToken, newUuid } from "../../../test/support/device-identity.js";

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

  it("devices add prints the gateway's enroll command ready to paste: URL, uuid, token, CA to copy, config", async () => {
    const uuid = newUuid();
    const add = await cli("devices", "add", uuid);
    expect(add.code).toBe(0);
    const token = /enrollment token \(shown once\): (fgt_\S+)/.exec(add.stdout)?.[1] ?? "";
    expect(token).not.toBe("");
    expect(add.stdout).not.toMatch(/<url>|<token>|<ca\.crt>/);
    expect(add.stdout).toContain(
      `1. copy ${path.join(cloud.dataDir, "pki", "ca.crt")} from this host to /etc/fieldgate/ca.crt`,
    );
    const command = /^ {2}2\. (fieldgate-agent enroll .*)$/m.exec(add.stdout)?.[1] ?? "";
    expect(command).toBe(
      `fieldgate-agent enroll --cloud https://${os.hostname()}:${cloud.httpPort} --uuid ${uuid} --token ${token} --ca-file /etc/fieldgate/ca.crt --config /etc/fieldgate/agent.json`,
    );

    // Pasted on a gateway, with the CA copied where the line says: the agent enrolls. This test host's
    // name may not resolve to the loopback the cloud listens on, so the host is swapped for localhost;
    // the paths under /etc/fieldgate move into a temporary gateway directory.
    const gateway = tempDir("gateway");
    fs.copyFileSync(cloud.caFile, path.join(gateway, "ca.crt"));
    const args = command
      .replace(/^fieldgate-agent /, "")
      .replace(`https://${os.hostname()}:`, "https://localhost:")
      .replace("/etc/fieldgate/ca.crt", path.join(gateway, "ca.crt"))
      .replace("/etc/fieldgate/agent.json", path.join(gateway, "agent.json"))
      .split(" ");
    const enrolled = await agentCli([...args, "--data-dir", path.join(gateway, "data")]);
    expect(enrolled.stderr).toBe("");
    expect(enrolled.stdout).toContain(`enrolled ${uuid}`);
    const written = JSON.parse(fs.readFileSync(path.join(gateway, "agent.json"), "utf8")) as { uuid: string };
    expect(written.uuid).toBe(uuid);
  });

  it("reset-token says what it did: nothing revoked for a device never enrolled; offline after the drop for a live one", async () => {
    const fresh = newUuid();
    expect((await cli("devices", "add", fresh)).code).toBe(0);
    const never = await cli("devices", "reset-token", fresh);
    expect(never.code).toBe(0);
    expect(never.stdout).toContain(`new window opened for ${fresh} (it had no valid certificate to revoke)`);
    expect(never.stdout).not.toContain("revoked ");
    expect(never.stdout).toMatch(/fieldgate-agent enroll --cloud https:\/\/\S+ --uuid \S+ --token fgt_/);

    const live = newUuid();
    const added = JSON.parse((await cli("devices", "add", live, "--json")).stdout) as { enrollmentToken: string };
    const device = await enrollWithToken(cloud, live, added.enrollmentToken);
    const mqtt = await connectDevice(cloud, device, live);
    try {
      await eventually(async () => {
        const shown = JSON.parse((await cli("devices", "show", live, "--json")).stdout) as { online: boolean };
        return shown.online ? true : undefined;
      });
      const reset = JSON.parse((await cli("devices", "reset-token", live, "--json")).stdout) as {
        revokedCertificates: number;
        device: { online: boolean; offlineReason: string | null };
      };
      expect(reset.revokedCertificates).toBe(1);
      expect(reset.device).toMatchObject({ online: false, offlineReason: "revoked" });
      const again = await cli("devices", "reset-token", live);
      expect(again.stdout).toContain("(it had no valid certificate to revoke)");
    } finally {
      mqtt.end(true);
    }
  });
});

import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { startCloud, tempDir } from "../../../test/support/cloud-process.js";
import { registerAndEnroll } from "../../../test/support/device-identity.js";

const cloudMain = path.resolve(import.meta.dirname, "../../dist/cli/main.js");
const mode = (file: string) => fs.statSync(file).mode & 0o777;

describe("first start and later starts", () => {
  it("creates the CA, server certificate, database and admin credential with private modes, then reuses them", async () => {
    const dataDir = tempDir("first-start");
    const first = await startCloud({ dataDir, args: ["--hostname", "gw.example.test", "--hostname", "10.1.2.3"] });
    let device: Awaited<ReturnType<typeof registerAndEnroll>>;
    try {
      for (const f of [
        "pki/ca.key",
        "pki/server.key",
        "admin-credential.json",
        "host-credential.json",
        "fieldgate.db",
      ]) {
        expect(mode(path.join(dataDir, f)), f).toBe(0o600);
      }
      expect(mode(dataDir)).toBe(0o700);
      const san = execFileSync("openssl", [
        "x509",
        "-in",
        path.join(dataDir, "pki/server.crt"),
        "-noout",
        "-ext",
        "subjectAltName",
      ]).toString();
      expect(san).toContain("DNS:gw.example.test");
      expect(san).toContain("IP Address:10.1.2.3");
      expect(san).toContain("DNS:localhost");
      expect(first.terminal.join("\n")).toContain("shown once");
      device = await registerAndEnroll(first);
    } finally {
      await first.stop();
    }
    const caBefore = fs.readFileSync(path.join(dataDir, "pki/ca.crt"), "utf8");
    const hostBefore = fs.readFileSync(path.join(dataDir, "host-credential.json"), "utf8");
    const second = await startCloud({ dataDir, args: ["--hostname", "gw.example.test", "--hostname", "10.1.2.3"] });
    try {
      expect(fs.readFileSync(path.join(dataDir, "pki/ca.crt"), "utf8")).toBe(caBefore);
      // Same admin credential, and no new secret printed.
      expect(second.credential).toEqual(first.credential);
      // The host credential too is made once: the file is not rewritten.
      expect(fs.readFileSync(path.join(dataDir, "host-credential.json"), "utf8")).toBe(hostBefore);
      expect(second.terminal.join("\n")).not.toContain("shown once");
      const show = await second.api<{ certificate: { serial: string } }>("GET", `/api/v1/devices/${device.uuid}`);
      expect(show.body.certificate.serial).toBe(device.serial);
    } finally {
      await second.stop();
    }
  });

  it("names the flag when a port is already taken", async () => {
    const taken = await startCloud();
    try {
      const result = spawnSync(
        process.execPath,
        [cloudMain, "serve", "--host", "127.0.0.1", "--http-port", "0", "--mqtt-port", String(taken.mqttPort)],
        {
          env: { ...process.env, FIELDGATE_DATA_DIR: tempDir("taken") },
          encoding: "utf8",
        },
      );
      expect(result.status).toBe(2);
      expect(result.stderr).toContain(
        `error CONFIG_INVALID: port ${taken.mqttPort} is already in use; pick another with --mqtt-port`,
      );
    } finally {
      await taken.stop();
    }
  });

  it("refuses a bad flag with CONFIG_INVALID naming it, and exit code 2", () => {
    let status = 0;
    let stderr = "";
    try {
      execFileSync(
        process.execPath,
        [path.resolve(import.meta.dirname, "../../dist/cli/main.js"), "serve", "--enroll-window", "soon"],
        {
          stdio: "pipe",
          env: { ...process.env, FIELDGATE_DATA_DIR: tempDir("badflag") },
        },
      );
    } catch (err) {
      status = (err as { status: number }).status;
      stderr = String((err as { stderr: Buffer }).stderr);
    }
    expect(status).toBe(2);
    expect(stderr).toContain("error CONFIG_INVALID: --enroll-window");
  });
});

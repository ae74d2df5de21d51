import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { type CloudProcess, serveArgs, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import { DataDirLock } from "../../src/config/data-dir-lock.js";

const mode = (file: string) => fs.statSync(file).mode & 0o777;
const pkiFiles = (dataDir: string) => fs.readdirSync(path.join(dataDir, "pki")).sort();
const read = (dataDir: string, file: string) => fs.readFileSync(path.join(dataDir, "pki", file));

/** A pid that ran and is gone: a child that exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  const pid = child.pid ?? 0;
  await new Promise((resolve) => child.once("exit", resolve));
  return pid;
}

describe("one cloud per data directory (issue #11 item 8)", () => {
  it("refuses a second serve with DATA_DIR_LOCKED naming the running pid, touching nothing; the first keeps serving", async () => {
    const dataDir = tempDir("lock-second");
    const first = await startCloud({ dataDir, args: ["--hostname", "gw.example.test"] });
    try {
      const certBefore = read(dataDir, "server.crt");
      const keyBefore = read(dataDir, "server.key");
      const filesBefore = pkiFiles(dataDir);
      const lock = JSON.parse(fs.readFileSync(path.join(dataDir, "cloud.lock"), "utf8")) as { pid: number };
      expect(lock.pid).toBe(first.child.pid);

      // Without --hostname: before the lock, this start rewrote the server certificate without the name.
      const second = spawnSync(process.execPath, serveArgs(dataDir), { encoding: "utf8", timeout: 20_000 });
      expect(second.status, second.stderr).toBe(1);
      expect(second.stderr).toMatch(
        new RegExp(`^error DATA_DIR_LOCKED: .* in use by fieldgate-cloud pid ${first.child.pid}\\b.*--data-dir`),
      );
      expect(second.stderr).not.toMatch(/\n\s+at /);

      expect(read(dataDir, "server.crt").equals(certBefore)).toBe(true);
      expect(read(dataDir, "server.key").equals(keyBefore)).toBe(true);
      expect(pkiFiles(dataDir)).toEqual(filesBefore);
      expect((await first.api("GET", "/api/v1/health", undefined, false)).status).toBe(200);
      expect(JSON.parse(fs.readFileSync(path.join(dataDir, "cloud.lock"), "utf8")).pid).toBe(first.child.pid);
    } finally {
      await first.stop();
    }
    expect(fs.existsSync(path.join(dataDir, "cloud.lock"))).toBe(false);
  });

  it("keeps the server certificate byte for byte across restarts with the same names; new names reissue it and keep the old pair aside", async () => {
    const dataDir = tempDir("lock-names");
    let cloud: CloudProcess = await startCloud({ dataDir, args: ["--hostname", "gw.example.test"] });
    await cloud.stop();
    const cert = read(dataDir, "server.crt");
    const key = read(dataDir, "server.key");

    cloud = await startCloud({ dataDir, args: ["--hostname", "gw.example.test"] });
    await cloud.stop();
    expect(read(dataDir, "server.crt").equals(cert)).toBe(true);
    expect(read(dataDir, "server.key").equals(key)).toBe(true);
    expect(pkiFiles(dataDir).filter((f) => f.endsWith(".old"))).toEqual([]);

    cloud = await startCloud({ dataDir, args: ["--hostname", "gw.example.test", "--hostname", "gw2.example.test"] });
    try {
      expect(read(dataDir, "server.crt").equals(cert)).toBe(false);
      const old = pkiFiles(dataDir).filter((f) => f.endsWith(".old"));
      expect(old).toHaveLength(2);
      const oldCert = old.find((f) => f.startsWith("server.crt.")) ?? "";
      const oldKey = old.find((f) => f.startsWith("server.key.")) ?? "";
      expect(read(dataDir, oldCert).equals(cert)).toBe(true);
      expect(read(dataDir, oldKey).equals(key)).toBe(true);
      expect(mode(path.join(dataDir, "pki", oldKey))).toBe(0o600);
      // The reissued certificate is the one served.
      expect(cloud.logs.join("\n")).toContain("issued the server certificate");
    } finally {
      await cloud.stop();
    }
  });

  it("takes over a stale lock: its process is gone, or its pid now runs another program", async () => {
    const other = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    try {
      for (const pid of [await deadPid(), other.pid ?? 0]) {
        const dataDir = tempDir("lock-stale");
        fs.writeFileSync(
          path.join(dataDir, "cloud.lock"),
          JSON.stringify({ pid, startedAt: "2026-01-01T00:00:00.000Z" }),
        );
        const cloud = await startCloud({ dataDir });
        try {
          expect(JSON.parse(fs.readFileSync(path.join(dataDir, "cloud.lock"), "utf8")).pid).toBe(cloud.child.pid);
        } finally {
          await cloud.stop();
        }
      }
    } finally {
      other.kill();
    }
  });
});

describe("DataDirLock", () => {
  it("refuses while the holder lives, takes over when it is gone, and releases only its own lock", () => {
    const dir = tempDir("lock-unit");
    const alive = new Set([111]);
    const isAlive = (pid: number) => alive.has(pid);
    const first = DataDirLock.acquire(dir, { pid: 111, isAlive });
    expect(() => DataDirLock.acquire(dir, { pid: 222, isAlive })).toThrow(
      expect.objectContaining({ code: "DATA_DIR_LOCKED", message: expect.stringContaining("pid 111") }),
    );
    alive.delete(111);
    const second = DataDirLock.acquire(dir, { pid: 222, isAlive });
    first.release(); // no longer the holder: must not remove the new lock
    expect(JSON.parse(fs.readFileSync(DataDirLock.lockFile(dir), "utf8")).pid).toBe(222);
    second.release();
    expect(fs.existsSync(DataDirLock.lockFile(dir))).toBe(false);
    // An unreadable lock (a crash mid-write in an older version) is replaced too.
    fs.writeFileSync(DataDirLock.lockFile(dir), "");
    DataDirLock.acquire(dir, { pid: 333, isAlive }).release();
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { RebootingScriptInstaller, ScriptInstaller } from "../../src/update/installers.js";
import { UpdateJobStore } from "../../src/update/update-job-store.js";
import { startJitterDelay, type UpdateMachineDeps } from "../../src/update/update-machine.js";
import { FakeHealth, NEW_IMAGE, signedImage, useDevice } from "./update-harness.js";

describe("UpdateMachine", () => {
  const fx = useDevice();

  it("reports every step in order with progress, then SUCCEEDED", async () => {
    expect(await fx.dev.machine().submit({ jobId: "j1", signed: fx.signed })).toBe(true);
    const steps = fx.dev.reports.map((r) => `${r.status.status}:${r.status.step ?? ""}`);
    expect(steps).toEqual([
      "QUEUED:QUEUED",
      "IN_PROGRESS:CHECKING_PERMISSIONS",
      "IN_PROGRESS:DOWNLOADING",
      "IN_PROGRESS:DOWNLOADING",
      "IN_PROGRESS:VERIFYING",
      "IN_PROGRESS:INSTALLING",
      "IN_PROGRESS:ACTIVATING",
      "IN_PROGRESS:CONFIRMING",
      "SUCCEEDED:CONFIRMING",
    ]);
    const downloads = fx.dev.reports.filter((r) => r.status.step === "DOWNLOADING").map((r) => r.status.progress);
    expect(downloads).toEqual([
      { done: 0, total: NEW_IMAGE.length },
      { done: NEW_IMAGE.length, total: NEW_IMAGE.length },
    ]);
    expect(fx.dev.reports.find((r) => r.status.step === "INSTALLING")?.status.progress).toEqual({ done: 4, total: 6 });
    expect(fx.dev.current()).toBe("b");
    expect(fx.dev.versions.get()).toBe("2.0.0");
  });

  it("a rollout's rollback job returns to the version the last update replaced, and to no other", async () => {
    await fx.dev.machine().submit({ jobId: "up", signed: fx.signed });
    expect(fx.dev.versions.get()).toBe("2.0.0");
    const back = Buffer.from("old firmware 1.0.0 ".repeat(40));
    const older = Buffer.from("older firmware 0.9.0 ".repeat(40));
    const signedBack = signedImage("1.0.0", back);
    fx.dev.publish(signedBack, back);
    fx.dev.publish(signedImage("0.9.0", older), older);
    // Not marked rollback: anti-rollback refuses the downgrade as ever.
    await fx.dev.machine().submit({ jobId: "plain", signed: signedBack });
    expect(fx.dev.last("plain")).toMatchObject({ status: "REJECTED", reason: "FIRMWARE_NOT_NEWER" });
    // Marked rollback, but to a version this device never replaced.
    await fx.dev.machine().submit({ jobId: "far", signed: signedImage("0.9.0", older), rollback: true });
    expect(fx.dev.last("far")).toMatchObject({ status: "REJECTED", reason: "FIRMWARE_NOT_NEWER" });
    await fx.dev.machine().submit({ jobId: "back", signed: signedBack, rollback: true });
    expect(fx.dev.last("back")).toMatchObject({ status: "SUCCEEDED" });
    expect(fx.dev.versions.get()).toBe("1.0.0");
    // The rollback is spent: the way back to 2.0.0 is an ordinary (newer) update again.
    expect(fx.dev.versions.previous()).toBe("2.0.0");
  });

  it("a cancel from the cloud stops a job before INSTALLING, and is ignored once it installs", async () => {
    // Cancelled while its download runs: the download ends, the install never starts.
    const honoured: boolean[] = [];
    const m = fx.dev.machine({
      onPersist: (state, moment) => {
        if (state === "DOWNLOADING" && moment === "persisted") honoured.push(m.cancel("c1"));
      },
    });
    await m.submit({ jobId: "c1", signed: fx.signed });
    expect(honoured).toEqual([true]);
    expect(fx.dev.last("c1")).toMatchObject({ status: "FAILED", reason: "JOB_CANCELLED" });
    expect(fx.dev.reports.filter((r) => r.jobId === "c1").map((r) => r.status.step)).not.toContain("INSTALLING");
    expect(fx.dev.versions.get()).toBe("1.0.0");
    expect(fx.dev.current()).toBe("a");
    // Unknown and ended jobs are not cancellable.
    expect(m.cancel("nobody")).toBe(false);
    expect(m.cancel("c1")).toBe(false);
    // Once INSTALLING is persisted the cancel is refused and the update completes.
    const refused: boolean[] = [];
    const late = fx.dev.machine({
      onPersist: (state, moment) => {
        if (state === "INSTALLING" && moment === "persisted") refused.push(late.cancel("c2"));
      },
    });
    await late.submit({ jobId: "c2", signed: fx.signed });
    expect(refused).toEqual([false]);
    expect(fx.dev.last("c2")).toMatchObject({ status: "SUCCEEDED" });
  });

  it("the script installer runs argv with {image} and puts its output in the report", async () => {
    const out = join(fx.tmp.dir, "installed.bin");
    const script = join(fx.tmp.dir, "install.mjs");
    writeFileSync(
      script,
      `import { copyFileSync } from "node:fs";\ncopyFileSync(process.argv[2], process.argv[3]);\nconsole.log("flashed", process.argv[2].length > 0);\n`,
    );
    const installer = new ScriptInstaller({ command: [process.execPath, script, "{image}", out], timeoutMs: 10_000 });
    await fx.dev.machine({}, installer).submit({ jobId: "s1", signed: fx.signed });
    expect(fx.dev.last("s1")).toMatchObject({ status: "SUCCEEDED", message: "flashed true\n" });
    expect(fx.dev.versions.get()).toBe("2.0.0");
    expect(readFileSync(out).equals(NEW_IMAGE)).toBe(true);
  });

  it("a failing script ends FAILED with INSTALL_FAILED and its output; the version stays", async () => {
    const installer = new ScriptInstaller({
      command: [process.execPath, "-e", "console.error('no flash chip'); process.exit(3)", "{image}"],
      timeoutMs: 10_000,
    });
    await fx.dev.machine({}, installer).submit({ jobId: "s2", signed: fx.signed });
    const last = fx.dev.last("s2");
    expect(last).toMatchObject({ status: "FAILED", reason: "INSTALL_FAILED" });
    expect(last?.message).toContain("exited with 3: no flash chip");
    expect(fx.dev.versions.get()).toBe("1.0.0");
  });

  it("health never ok within the deadline: ROLLED_BACK with HEALTH_NOT_OK, old slot active", async () => {
    const m = fx.dev.machine({
      health: new FakeHealth("critical"),
      options: { confirmDeadlineMs: 50, jobTimeoutMs: 60_000 },
    });
    await m.submit({ jobId: "h1", signed: fx.signed });
    expect(fx.dev.last("h1")).toMatchObject({ status: "ROLLED_BACK", reason: "HEALTH_NOT_OK" });
    expect(fx.dev.current()).toBe("a");
    expect(fx.dev.slotImage("b")).toBeUndefined();
    expect(fx.dev.versions.get()).toBe("1.0.0");
  });

  it("health turning ok before the deadline confirms", async () => {
    const health = new FakeHealth("critical");
    const m = fx.dev.machine({ health, options: { confirmDeadlineMs: 5_000, jobTimeoutMs: 60_000 } });
    const done = m.submit({ jobId: "h2", signed: fx.signed });
    await new Promise((r) => setTimeout(r, 50));
    health.set("ok");
    await done;
    expect(fx.dev.last("h2")?.status).toBe("SUCCEEDED");
  });

  it("a failing confirm command rolls back with CONFIRM_FAILED", async () => {
    const m = fx.dev.machine({
      options: {
        confirmDeadlineMs: 5_000,
        jobTimeoutMs: 60_000,
        confirmCommand: [process.execPath, "-e", "process.exit(1)"],
      },
    });
    await m.submit({ jobId: "c1", signed: fx.signed });
    expect(fx.dev.last("c1")).toMatchObject({ status: "ROLLED_BACK", reason: "CONFIRM_FAILED" });
    expect(fx.dev.current()).toBe("a");
  });

  describe("a script installer that reboots", () => {
    /** The "device": a file holding the version it boots; the reboot command writes what was flashed. */
    const rebooting = (comesBackOn: string, powerOn = true) => {
      const booted = join(fx.tmp.dir, "booted-version");
      const rebooted = join(fx.tmp.dir, "rebooted");
      if (powerOn) writeFileSync(booted, "1.0.0\n");
      const installer = new RebootingScriptInstaller(
        { command: [process.execPath, "-e", "console.log('flashed')", "{image}"], timeoutMs: 10_000 },
        {
          rebootCommand: [
            process.execPath,
            "-e",
            `const fs = require("node:fs"); fs.writeFileSync(${JSON.stringify(booted)}, ${JSON.stringify(comesBackOn)}); fs.writeFileSync(${JSON.stringify(rebooted)}, "")`,
          ],
          versionCommand: [
            process.execPath,
            "-e",
            `process.stdout.write(require("node:fs").readFileSync(${JSON.stringify(booted)}, "utf8"))`,
          ],
        },
      );
      return { installer, rebooted };
    };
    /** Runs the job up to the reboot, then "powers off" (stops the machine) and boots a new one. */
    const throughReboot = async (comesBackOn: string) => {
      const { installer, rebooted } = rebooting(comesBackOn);
      const first = fx.dev.machine({ options: { confirmDeadlineMs: 30_000, jobTimeoutMs: 60_000 } }, installer);
      const running = first.submit({ jobId: "rb", signed: fx.signed });
      while (!existsSync(rebooted)) await new Promise((r) => setTimeout(r, 20));
      await first.stop();
      await running;
      expect(fx.dev.statuses("rb").at(-1)).toBe("IN_PROGRESS");
      await fx.dev.machine({}, rebooting(comesBackOn, false).installer).resumeOnBoot();
    };

    it("confirms after the device comes back on the new version", async () => {
      await throughReboot("2.0.0");
      expect(fx.dev.last("rb")).toMatchObject({ status: "SUCCEEDED" });
      expect(fx.dev.versions.get()).toBe("2.0.0");
    });

    it("rolls back when the device comes back on another version (UPDATE_BOOT_FAILED)", async () => {
      await throughReboot("1.0.0");
      const last = fx.dev.last("rb");
      expect(last).toMatchObject({ status: "ROLLED_BACK", reason: "UPDATE_BOOT_FAILED" });
      expect(last?.message).toContain("the device runs 1.0.0, not 2.0.0");
      expect(fx.dev.versions.get()).toBe("1.0.0");
    });

    it("a failing reboot command rolls back with its output", async () => {
      const installer = new RebootingScriptInstaller(
        { command: [process.execPath, "-e", "", "{image}"], timeoutMs: 10_000 },
        {
          rebootCommand: [process.execPath, "-e", "console.error('not permitted'); process.exit(1)"],
          versionCommand: [process.execPath, "-e", "console.log('1.0.0')"],
        },
      );
      await fx.dev.machine({}, installer).submit({ jobId: "rb2", signed: fx.signed });
      const last = fx.dev.last("rb2");
      expect(last).toMatchObject({ status: "ROLLED_BACK", reason: "UPDATE_BOOT_FAILED" });
      expect(last?.message).toContain("not permitted");
    });
  });

  const permissionCases: [string, Partial<UpdateMachineDeps>][] = [
    ["UPDATES_DISABLED", { updatesEnabled: false }],
    ["CERT_UNKNOWN", { certificateNotAfter: () => undefined }],
    ["CERT_EXPIRED", { certificateNotAfter: () => Date.now() - 1 }],
    ["FIRMWARE_INCOMPATIBLE", { deviceFirmwareCompat: "gw-b" }],
    ["DISK_FULL", { freeBytes: () => NEW_IMAGE.length * 2 - 1 }],
    ["AGENT_TOO_OLD", { agentVersion: "0.0.1" }],
  ];
  it.each(permissionCases)("CHECKING_PERMISSIONS fails with %s and touches nothing", async (reason, over) => {
    const image =
      reason === "AGENT_TOO_OLD" ? signedImage("2.0.0", NEW_IMAGE, { minAgentVersion: "0.1.0" }) : fx.signed;
    await fx.dev.machine(over).submit({ jobId: "p1", signed: image });
    const steps = fx.dev.reports.map((r) => r.status.step);
    expect(steps.at(-2)).toBe("CHECKING_PERMISSIONS");
    expect(fx.dev.last("p1")).toMatchObject({ status: "FAILED", reason });
    expect(fx.dev.current()).toBe("a");
    expect(fx.dev.versions.get()).toBe("1.0.0");
  });

  it("a bad signature fails at VERIFYING, before any install", async () => {
    await fx.dev.machine({ publicKeys: () => [] }).submit({ jobId: "v1", signed: fx.signed });
    expect(fx.dev.last("v1")).toMatchObject({ status: "FAILED", reason: "FIRMWARE_SIGNATURE_INVALID" });
    expect(fx.dev.slotImage("b")).toBeUndefined();
  });

  it("a job delivered twice is applied once; an older job after a newer one is REJECTED", async () => {
    const m = fx.dev.machine();
    expect(await m.submit({ jobId: "d1", signed: fx.signed })).toBe(true);
    expect(await m.submit({ jobId: "d1", signed: fx.signed })).toBe(false);
    // Also across a restart: the id is remembered in SQLite.
    expect(await fx.dev.machine().submit({ jobId: "d1", signed: fx.signed })).toBe(false);
    expect(fx.dev.statuses("d1").filter((s) => s === "SUCCEEDED")).toHaveLength(1);
    const older = signedImage("1.5.0", NEW_IMAGE);
    await m.submit({ jobId: "d0", signed: older });
    expect(fx.dev.last("d0")).toMatchObject({ status: "REJECTED", reason: "FIRMWARE_NOT_NEWER" });
    expect(fx.dev.versions.get()).toBe("2.0.0");
  });

  it("jobs submitted together run one after the other", async () => {
    const m = fx.dev.machine();
    const v3 = signedImage("3.0.0", Buffer.from("v3 image"));
    fx.dev.publish(v3, Buffer.from("v3 image"));
    await Promise.all([m.submit({ jobId: "q1", signed: fx.signed }), m.submit({ jobId: "q2", signed: v3 })]);
    expect(fx.dev.last("q1")?.status).toBe("SUCCEEDED");
    expect(fx.dev.last("q2")?.status).toBe("SUCCEEDED");
    expect(fx.dev.current()).toBe("a");
    expect(fx.dev.slotImage("a")?.toString()).toBe("v3 image");
    expect(fx.dev.versions.get()).toBe("3.0.0");
  });

  it("a job past its timeout on boot ends with JOB_TIMEOUT instead of staying IN_PROGRESS", async () => {
    const store = new UpdateJobStore(fx.dev.dbPath);
    store.insert({
      jobId: "t1",
      manifestJson: JSON.stringify(fx.signed),
      deadline: Date.now() - 1,
      now: Date.now() - 10,
    });
    store.update("t1", { state: "DOWNLOADING" }, Date.now());
    store.close();
    await fx.dev.machine().resumeOnBoot();
    expect(fx.dev.last("t1")).toMatchObject({ status: "FAILED", reason: "JOB_TIMEOUT" });
  });

  it("a step still running at the job's timeout ends the job (JOB_TIMEOUT)", async () => {
    const m = fx.dev.machine({
      downloader: { download: () => new Promise<string>(() => undefined) },
      options: { confirmDeadlineMs: 50, jobTimeoutMs: 100 },
    });
    await m.submit({ jobId: "t2", signed: fx.signed });
    expect(fx.dev.last("t2")).toMatchObject({ status: "FAILED", reason: "JOB_TIMEOUT" });
  });

  it("start jitter: the download starts after a random delay in [0, startJitter) (fake timers)", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 1_000_000 });
    try {
      const startedAt: number[] = [];
      const downloader = {
        download: async () => {
          startedAt.push(Date.now());
          throw new Error("stop here");
        },
      };
      const m = fx.dev.machine({
        downloader,
        random: () => 0.25,
        options: { confirmDeadlineMs: 50, jobTimeoutMs: 3_600_000, startJitterMs: 60_000 },
      });
      const done = m.submit({ jobId: "jit", signed: fx.signed });
      await vi.advanceTimersByTimeAsync(14_999);
      expect(startedAt).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      await done;
      expect(startedAt).toEqual([1_000_000 + 15_000]);
      expect(fx.dev.log.lines.some((l) => String(l.msg).includes("start jitter"))).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("start jitter stays within [0, jitter) whatever the random source says", () => {
    for (const r of [0, 1e-9, 0.5, 0.999_999_999, 1]) {
      const d = startJitterDelay(10_000, () => r);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(10_000);
    }
    for (let i = 0; i < 1000; i++) {
      const d = startJitterDelay(250);
      expect(Number.isInteger(d) && d >= 0 && d < 250).toBe(true);
    }
    expect(startJitterDelay(0, () => 0.9)).toBe(0);
  });

  it("a failing reporter is logged and the job still completes", async () => {
    await fx.dev
      .machine({
        reporter: async () => {
          throw new Error("offline");
        },
      })
      .submit({ jobId: "r1", signed: fx.signed });
    expect(fx.dev.versions.get()).toBe("2.0.0");
    expect(fx.dev.log.lines.some((l) => l.msg === "update status report failed")).toBe(true);
  });
});

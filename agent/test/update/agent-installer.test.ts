import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentInstaller } from "../../src/update/agent-installer.js";
import {
  checkTrialAtStart,
  readTrial,
  runLauncher,
  type TrialRecord,
  writeTrial,
} from "../../src/update/agent-launcher.js";
import type { InstallContext } from "../../src/update/installers.js";
import { tempDir } from "../helpers/tmp.js";

/** A minimal agent install: package.json with the version, and a main.js that does `behaviour`. */
function agentInstall(dir: string, version: string, behaviour = "process.exit(0);"): string {
  mkdirSync(join(dir, "dist", "cli"), { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "@fieldgate/agent", version, type: "module" }));
  writeFileSync(join(dir, "dist", "cli", "main.js"), behaviour);
  return dir;
}

function tarball(from: string, out: string, members = ["."]): string {
  execFileSync("tar", ["-czf", out, "-C", from, ...members]);
  return out;
}

describe("AgentInstaller", () => {
  let tmp: ReturnType<typeof tempDir>;
  let root: string;
  let restarts: number;
  beforeEach(() => {
    tmp = tempDir();
    root = join(tmp.dir, "agent");
    agentInstall(join(root, "a"), "1.0.0");
    symlinkSync("a", join(root, "current"));
    restarts = 0;
  });
  afterEach(() => tmp.cleanup());

  const installer = (runningSlot = "a") =>
    new AgentInstaller({
      root,
      maxBoots: 3,
      requestRestart: () => {
        restarts += 1;
      },
      runningFrom: join(root, runningSlot, "dist", "cli", "main.js"),
      now: () => 1000,
    });
  const job = (over: Partial<InstallContext> = {}): InstallContext => ({
    jobId: "job-1",
    version: "2.0.0",
    plan: { target: "b", previous: "a" },
    confirmBy: 5000,
    ...over,
  });

  it("unpacks into the inactive slot, flips current after writing the trial record, asks for a restart", async () => {
    const image = tarball(agentInstall(join(tmp.dir, "src"), "2.0.0"), join(tmp.dir, "agent.tgz"));
    const old = installer("a");
    expect(old.plan()).toEqual({ target: "b", previous: "a" });
    expect(await old.install(image, job())).toContain("slot b");
    expect(JSON.parse(readFileSync(join(root, "b", "package.json"), "utf8")).version).toBe("2.0.0");
    expect(readlinkSync(join(root, "current"))).toBe("a");
    expect(await old.checkRunning(job())).toMatchObject({ running: false });

    await old.activate(job());
    expect(readlinkSync(join(root, "current"))).toBe("b");
    expect(readTrial(root)).toMatchObject({
      jobId: "job-1",
      target: "b",
      previous: "a",
      boots: 0,
      maxBoots: 3,
      confirmBy: 5000,
      state: "trial",
    });
    await old.restart();
    expect(restarts).toBe(1);

    // The new agent, loaded from slot b: it runs, and its commit ends the trial.
    const fresh = installer("b");
    expect(await fresh.checkRunning(job())).toEqual({ running: true });
    await fresh.commit(job());
    expect(readTrial(root)).toBeUndefined();
    expect(readlinkSync(join(root, "current"))).toBe("b");
  });

  it("the new agent rolling itself back flips current back and restarts into the old one", async () => {
    const image = tarball(agentInstall(join(tmp.dir, "src"), "2.0.0"), join(tmp.dir, "agent.tgz"));
    await installer("a").install(image, job());
    await installer("a").activate(job());
    await installer("b").rollback(job());
    expect(readlinkSync(join(root, "current"))).toBe("a");
    expect(readTrial(root)).toBeUndefined();
    expect(restarts).toBe(1);
    // The old agent, finishing the same rollback again (idempotent), wipes the slot it does not run from.
    await installer("a").rollback(job());
    expect(existsSync(join(root, "b"))).toBe(false);
    expect(restarts).toBe(1);
  });

  it("after the launcher restored the old slot, the old agent reads why (UPDATE_BOOT_FAILED)", async () => {
    writeTrial(root, { ...trial(), state: "restored", reason: "started 3 times without confirming" });
    expect(await installer("a").checkRunning(job())).toEqual({
      running: false,
      code: "UPDATE_BOOT_FAILED",
      message: "started 3 times without confirming",
    });
  });

  it.each([
    [
      "a version other than the manifest's",
      () => tarball(agentInstall(join(tmp.dir, "src"), "2.0.1"), join(tmp.dir, "i.tgz")),
      /says version 2.0.1/,
    ],
    [
      "no agent entry",
      () => {
        mkdirSync(join(tmp.dir, "src"));
        writeFileSync(join(tmp.dir, "src", "package.json"), '{"version":"2.0.0"}');
        return tarball(join(tmp.dir, "src"), join(tmp.dir, "i.tgz"));
      },
      /not an agent install/,
    ],
    [
      "not a tar.gz",
      () => {
        writeFileSync(join(tmp.dir, "i.tgz"), "plain bytes");
        return join(tmp.dir, "i.tgz");
      },
      /not a .tar.gz/,
    ],
    [
      "a member outside the slot",
      () => {
        agentInstall(join(tmp.dir, "src"), "2.0.0");
        writeFileSync(join(tmp.dir, "evil.txt"), "x");
        const out = join(tmp.dir, "i.tgz");
        execFileSync("tar", ["-czPf", out, "-C", join(tmp.dir, "src"), ".", "../evil.txt"]);
        return out;
      },
      /outside its slot/,
    ],
  ])("refuses an image with %s (INSTALL_FAILED), writing nothing outside the slot", async (_what, make, message) => {
    const image = make();
    await expect(installer("a").install(image, job())).rejects.toMatchObject({
      code: "INSTALL_FAILED",
      message: expect.stringMatching(message),
    });
    expect(readlinkSync(join(root, "current"))).toBe("a");
    expect(existsSync(join(root, "evil.txt"))).toBe(false);
  });

  it("refuses to plan without a current link to a slot", () => {
    const bare = new AgentInstaller({ root: join(tmp.dir, "none"), maxBoots: 3, requestRestart: () => undefined });
    expect(() => bare.plan()).toThrow(/must point to slot a or b/);
  });

  function trial(over: Partial<TrialRecord> = {}): TrialRecord {
    return {
      v: 1,
      jobId: "job-1",
      version: "2.0.0",
      target: "b",
      previous: "a",
      boots: 0,
      maxBoots: 3,
      confirmBy: 10_000,
      state: "trial",
      ...over,
    };
  }

  describe("launcher", () => {
    beforeEach(() => {
      agentInstall(join(root, "b"), "2.0.0");
    });

    it("counts boots of the slot on trial and restores the previous one past maxBoots", () => {
      execFileSync("ln", ["-sfn", "b", join(root, "current")]);
      writeTrial(root, trial());
      for (const boots of [1, 2, 3]) {
        expect(checkTrialAtStart(root, 0).trial?.boots).toBe(boots);
        expect(readlinkSync(join(root, "current"))).toBe("b");
      }
      const fourth = checkTrialAtStart(root, 0);
      expect(fourth.restored).toMatch(/started 3 times without confirming; the launcher restored slot a/);
      expect(readlinkSync(join(root, "current"))).toBe("a");
      expect(readTrial(root)).toMatchObject({ state: "restored", boots: 4 });
      // The old agent starts normally from then on.
      expect(checkTrialAtStart(root, 0)).toEqual({});
    });

    it("restores the previous slot when started past the confirm deadline", () => {
      execFileSync("ln", ["-sfn", "b", join(root, "current")]);
      writeTrial(root, trial({ confirmBy: 100 }));
      expect(checkTrialAtStart(root, 100).restored).toMatch(/did not confirm by the deadline/);
      expect(readlinkSync(join(root, "current"))).toBe("a");
    });

    it("runs current's agent with the arguments and passes its exit code on", async () => {
      agentInstall(join(root, "a"), "1.0.0", "process.exit(process.argv[2] === 'run' ? 75 : 1);");
      expect(await runLauncher(root, ["run"])).toBe(75);
    });

    it("a new agent that hangs past the deadline is stopped and the previous slot restored", async () => {
      agentInstall(join(root, "b"), "2.0.0", "setInterval(() => {}, 1000);");
      execFileSync("ln", ["-sfn", "b", join(root, "current")]);
      writeTrial(root, trial({ confirmBy: Date.now() + 300 }));
      const started = Date.now();
      const code = await runLauncher(root, ["run"], { graceMs: 100 });
      expect(code).toBe(128 + 15);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(readlinkSync(join(root, "current"))).toBe("a");
      expect(readTrial(root)).toMatchObject({
        state: "restored",
        reason: expect.stringMatching(/stopped it and restored slot a/),
      });
    });

    it("a new agent that confirms in time is left alone", async () => {
      // It ends the trial (as commit does) and exits a moment later; the watchdog must not act.
      agentInstall(
        join(root, "b"),
        "2.0.0",
        `import { rmSync } from "node:fs"; rmSync(${JSON.stringify(join(root, "trial.json"))}); setTimeout(() => process.exit(0), 2500);`,
      );
      execFileSync("ln", ["-sfn", "b", join(root, "current")]);
      writeTrial(root, trial({ confirmBy: Date.now() + 1500 }));
      expect(await runLauncher(root, ["run"], { graceMs: 50 })).toBe(0);
      expect(readlinkSync(join(root, "current"))).toBe("b");
    });
  });
});

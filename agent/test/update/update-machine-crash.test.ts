import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { JobStatus, SchemaValidator } from "@fieldgate/shared";
import { describe, expect, it } from "vitest";
import { AbSlotsInstaller, type InstallContext, type VersionCheck } from "../../src/update/installers.js";
import type { UpdateState } from "../../src/update/update-states.js";
import { Crash, Device, FakeHealth, NEW_IMAGE, OLD_IMAGE, publicPem, useDevice } from "./update-harness.js";

type End = "new" | "old";
interface CrashCase {
  state: UpdateState;
  moment: "persisted" | "done";
  /** Health during the first run: "warn" makes CONFIRMING fail, to reach ROLLED_BACK. */
  health?: "ok" | "warning" | "critical";
  end: End;
  status: "SUCCEEDED" | "FAILED" | "ROLLED_BACK";
  reason?: string;
}

// In the manner of mender's state_test.cpp: one row per crash point, each with the end it must reach.
const CASES: CrashCase[] = [
  { state: "QUEUED", moment: "persisted", end: "new", status: "SUCCEEDED" },
  { state: "QUEUED", moment: "done", end: "new", status: "SUCCEEDED" },
  { state: "CHECKING_PERMISSIONS", moment: "persisted", end: "new", status: "SUCCEEDED" },
  { state: "CHECKING_PERMISSIONS", moment: "done", end: "new", status: "SUCCEEDED" },
  { state: "DOWNLOADING", moment: "persisted", end: "new", status: "SUCCEEDED" },
  { state: "DOWNLOADING", moment: "done", end: "new", status: "SUCCEEDED" },
  { state: "VERIFYING", moment: "persisted", end: "new", status: "SUCCEEDED" },
  { state: "VERIFYING", moment: "done", end: "new", status: "SUCCEEDED" },
  { state: "INSTALLING", moment: "persisted", end: "old", status: "FAILED", reason: "UPDATE_INTERRUPTED" },
  // The slot is fully written but activation never started: the written slot is wiped.
  { state: "INSTALLING", moment: "done", end: "old", status: "FAILED", reason: "UPDATE_INTERRUPTED" },
  { state: "ACTIVATING", moment: "persisted", end: "old", status: "ROLLED_BACK", reason: "UPDATE_INTERRUPTED" },
  // The link already points to the new slot: recovery flips it back.
  { state: "ACTIVATING", moment: "done", end: "old", status: "ROLLED_BACK", reason: "UPDATE_INTERRUPTED" },
  { state: "CONFIRMING", moment: "persisted", end: "old", status: "ROLLED_BACK", reason: "UPDATE_INTERRUPTED" },
  { state: "CONFIRMING", moment: "done", end: "old", status: "ROLLED_BACK", reason: "UPDATE_INTERRUPTED" },
  // The ending is persisted but not applied (installed version not yet written): boot applies it.
  { state: "SUCCEEDED", moment: "persisted", end: "new", status: "SUCCEEDED" },
  // Health failed, ROLLED_BACK persisted, the link not yet flipped back: boot finishes the rollback.
  {
    state: "ROLLED_BACK",
    moment: "persisted",
    health: "critical",
    end: "old",
    status: "ROLLED_BACK",
    reason: "HEALTH_NOT_OK",
  },
];

const validator = new SchemaValidator();

describe("UpdateMachine crash injection (ab-slots)", () => {
  const fx = useDevice();

  it.each(CASES)("crash at $state ($moment) ends with the $end version, $status", async (c) => {
    const first = fx.dev.machine({
      onPersist: Device.crashAt(c.state, c.moment),
      health: new FakeHealth(c.health ?? "ok"),
      options: { confirmDeadlineMs: 50, jobTimeoutMs: 60_000 },
    });
    await expect(first.submit({ jobId: "job-1", signed: fx.signed })).rejects.toBeInstanceOf(Crash);
    // SIGKILL: the first machine and its store are simply dropped; a new agent opens the same files.
    const second = fx.dev.machine();
    await second.resumeOnBoot();

    await expectEnd(fx.dev, c);
  });
});

/** After recovery: the reports' end, the slots and the installed version agree with the case. */
async function expectEnd(dev: Device, c: CrashCase): Promise<void> {
  const last = dev.last("job-1");
  expect(last?.status).toBe(c.status);
  if (c.reason) expect(last?.reason).toBe(c.reason);
  else expect(last?.reason).toBeUndefined();
  if (c.end === "new") {
    expect(dev.current()).toBe("b");
    expect(dev.slotImage("b")?.equals(NEW_IMAGE)).toBe(true);
    expect(dev.versions.get()).toBe("2.0.0");
  } else {
    expect(dev.current()).toBe("a");
    expect(dev.slotImage("b")).toBeUndefined();
    expect(dev.versions.get()).toBe("1.0.0");
  }
  // The old slot is never written, whatever happened.
  expect(dev.slotImage("a")?.equals(OLD_IMAGE)).toBe(true);
  // No half-written file or half-made link is left behind.
  expect(existsSync(join(dev.root, ".current.tmp"))).toBe(false);
  expect(existsSync(join(dev.root, "b", ".image.bin.tmp"))).toBe(false);
  // Nothing more to do on a further boot, and every report is a valid JobStatus.
  const reports = dev.reports.length;
  await dev.machine().resumeOnBoot();
  expect(dev.reports.length).toBe(reports);
  for (const r of dev.reports) validator.parse(JobStatus, r.status, "status");
  expect(dev.statuses("job-1").filter((s) => s !== "IN_PROGRESS" && s !== "QUEUED")).toEqual([c.status]);
}

// The same table with a real process and a real SIGKILL (the built dist, as the agent runs it);
// the reports of the killed process are not kept, so only the recovery's final report is checked.
describe("UpdateMachine crash injection with a real SIGKILL", () => {
  const fx = useDevice();

  it.each(CASES)("SIGKILL at $state ($moment) ends with the $end version, $status", async (c) => {
    const config = join(fx.tmp.dir, "child.json");
    writeFileSync(
      config,
      JSON.stringify({
        ...c,
        health: c.health ?? "ok",
        dataDir: fx.dev.dataDir,
        dbPath: fx.dev.dbPath,
        root: fx.dev.root,
        sources: fx.dev.sources,
        publicPem,
        signed: fx.signed,
        jobId: "job-1",
      }),
    );
    const child = spawnSync(process.execPath, [join(import.meta.dirname, "fixtures", "sigkill-child.mjs"), config], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(child.signal, child.stderr).toBe("SIGKILL");
    await fx.dev.machine().resumeOnBoot();
    await expectEnd(fx.dev, c);
  });
});

/**
 * ab-slots whose activation needs a reboot, as a script installer with `activation: "reboot"` or
 * the agent installer has it: the "device" runs the slot `current` pointed to when it booted
 * (when this installer was made), and the reboot takes the agent down (a Crash). `fallBack`
 * makes the bootloader come back on the old slot.
 */
class RebootingSlots extends AbSlotsInstaller {
  private readonly runs: string | undefined;

  constructor(
    root: string,
    private readonly fallBack = false,
  ) {
    super(root);
    this.runs = this.active();
  }

  /** What the reboot does to the running agent: the real one stops its machine and exits. */
  onReboot: () => void = () => undefined;

  async restart(job: InstallContext): Promise<void> {
    if (this.fallBack && job.plan.previous) await super.rollback(job);
    this.onReboot();
  }

  async checkRunning(job: InstallContext): Promise<VersionCheck> {
    return this.runs === job.plan.target ? { running: true } : { running: false, message: `slot ${this.runs} runs` };
  }
}

interface RestartCase extends CrashCase {
  /** Where the first run dies: a state hook, or the planned reboot itself. */
  moment: "persisted" | "done";
  reboot?: boolean;
  fallBack?: boolean;
}

// "After reboot": the same crash points with an installer whose activation restarts. Where the
// new version is what came back, confirming resumes; otherwise the job rolls back.
const RESTART_CASES: RestartCase[] = [
  { state: "INSTALLING", moment: "done", end: "old", status: "FAILED", reason: "UPDATE_INTERRUPTED" },
  // The link was not flipped yet: the old version came back.
  { state: "ACTIVATING", moment: "persisted", end: "old", status: "ROLLED_BACK", reason: "UPDATE_INTERRUPTED" },
  // Flipped, then the agent died before CONFIRMING was written: the new version runs, so it confirms.
  { state: "ACTIVATING", moment: "done", end: "new", status: "SUCCEEDED" },
  { state: "CONFIRMING", moment: "persisted", end: "new", status: "SUCCEEDED" },
  // The planned reboot: the next start confirms the new version with the deadline that is left.
  { state: "CONFIRMING", moment: "done", reboot: true, end: "new", status: "SUCCEEDED" },
  // The device came back on the old version (bootloader fallback): roll back.
  {
    state: "CONFIRMING",
    moment: "done",
    reboot: true,
    fallBack: true,
    end: "old",
    status: "ROLLED_BACK",
    reason: "UPDATE_INTERRUPTED",
  },
];

describe("UpdateMachine crash injection (activation restarts: after reboot)", () => {
  const fx = useDevice();

  it.each(RESTART_CASES)(
    "crash at $state ($moment, reboot $reboot, fallBack $fallBack) ends $end, $status",
    async (c) => {
      const installer = new RebootingSlots(fx.dev.root, c.fallBack);
      const first = fx.dev.machine(
        {
          ...(!c.reboot && { onPersist: Device.crashAt(c.state, c.moment) }),
          options: { confirmDeadlineMs: 5_000, jobTimeoutMs: 60_000 },
        },
        installer,
      );
      installer.onReboot = () => void first.stop();
      if (c.reboot) {
        // The planned restart stops the machine in CONFIRMING; nothing is reported as ended yet.
        await first.submit({ jobId: "job-1", signed: fx.signed });
        expect(fx.dev.statuses("job-1").at(-1)).toBe("IN_PROGRESS");
      } else {
        await expect(first.submit({ jobId: "job-1", signed: fx.signed })).rejects.toBeInstanceOf(Crash);
      }
      await fx.dev.machine({}, new RebootingSlots(fx.dev.root)).resumeOnBoot();
      await expectEnd(fx.dev, c);
    },
  );

  it("resumed confirming keeps the deadline set at activation: past it, ROLLED_BACK HEALTH_NOT_OK at once", async () => {
    const installer = new RebootingSlots(fx.dev.root);
    const first = fx.dev.machine({ options: { confirmDeadlineMs: 300, jobTimeoutMs: 60_000 } }, installer);
    installer.onReboot = () => void first.stop();
    await first.submit({ jobId: "job-1", signed: fx.signed });
    await new Promise((r) => setTimeout(r, 400));
    const started = Date.now();
    // A fresh confirm deadline would be a minute: only the persisted one can end this quickly.
    await fx.dev
      .machine(
        { health: new FakeHealth("critical"), options: { confirmDeadlineMs: 60_000, jobTimeoutMs: 60_000 } },
        new RebootingSlots(fx.dev.root),
      )
      .resumeOnBoot();
    expect(Date.now() - started).toBeLessThan(5_000);
    await expectEnd(fx.dev, {
      state: "CONFIRMING",
      moment: "done",
      end: "old",
      status: "ROLLED_BACK",
      reason: "HEALTH_NOT_OK",
    });
  });

  it("a restart that never happens ends ROLLED_BACK UPDATE_BOOT_FAILED at the confirm deadline", async () => {
    const installer = new RebootingSlots(fx.dev.root);
    await fx.dev.machine({ options: { confirmDeadlineMs: 200, jobTimeoutMs: 60_000 } }, installer).submit({
      jobId: "job-1",
      signed: fx.signed,
    });
    await expectEnd(fx.dev, {
      state: "CONFIRMING",
      moment: "done",
      end: "old",
      status: "ROLLED_BACK",
      reason: "UPDATE_BOOT_FAILED",
    });
  });
});

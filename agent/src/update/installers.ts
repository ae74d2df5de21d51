import { spawn } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { join } from "node:path";
import { type ErrorCode, FieldgateError } from "@fieldgate/shared";

/** What an installer is told about the job; `plan` is what `plan()` returned, persisted before install. */
export interface InstallContext {
  jobId: string;
  version: string;
  plan: InstallPlan;
  /** Epoch ms by which the new version must confirm; set from ACTIVATING on. */
  confirmBy?: number;
}

/** After a boot: the new version runs, or it does not and why (a coded reason for the report). */
export type VersionCheck = { running: true } | { running: false; code?: ErrorCode; message: string };

/** Where the image goes, decided before anything is written so recovery knows what to undo. */
export interface InstallPlan {
  /** The slot written (ab-slots), or "script". */
  target: string;
  /** The slot that was active before, if any. */
  previous?: string;
}

/**
 * Puts an image in place. `install` must not touch the running system; `activate` switches to the
 * new image; `rollback` returns to the previous one and removes what `install` wrote (it is
 * idempotent: recovery may call it again after a crash in it); `commit` makes the switch final.
 */
export interface Installer {
  plan(): InstallPlan;
  /** Returns the installer's output for the report (≤ 8 KiB), if any. */
  install(imagePath: string, job: InstallContext): Promise<string | undefined>;
  activate(job: InstallContext): Promise<void>;
  rollback(job: InstallContext): Promise<void>;
  commit(job: InstallContext): Promise<void>;
  /**
   * Only for installers whose activation restarts the agent or the device ("after reboot"): called
   * once CONFIRMING is persisted; the agent or the device is expected to go down afterwards.
   */
  restart?(job: InstallContext): Promise<void>;
  /** With `restart`: whether the new version is what runs now, asked at boot and before confirming. */
  checkRunning?(job: InstallContext): Promise<VersionCheck>;
}

/** Output kept from a command: enough to diagnose, small enough for a report. */
export const MAX_OUTPUT_BYTES = 8 * 1024;

/** Runs argv without a shell; resolves with exit code and (capped) combined output. */
export function runCommand(
  argv: readonly string[],
  timeoutMs: number,
): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const [file, ...args] = argv;
    if (!file) {
      resolve({ code: null, output: "empty command", timedOut: false });
      return;
    }
    const chunks: Buffer[] = [];
    let kept = 0;
    let timedOut = false;
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (c: Buffer) => {
      if (kept >= MAX_OUTPUT_BYTES) return;
      const part = c.subarray(0, MAX_OUTPUT_BYTES - kept);
      chunks.push(part);
      kept += part.length;
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve({ code: null, output: err.message, timedOut: false });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output: Buffer.concat(chunks).toString("utf8"), timedOut });
    });
  });
}

/**
 * `updates.installer.type = "script"`: runs a configured argv (no shell) with `{image}` replaced
 * by the image path; exit 0 is success. The script owns activation, so activate, rollback and
 * commit are no-ops here: a rollback only keeps the recorded installed version (docs/updates.md).
 */
export class ScriptInstaller implements Installer {
  constructor(private readonly options: { command: readonly string[]; timeoutMs: number }) {}

  plan(): InstallPlan {
    return { target: "script" };
  }

  async install(imagePath: string): Promise<string | undefined> {
    const argv = this.options.command.map((a) => a.replaceAll("{image}", imagePath));
    const r = await runCommand(argv, this.options.timeoutMs);
    if (r.code !== 0) {
      const why = r.timedOut ? `timed out after ${this.options.timeoutMs} ms` : `exited with ${r.code ?? "an error"}`;
      throw new FieldgateError("INSTALL_FAILED", `install command ${why}: ${r.output.trim()}`);
    }
    return r.output;
  }

  async activate(): Promise<void> {}
  async rollback(): Promise<void> {}
  async commit(): Promise<void> {}
}

/**
 * `script` with `activation: "reboot"`: the install command flashes and switches what boots, as
 * above; once CONFIRMING is persisted the agent runs `rebootCommand`, and after the device comes
 * back `versionCommand` (its first line) tells whether the new version runs. If it does, the
 * agent confirms it with the deadline that is left; if not, the job ends ROLLED_BACK.
 */
export class RebootingScriptInstaller extends ScriptInstaller {
  constructor(
    options: { command: readonly string[]; timeoutMs: number },
    private readonly reboot: { rebootCommand: readonly string[]; versionCommand: readonly string[] },
  ) {
    super(options);
  }

  async restart(): Promise<void> {
    const r = await runCommand(this.reboot.rebootCommand, 60_000);
    if (r.code !== 0) {
      throw new FieldgateError(
        "UPDATE_BOOT_FAILED",
        `reboot command exited with ${r.code ?? "an error"}: ${r.output.trim()}`,
      );
    }
  }

  async checkRunning(job: InstallContext): Promise<VersionCheck> {
    const r = await runCommand(this.reboot.versionCommand, 60_000);
    const running = r.output.trim().split("\n")[0]?.trim() ?? "";
    if (r.code === 0 && running === job.version) return { running: true };
    return {
      running: false,
      code: "UPDATE_BOOT_FAILED",
      message:
        r.code === 0
          ? `the device runs ${running || "(nothing printed)"}, not ${job.version}`
          : `the version command exited with ${r.code ?? "an error"}: ${r.output.trim()}`,
    };
  }
}

const SLOTS = ["a", "b"] as const;

/**
 * `updates.installer.type = "ab-slots"`: `<root>/a/` and `<root>/b/` hold an `image.bin` each and
 * `<root>/current` is a symlink to the active slot. Install writes the inactive slot (temp name,
 * fsync, rename); activate flips the link atomically (temp symlink + rename); rollback flips it
 * back and wipes the slot the job wrote.
 */
export class AbSlotsInstaller implements Installer {
  constructor(private readonly root: string) {}

  /** The slot `current` points to, or undefined when there is no link yet. */
  active(): string | undefined {
    try {
      return readlinkSync(join(this.root, "current")).replace(/\/+$/, "").split("/").pop();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  plan(): InstallPlan {
    const previous = this.active();
    if (previous !== undefined && !(SLOTS as readonly string[]).includes(previous)) {
      throw new FieldgateError("INSTALL_FAILED", `${this.root}/current points to ${previous}, not a or b`);
    }
    return previous === undefined ? { target: "a" } : { target: previous === "a" ? "b" : "a", previous };
  }

  async install(imagePath: string, job: InstallContext): Promise<undefined> {
    const dir = join(this.root, job.plan.target);
    if (job.plan.target === this.active())
      throw new FieldgateError("INSTALL_FAILED", "refusing to write the active slot");
    mkdirSync(dir, { recursive: true });
    const tmp = join(dir, ".image.bin.tmp");
    copyFileSync(imagePath, tmp);
    fsyncPath(tmp);
    renameSync(tmp, join(dir, "image.bin"));
    fsyncPath(dir);
    return undefined;
  }

  async activate(job: InstallContext): Promise<void> {
    this.pointTo(job.plan.target);
  }

  async rollback(job: InstallContext): Promise<void> {
    if (job.plan.previous !== undefined) this.pointTo(job.plan.previous);
    else rmSync(join(this.root, "current"), { force: true });
    const dir = join(this.root, job.plan.target);
    rmSync(join(dir, ".image.bin.tmp"), { force: true });
    rmSync(join(dir, "image.bin"), { force: true });
    fsyncPath(this.root);
  }

  async commit(): Promise<void> {}

  private pointTo(slot: string): void {
    if (this.active() === slot) return;
    const tmp = join(this.root, ".current.tmp");
    rmSync(tmp, { force: true });
    symlinkSync(slot, tmp);
    // rename(2) replaces `current` in one step: it always points to a complete slot.
    renameSync(tmp, join(this.root, "current"));
    fsyncPath(this.root);
  }
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Stands in when `updates.installer` is not configured, so a job still gets an answer: it passes
 * the checks and the download (the image is verified) and fails at INSTALLING with INSTALL_FAILED,
 * having touched nothing.
 */
export class MissingInstaller implements Installer {
  plan(): InstallPlan {
    return { target: "none" };
  }

  async install(): Promise<string | undefined> {
    throw new FieldgateError(
      "INSTALL_FAILED",
      "no updates.installer is configured on this device; nothing was installed",
    );
  }

  async activate(): Promise<void> {}
  async rollback(): Promise<void> {}
  async commit(): Promise<void> {}
}

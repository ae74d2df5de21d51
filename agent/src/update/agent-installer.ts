import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { isAbsolute, join, relative, sep } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { FieldgateError } from "@fieldgate/shared";
import {
  AGENT_ENTRY,
  currentSlot,
  isSlot,
  pointCurrent,
  readTrial,
  removeTrial,
  writeTrial,
} from "./agent-launcher.js";
import { type InstallContext, type Installer, type InstallPlan, runCommand, type VersionCheck } from "./installers.js";

export interface AgentInstallerOptions {
  /** `<root>/a`, `<root>/b`, `<root>/current`, `<root>/launcher.mjs`, `<root>/trial.json`. */
  root: string;
  /** Starts of the new agent without a confirmation before the launcher restores the old one. */
  maxBoots: number;
  /** Asks the agent to stop and exit so the service manager starts the launcher again. */
  requestRestart: () => void;
  /** A file of the running agent's code; its slot is the running slot. Default: this module. */
  runningFrom?: string;
  /** Bounds each `tar` run. */
  timeoutMs?: number;
  now?: () => number;
}

/**
 * `updates.installer.type = "agent"`: the agent updates itself, the A/B idea applied to its own
 * install. The image is a .tar.gz of an agent install (`package.json` with the image's version,
 * `dist/cli/main.js`, its `node_modules`). Install unpacks it into the inactive slot with the
 * system `tar` (no shell), after checking that no member leaves the slot. Activate writes the
 * trial record and flips `current`; `restart` makes the running (old) agent exit, and the launcher
 * starts the new one, which confirms within the deadline or is replaced by the old one
 * (`agent-launcher.ts`). `commit` ends the trial; `rollback` flips back and, when the new agent
 * itself rolls back, restarts it so the old one runs again.
 */
export class AgentInstaller implements Installer {
  private readonly root: string;

  constructor(private readonly options: AgentInstallerOptions) {
    this.root = options.root;
  }

  plan(): InstallPlan {
    const previous = currentSlot(this.root);
    if (!isSlot(previous)) {
      throw new FieldgateError(
        "INSTALL_FAILED",
        `${this.root}/current must point to slot a or b, where this agent runs (docs/updates.md, "agent" installer)`,
      );
    }
    return { target: previous === "a" ? "b" : "a", previous };
  }

  async install(imagePath: string, job: InstallContext): Promise<string> {
    const target = job.plan.target;
    if (!isSlot(target) || target === currentSlot(this.root) || target === this.runningSlot()) {
      throw new FieldgateError("INSTALL_FAILED", `refusing to write slot ${target}: it is active or runs this agent`);
    }
    const dir = join(this.root, target);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    await assertMembersStayInside(imagePath, this.options.timeoutMs ?? 600_000);
    const untar = await runCommand(
      ["tar", "-xzf", imagePath, "-C", dir, "--no-same-owner"],
      this.options.timeoutMs ?? 600_000,
    );
    if (untar.code !== 0) {
      throw new FieldgateError("INSTALL_FAILED", `tar could not unpack the image: ${untar.output.trim()}`);
    }
    if (!existsSync(join(dir, ...AGENT_ENTRY))) {
      throw new FieldgateError("INSTALL_FAILED", `the image has no ${AGENT_ENTRY.join("/")}: not an agent install`);
    }
    const version = packageVersion(join(dir, "package.json"));
    if (version !== job.version) {
      throw new FieldgateError(
        "INSTALL_FAILED",
        `the image's package.json says version ${version ?? "(none)"}, its manifest ${job.version}`,
      );
    }
    // Unpacked files must be on disk before `current` may point at them.
    await runCommand(["sync", "-f", dir], 60_000);
    return `agent ${version} unpacked into slot ${target}\n`;
  }

  /** The trial record first, then the link: a power cut in between leaves a record that does not apply. */
  async activate(job: InstallContext): Promise<void> {
    const { target, previous } = job.plan;
    if (!isSlot(target) || !isSlot(previous)) throw new FieldgateError("INSTALL_FAILED", "no slot to activate");
    writeTrial(this.root, {
      v: 1,
      jobId: job.jobId,
      version: job.version,
      target,
      previous,
      boots: 0,
      maxBoots: this.options.maxBoots,
      confirmBy: job.confirmBy ?? (this.options.now ?? Date.now)() + 300_000,
      state: "trial",
    });
    pointCurrent(this.root, target);
  }

  async restart(): Promise<void> {
    this.options.requestRestart();
  }

  async checkRunning(job: InstallContext): Promise<VersionCheck> {
    const running = this.runningSlot();
    if (running === job.plan.target && currentSlot(this.root) === job.plan.target) return { running: true };
    const trial = readTrial(this.root);
    if (trial?.jobId === job.jobId && trial.state === "restored") {
      return {
        running: false,
        code: "UPDATE_BOOT_FAILED",
        message: trial.reason ?? "the launcher restored the old agent",
      };
    }
    return {
      running: false,
      message: `this agent runs from ${running ? `slot ${running}` : "outside the slots"}, not from the new slot ${job.plan.target}`,
    };
  }

  async rollback(job: InstallContext): Promise<void> {
    const { target, previous } = job.plan;
    if (isSlot(previous)) pointCurrent(this.root, previous);
    if (readTrial(this.root)?.jobId === job.jobId) removeTrial(this.root);
    if (this.runningSlot() === target) {
      // The new agent rolled itself back: the old one must run again. Its own files stay; the
      // next install overwrites the slot.
      this.options.requestRestart();
    } else if (isSlot(target) && target !== currentSlot(this.root)) {
      rmSync(join(this.root, target), { recursive: true, force: true });
    }
  }

  async commit(job: InstallContext): Promise<void> {
    if (readTrial(this.root)?.jobId === job.jobId) removeTrial(this.root);
  }

  /** The slot the running code was loaded from (Node resolves the `current` link at load). */
  private runningSlot(): string | undefined {
    try {
      const file = realpathSync(this.options.runningFrom ?? fileURLToPath(import.meta.url));
      const inRoot = relative(realpathSync(this.root), file);
      const slot = inRoot.split(sep)[0];
      return !inRoot.startsWith("..") && isSlot(slot) ? slot : undefined;
    } catch {
      return undefined;
    }
  }
}

function packageVersion(file: string): string | undefined {
  try {
    const version = (JSON.parse(readFileSync(file, "utf8")) as { version?: unknown }).version;
    return typeof version === "string" ? version : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Lists the archive (`tar -tzf`, line by line, no size cap) and refuses absolute member names and
 * any `..` segment, so unpacking can only write inside the slot.
 */
function assertMembersStayInside(imagePath: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("tar", ["-tzf", imagePath], { stdio: ["ignore", "pipe", "pipe"] });
    let bad: string | undefined;
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    createInterface({ input: child.stdout }).on("line", (name) => {
      if (bad === undefined && (isAbsolute(name) || name.split("/").includes(".."))) bad = name;
    });
    child.stderr.on("data", (c: Buffer) => {
      if (stderr.length < 2048) stderr += c.toString("utf8");
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new FieldgateError("INSTALL_FAILED", `cannot run tar: ${err.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new FieldgateError("INSTALL_FAILED", `the image is not a .tar.gz: ${stderr.trim()}`));
      else if (bad !== undefined) {
        reject(new FieldgateError("INSTALL_FAILED", `the image holds ${JSON.stringify(bad)}, outside its slot`));
      } else resolve();
    });
  });
}

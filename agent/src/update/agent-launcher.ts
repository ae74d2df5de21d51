#!/usr/bin/env node
/**
 * The agent launcher, for the `agent` installer (the agent updating itself; docs/updates.md).
 * It is installed once as `<root>/launcher.mjs`, outside the two slots, so a broken new agent
 * cannot break it, and the service manager runs it (systemd `Restart=always`). It uses only
 * Node's built-ins, so it runs as a single copied file.
 *
 * On each start it looks at `<root>/trial.json`, written by the old agent just before it pointed
 * `<root>/current` at the new slot. While the new slot is on trial, every start counts as a boot
 * (mender's bootcount); past `maxBoots`, or past the confirm deadline, `current` goes back to the
 * previous slot before anything of the new agent runs. While the new agent runs on trial, a
 * watchdog stops it and restores the previous slot if it has not confirmed shortly after the
 * deadline (a hung agent cannot roll itself back). The new agent ends the trial by deleting the
 * record once its update job SUCCEEDED; the old agent reads a restored record to report why.
 */
import { spawn } from "node:child_process";
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The two slots an agent can be installed in. */
export const AGENT_SLOTS = ["a", "b"] as const;

/** The agent's entry inside a slot. */
export const AGENT_ENTRY = ["dist", "cli", "main.js"] as const;

/** How long after the confirm deadline the watchdog waits: the agent's own rollback goes first. */
export const WATCHDOG_GRACE_MS = 5000;

/** `<root>/trial.json`: a new agent slot on trial. */
export interface TrialRecord {
  v: 1;
  jobId: string;
  version: string;
  /** The slot on trial. */
  target: string;
  /** The slot restored when the trial fails. */
  previous: string;
  /** Starts of the target counted by the launcher. */
  boots: number;
  maxBoots: number;
  /** Epoch ms by which the new agent must confirm. */
  confirmBy: number;
  state: "trial" | "restored";
  /** Why the launcher restored the previous slot. */
  reason?: string;
}

export function trialPath(root: string): string {
  return join(root, "trial.json");
}

export function readTrial(root: string): TrialRecord | undefined {
  let text: string;
  try {
    text = readFileSync(trialPath(root), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const record = JSON.parse(text) as TrialRecord;
  if (record.v !== 1 || !isSlot(record.target) || !isSlot(record.previous)) {
    throw new Error(`${trialPath(root)} is not a trial record`);
  }
  return record;
}

/** Written to a temp file, fsynced and renamed: a power cut leaves the old record or the new one. */
export function writeTrial(root: string, record: TrialRecord): void {
  const tmp = join(root, ".trial.json.tmp");
  writeFileSync(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  fsyncPath(tmp);
  renameSync(tmp, trialPath(root));
  fsyncPath(root);
}

export function removeTrial(root: string): void {
  rmSync(trialPath(root), { force: true });
  fsyncPath(root);
}

/** The slot `<root>/current` points to, or undefined without a link. */
export function currentSlot(root: string): string | undefined {
  try {
    return readlinkSync(join(root, "current")).replace(/\/+$/, "").split("/").pop();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Points `<root>/current` at `slot` in one rename(2): it always names a complete slot. */
export function pointCurrent(root: string, slot: string): void {
  if (currentSlot(root) === slot) return;
  const tmp = join(root, ".current.tmp");
  rmSync(tmp, { force: true });
  symlinkSync(slot, tmp);
  renameSync(tmp, join(root, "current"));
  fsyncPath(root);
}

export function isSlot(slot: unknown): slot is (typeof AGENT_SLOTS)[number] {
  return (AGENT_SLOTS as readonly unknown[]).includes(slot);
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Restores the previous slot and records why, for the old agent's report. */
export function restorePrevious(root: string, record: TrialRecord, reason: string): TrialRecord {
  const restored: TrialRecord = { ...record, state: "restored", reason };
  writeTrial(root, restored);
  pointCurrent(root, record.previous);
  return restored;
}

/**
 * The check before the agent starts: counts a boot of a slot on trial and restores the previous
 * slot past `maxBoots` or the deadline. Returns the record still on trial, if any.
 */
export function checkTrialAtStart(root: string, now: number): { trial?: TrialRecord; restored?: string } {
  const record = readTrial(root);
  if (record?.state !== "trial" || currentSlot(root) !== record.target) return {};
  const counted = { ...record, boots: record.boots + 1 };
  const what = `the new agent ${record.version} (slot ${record.target})`;
  if (counted.boots > counted.maxBoots) {
    const reason = `${what} started ${counted.maxBoots} times without confirming; the launcher restored slot ${record.previous}`;
    restorePrevious(root, counted, reason);
    return { restored: reason };
  }
  if (now >= counted.confirmBy) {
    const reason = `${what} did not confirm by the deadline; the launcher restored slot ${record.previous}`;
    restorePrevious(root, counted, reason);
    return { restored: reason };
  }
  writeTrial(root, counted);
  return { trial: counted };
}

function log(level: "info" | "warn", msg: string, extra: Record<string, unknown> = {}): void {
  // The agent's log shape (pino JSON), so one journal reads both.
  process.stderr.write(
    `${JSON.stringify({ level: level === "warn" ? 40 : 30, time: Date.now(), name: "fieldgate-launcher", msg, ...extra })}\n`,
  );
}

/**
 * Runs the agent in `<root>/current` with `args` and resolves with its exit code (128 + signal
 * number when killed). Stop signals are passed on to the agent.
 */
export function runLauncher(
  root: string,
  args: readonly string[],
  options: { now?: () => number; graceMs?: number } = {},
): Promise<number> {
  const now = options.now ?? Date.now;
  let trial: TrialRecord | undefined;
  let restored: string | undefined;
  try {
    ({ trial, restored } = checkTrialAtStart(root, now()));
  } catch (err) {
    // A launcher that cannot start the agent is worse than one that skips the boot check.
    log("warn", `cannot check ${trialPath(root)}; starting the agent in current: ${(err as Error).message}`);
  }
  if (restored) log("warn", restored);
  else if (trial) log("info", `starting the new agent on trial, boot ${trial.boots} of ${trial.maxBoots}`);
  const child = spawn(process.execPath, [join(root, "current", ...AGENT_ENTRY), ...args], { stdio: "inherit" });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const handlers = (["SIGTERM", "SIGINT", "SIGHUP"] as const).map((s) => [s, forward(s)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  let watchdog: NodeJS.Timeout | undefined;
  let killer: NodeJS.Timeout | undefined;
  if (trial) {
    watchdog = setTimeout(
      () => {
        const record = readTrial(root);
        if (record?.state !== "trial" || record.jobId !== trial.jobId || currentSlot(root) !== trial.target) return;
        const reason = `the new agent ${trial.version} (slot ${trial.target}) did not confirm by the deadline; the launcher stopped it and restored slot ${trial.previous}`;
        log("warn", reason);
        restorePrevious(root, record, reason);
        child.kill("SIGTERM");
        killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      },
      Math.max(0, trial.confirmBy + (options.graceMs ?? WATCHDOG_GRACE_MS) - now()),
    );
  }
  return new Promise((resolve) => {
    child.on("error", (err) => {
      log("warn", `cannot start the agent: ${err.message}`);
    });
    child.on("close", (code, signal) => {
      clearTimeout(watchdog);
      clearTimeout(killer);
      for (const [s, handler] of handlers) process.off(s, handler);
      resolve(code ?? 128 + signalNumber(signal));
    });
  });
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal ?? ""] ?? 1;
}

// Run only as the launcher script (`node <root>/launcher.mjs run --config …`), never on import.
const self = fileURLToPath(import.meta.url);
if (process.argv[1] !== undefined && realpathOrSame(process.argv[1]) === self) {
  process.exitCode = await runLauncher(dirname(self), process.argv.slice(2));
}

function realpathOrSame(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

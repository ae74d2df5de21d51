/**
 * A real kernel pty pair made by socat, standing in for a serial cable: the link opens `device`,
 * the simulated field device opens `sim`. `unplug()` kills socat (both ends vanish, as a USB
 * adapter does); `replug()` makes a new pair at the same paths.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, lstatSync, unlinkSync } from "node:fs";
import { join } from "node:path";

export interface PtyPair {
  /** The gateway's end (what a link's `path` points at). */
  readonly device: string;
  /** The field device's end. */
  readonly sim: string;
  unplug(): Promise<void>;
  replug(): Promise<void>;
  close(): Promise<void>;
}

function present(path: string): boolean {
  try {
    lstatSync(path);
    return existsSync(path);
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts socat with both pty ends linked inside `dir` (as `<name>-dev` and `<name>-sim`). */
export async function createPtyPair(dir: string, name = "tty"): Promise<PtyPair> {
  const device = join(dir, `${name}-dev`);
  const sim = join(dir, `${name}-sim`);
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    for (const p of [device, sim]) {
      try {
        unlinkSync(p);
      } catch {
        // not there
      }
    }
    const proc = spawn("socat", [`pty,raw,echo=0,link=${device}`, `pty,raw,echo=0,link=${sim}`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    proc.stderr?.resume();
    child = proc;
    await waitFor(() => present(device) && present(sim), 10_000, `socat ptys at ${device}`);
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    // SIGKILL: the pty masters close at once, as when a cable is pulled; socat cannot tidy up.
    proc.kill("SIGKILL");
    await exited;
    for (const p of [device, sim]) {
      try {
        unlinkSync(p);
      } catch {
        // already gone
      }
    }
  };

  await start();
  return { device, sim, unplug: stop, replug: start, close: stop };
}

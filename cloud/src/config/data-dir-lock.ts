import fs from "node:fs";
import path from "node:path";
import { FieldgateError } from "@fieldgate/shared";

/** What the lock file records about its holder. */
interface LockHolder {
  pid: number;
  startedAt: string;
}

/** True when a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Whether a lock's pid is a running cloud: alive and, where `/proc` tells (Linux), a `serve` (or a
 * `migrate`, which holds the lock so no cloud starts on the data dir it is copying). A pid
 * reused by another program (a container restarted, a reboot) then reads as stale, not as busy.
 */
export function cloudRunning(pid: number): boolean {
  if (!processAlive(pid)) return false;
  let cmdline: string;
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return true; // no /proc: alive is all we know
  }
  return cmdline.split("\0").some((arg) => arg === "serve" || arg === "migrate");
}

/**
 * `<data-dir>/cloud.lock`: one `serve` per data directory, for the life of the process. Taken
 * before anything in the directory is written, so a second cloud never touches the key material of
 * a running one. The file holds the holder's pid; a lock whose pid no longer runs a cloud (a
 * crash, a kill -9, a reboot) is stale and taken over.
 */
export class DataDirLock {
  private constructor(
    readonly file: string,
    private readonly pid: number,
  ) {}

  static lockFile(dataDir: string): string {
    return path.join(dataDir, "cloud.lock");
  }

  /** Takes the lock or throws DATA_DIR_LOCKED naming the running holder's pid. */
  static acquire(
    dataDir: string,
    options: { pid?: number; isAlive?: (pid: number) => boolean; now?: () => Date } = {},
  ): DataDirLock {
    const pid = options.pid ?? process.pid;
    const isAlive = options.isAlive ?? cloudRunning;
    const file = DataDirLock.lockFile(dataDir);
    const holder: LockHolder = { pid, startedAt: (options.now?.() ?? new Date()).toISOString() };
    // Written whole under a private name, then linked into place: link fails if the lock exists,
    // so no reader ever sees a half-written lock, and two starting clouds cannot both win.
    const tmp = `${file}.${pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(holder)}\n`, { mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          fs.linkSync(tmp, file);
          return new DataDirLock(file, pid);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        }
        const current = readHolder(file);
        if (current && current.pid !== pid && isAlive(current.pid)) {
          throw new FieldgateError(
            "DATA_DIR_LOCKED",
            `${dataDir} is in use by fieldgate-cloud pid ${current.pid} (since ${current.startedAt}; lock ${file}). ` +
              "Stop that process first, or give this one its own --data-dir. If no cloud runs with that pid, delete the lock file",
            "data-dir",
          );
        }
        // Stale (its process is gone) or unreadable: replace it and try once more.
        fs.rmSync(file, { force: true });
      }
      throw new FieldgateError("DATA_DIR_LOCKED", `${file} keeps reappearing; another cloud is starting`, "data-dir");
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  /** Releases the lock, if it is still this process's. */
  release(): void {
    if (readHolder(this.file)?.pid === this.pid) fs.rmSync(this.file, { force: true });
  }
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<LockHolder>;
    return typeof parsed.pid === "number" ? { pid: parsed.pid, startedAt: String(parsed.startedAt) } : undefined;
  } catch {
    return undefined;
  }
}

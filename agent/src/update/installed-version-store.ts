import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FieldgateError, isSemver } from "@fieldgate/shared";
import { writeFileAtomic } from "../identity/atomic-file.js";

/**
 * The installed firmware version, in `<dataDir>/firmware/installed.json`: written atomically and
 * fsynced, so anti-rollback still knows the version after a power loss or reboot.
 */
export class InstalledVersionStore {
  private readonly file: string;

  constructor(dataDir: string) {
    this.file = join(dataDir, "firmware", "installed.json");
  }

  /** The recorded version, or undefined before the first install. */
  get(): string | undefined {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    // A damaged record must not read as "nothing installed": that would switch anti-rollback off.
    const version = (safeParse(text) as { version?: unknown } | undefined)?.version;
    if (typeof version !== "string" || !isSemver(version)) {
      throw new FieldgateError("CONFIG_INVALID", `${this.file} is damaged; it must hold the installed version`);
    }
    return version;
  }

  set(version: string, now: Date = new Date()): void {
    if (!isSemver(version)) throw new FieldgateError("VALIDATION_FAILED", `not a semver: ${version}`, "version");
    mkdirSync(join(this.file, ".."), { recursive: true, mode: 0o700 });
    writeFileAtomic(this.file, `${JSON.stringify({ version, installedAt: now.toISOString() })}\n`, 0o644);
  }
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

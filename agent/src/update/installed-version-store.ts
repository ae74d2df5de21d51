import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FieldgateError, isSemver } from "@fieldgate/shared";
import { writeFileAtomic } from "../identity/atomic-file.js";

/**
 * The installed firmware version, in `<dataDir>/firmware/installed.json`: written atomically and
 * fsynced, so anti-rollback still knows the version after a power loss or reboot. The version it
 * replaced is kept beside it: the only one a rollout's auto-rollback may return to.
 */
export class InstalledVersionStore {
  private readonly file: string;

  constructor(dataDir: string) {
    this.file = join(dataDir, "firmware", "installed.json");
  }

  /** The recorded version, or undefined before the first install. */
  get(): string | undefined {
    return this.read()?.version;
  }

  /** The version the last install replaced, or undefined. */
  previous(): string | undefined {
    return this.read()?.previous;
  }

  set(version: string, now: Date = new Date()): void {
    if (!isSemver(version)) throw new FieldgateError("VALIDATION_FAILED", `not a semver: ${version}`, "version");
    const previous = this.get();
    mkdirSync(join(this.file, ".."), { recursive: true, mode: 0o700 });
    const record = {
      version,
      ...(previous !== undefined && previous !== version && { previous }),
      installedAt: now.toISOString(),
    };
    writeFileAtomic(this.file, `${JSON.stringify(record)}\n`, 0o600);
  }

  private read(): { version: string; previous?: string } | undefined {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    // A damaged record must not read as "nothing installed": that would switch anti-rollback off.
    const record = safeParse(text) as { version?: unknown; previous?: unknown } | undefined;
    const version = record?.version;
    if (typeof version !== "string" || !isSemver(version)) {
      throw new FieldgateError("CONFIG_INVALID", `${this.file} is damaged; it must hold the installed version`);
    }
    const previous = typeof record?.previous === "string" && isSemver(record.previous) ? record.previous : undefined;
    return { version, ...(previous !== undefined && { previous }) };
  }
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

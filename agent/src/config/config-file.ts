import { accessSync, constants, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { FieldgateError } from "@fieldgate/shared";
import { writeFileAtomic } from "../identity/atomic-file.js";
import { parseConfigText } from "./load-config.js";

type Obj = Record<string, unknown>;

/**
 * The agent's config file as JSON, for `enroll` to update: `{}` when it does not exist yet,
 * `CONFIG_INVALID` (with line and column) when it cannot be kept as it is.
 */
export function readConfigFileForUpdate(file: string): Obj {
  const stat = statSync(file, { throwIfNoEntry: false });
  if (stat === undefined) return {};
  if (!stat.isFile()) throw new FieldgateError("CONFIG_INVALID", `${file} is not a regular file`, "--config");
  let raw: unknown;
  try {
    raw = parseConfigText(readFileSync(file, "utf8"), file);
  } catch (err) {
    if (err instanceof FieldgateError) throw new FieldgateError(err.code, err.message, "--config");
    throw err;
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FieldgateError("CONFIG_INVALID", `${file} must hold a JSON object`, "--config");
  }
  return raw as Obj;
}

/** Fails before anything irreversible (a token spent) if the file could not be written afterwards. */
export function assertConfigWritable(file: string): void {
  const dir = dirname(file);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new FieldgateError(
      "CONFIG_INVALID",
      `cannot write ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); run as a user who may, or pass --config <file> elsewhere`,
      "--config",
    );
  }
}

/** Writes the config atomically, mode 0600 (it may name key files and hold settings an attacker wants). */
export function writeConfigFile(file: string, config: Obj): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  writeFileAtomic(file, `${JSON.stringify(config, null, 2)}\n`, 0o600);
}

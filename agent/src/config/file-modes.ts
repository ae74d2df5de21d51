import { readFileSync, statSync } from "node:fs";
import { identityPaths } from "../identity/identity-store.js";
import type { ConfigProblem } from "./load-config.js";

/** The umask the agent runs with: every file it (or a library) creates is 0600, every directory 0700. */
export const AGENT_UMASK = 0o077;

/** What `checkFileModes` looks at. */
export interface ModeTargets {
  dataDir: string;
  factoryKeyFile?: string | undefined;
  /** The config file, when one was read. */
  configFile?: string | undefined;
}

const octal = (mode: number) => `0${(mode & 0o777).toString(8).padStart(3, "0")}`;

function modeOf(path: string): number | undefined {
  return statSync(path, { throwIfNoEntry: false })?.mode;
}

/**
 * The agent refuses to run with a private key others can read or a data directory others can
 * write (anyone could replace its database, its identity or the local API's socket), and warns
 * about a config file others can read while it holds an enrollment token. It does not repair
 * them: a key that was readable may already be copied, and an operator must decide that.
 */
export function checkFileModes(targets: ModeTargets): { errors: ConfigProblem[]; warnings: string[] } {
  const errors: ConfigProblem[] = [];
  const warnings: string[] = [];
  const dirMode = modeOf(targets.dataDir);
  if (dirMode !== undefined && (dirMode & 0o022) !== 0) {
    errors.push({
      field: "dataDir",
      message: `${targets.dataDir} is mode ${octal(dirMode)}: others can replace the agent's database, identity and local API socket; run \`chmod 700 ${targets.dataDir}\``,
    });
  }
  const keys: [string, string | undefined][] = [
    ["dataDir", identityPaths(targets.dataDir).key],
    ["enrollment.factoryKeyFile", targets.factoryKeyFile],
  ];
  for (const [field, key] of keys) {
    const mode = key === undefined ? undefined : modeOf(key);
    if (mode === undefined || (mode & 0o077) === 0) continue;
    errors.push({
      field,
      message: `the private key ${key} is mode ${octal(mode)}: only its owner may read it; run \`chmod 600 ${key}\` (if others could read it, treat it as exposed: an operator runs \`fieldgate-cloud devices reset-token <uuid>\`)`,
    });
  }
  const config = targets.configFile;
  const configMode = config === undefined ? undefined : modeOf(config);
  if (config !== undefined && configMode !== undefined && (configMode & 0o044) !== 0 && holdsToken(config)) {
    warnings.push(
      `${config} holds an enrollment token and is mode ${octal(configMode)}: other users can read it; run \`chmod 600 ${config}\` (\`fieldgate-agent enroll\` removes the token once used)`,
    );
  }
  return { errors, warnings };
}

/** Whether the config file names an enrollment token (a rough look: a broken file is reported elsewhere). */
function holdsToken(file: string): boolean {
  try {
    return /"token"\s*:\s*"[^"]+"/.test(readFileSync(file, "utf8"));
  } catch {
    return false;
  }
}

// The committed bins (cloud/bin, agent/bin) exist from `npm install` on, before anything is built,
// so `npx fieldgate-cloud` finds them and never looks the name up on a registry. Each one runs its
// built entry, or, before `npm run build`, says so in one line instead of a module-not-found trace.
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Runs `entry` (a path or file URL) as the command `name`; exits 1 when it is not built. */
export async function runBuilt(name, entry) {
  const file = entry instanceof URL ? fileURLToPath(entry) : entry;
  if (!existsSync(file)) {
    process.stderr.write(`${name} is not built yet: run \`npm run build\` in ${root}\n`);
    process.exit(1);
  }
  await import(pathToFileURL(file).href);
}

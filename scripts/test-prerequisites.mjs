#!/usr/bin/env node
// `npm test` runs this first: the Debian packages the tests drive as real parts. openssl verifies
// issued certificates, socat makes the kernel pty pairs of the serial tests, chromium runs the
// console's browser tests. Missing ones are installed when this runs as root with apt-get (a
// fresh machine), otherwise named with the command that installs them.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const NEEDED = [
  { pkg: "openssl", present: () => onPath("openssl") },
  { pkg: "socat", present: () => onPath("socat") },
  { pkg: "chromium", present: () => existsSync(process.env.FIELDGATE_CHROMIUM ?? "/usr/bin/chromium") },
];

function onPath(command) {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

const missing = NEEDED.filter((n) => !n.present()).map((n) => n.pkg);
if (missing.length > 0) {
  const install = `apt-get install -y ${missing.join(" ")}`;
  if (process.getuid?.() !== 0 || !onPath("apt-get")) {
    process.stderr.write(`the tests need ${missing.join(", ")}: install with \`sudo ${install}\`\n`);
    process.exit(1);
  }
  process.stderr.write(`installing what the tests need: ${missing.join(", ")}\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  execFileSync("apt-get", ["install", "-y", "-qq", ...missing], { stdio: "inherit", env });
}

#!/usr/bin/env node
// `npm test` runs this first: the Debian packages the tests drive as real parts. openssl verifies
// issued certificates, socat makes the kernel pty pairs of the serial tests, chromium runs the
// console's browser tests. Missing ones are installed when this runs as root with apt-get (a
// fresh machine), otherwise named with the command that installs them. Then the PostgreSQL 15 the
// storage suites run on (127.0.0.1:5432): started, or installed and started, by
// scripts/ensure-postgres.sh when root; otherwise named with the command that starts it.
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

const postgresAnswers = () =>
  spawnSync("pg_isready", ["-q", "-h", "127.0.0.1", "-p", "5432"], { stdio: "ignore" }).status === 0;
// A server named by FIELDGATE_TEST_POSTGRES is the caller's own to run.
if (process.env.FIELDGATE_TEST_POSTGRES === undefined && !postgresAnswers()) {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      "the tests need PostgreSQL 15 on 127.0.0.1:5432 (user postgres, trust on loopback): start it with `sudo pg_ctlcluster 15 main start`, or install it with `sudo apt-get install -y postgresql`\n",
    );
    process.exit(1);
  }
  const script = new URL("./ensure-postgres.sh", import.meta.url).pathname;
  execFileSync("bash", [script], { stdio: "inherit" });
}

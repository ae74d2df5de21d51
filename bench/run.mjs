#!/usr/bin/env node
// `npm run bench [-- --quick] [-- --only ingest,outbox] [-- --cpu-prof] [-- --keep]`: fieldgate against
// Mosquitto, raw Aedes and this machine's physical limits, every peer measured in the same run.
// Each scenario prints one JSON line; the run writes bench/results/<date>.json and the results
// table of docs/benchmarks.md. Sizes and goals come from issue #7.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, freemem, totalmem } from "node:os";
import path from "node:path";
import { removeWorkDirs } from "./lib/kit.mjs";
import { renderMarkdown } from "./lib/report.mjs";
import { scenarios } from "./lib/scenarios.mjs";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const onlyIndex = args.indexOf("--only");
const only = onlyIndex >= 0 ? new Set((args[onlyIndex + 1] ?? "").split(",")) : undefined;
const profileDir = args.includes("--cpu-prof") ? path.resolve("bench/profiles") : undefined;
const noWrite = args.includes("--no-write");
const repoRoot = path.resolve(import.meta.dirname, "..");

const startedAt = new Date();
const scaleIndex = args.indexOf("--scale");
// --scale picks any size between quick (0.1) and full (1), for profiling one scenario at a middle size.
const scale = scaleIndex >= 0 ? Number(args[scaleIndex + 1]) : quick ? 0.1 : 1;
const context = { quick, profileDir, scale };
if (profileDir) mkdirSync(profileDir, { recursive: true });
process.stderr.write(`fieldgate bench (${quick ? "quick, about 1/10 size" : "full size"}) on ${cpus().length} cores\n`);

const results = [];
for (const scenario of scenarios) {
  if (only && !only.has(scenario.name)) continue;
  process.stderr.write(`\n== ${scenario.name}: ${scenario.title}\n`);
  const t0 = performance.now();
  let result;
  try {
    result = { name: scenario.name, ...(await scenario.run(context)) };
  } catch (err) {
    result = { name: scenario.name, status: "error", error: String(err?.stack ?? err) };
  }
  result.seconds = Math.round((performance.now() - t0) / 100) / 10;
  results.push(result);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

const run = {
  date: startedAt.toISOString(),
  mode: quick ? "quick" : "full",
  command: `npm run bench${quick ? " -- --quick" : ""}`,
  machine: {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    freeMemoryGiB: Math.round(freemem() / 2 ** 30),
    node: process.version,
    mosquitto: mosquittoVersion(),
    commit: gitCommit(),
  },
  seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
  results,
};
process.stderr.write(`\nbench done in ${run.seconds} s\n`);
// The fleets, databases and images of the run (gigabytes at full size, partly in RAM on tmpfs).
if (!args.includes("--keep")) removeWorkDirs();
if (!noWrite) {
  const dir = path.join(repoRoot, "bench/results");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${startedAt.toISOString().replace(/:/g, "-").replace(/\..*/, "")}-${run.mode}.json`);
  writeFileSync(file, `${JSON.stringify(run, null, 2)}\n`);
  updateDocs(run, path.relative(repoRoot, file));
  process.stderr.write(`wrote ${path.relative(repoRoot, file)} and the ${run.mode} table of docs/benchmarks.md\n`);
}
process.exit(results.some((r) => r.status === "error") ? 1 : 0);

/** Replaces the block between the markers of this mode in docs/benchmarks.md (other text stays). */
function updateDocs(run, resultFile) {
  const doc = path.join(repoRoot, "docs/benchmarks.md");
  if (!existsSync(doc)) return;
  // A run of some scenarios only (--only) has a table of its own, so it never replaces the whole run's.
  const key = only ? `${run.mode}:${[...only].sort().join("+")}` : run.mode;
  const begin = `<!-- bench:${key}:begin -->`;
  const end = `<!-- bench:${key}:end -->`;
  const text = readFileSync(doc, "utf8");
  const from = text.indexOf(begin);
  const to = text.indexOf(end);
  if (from < 0 || to < from) return;
  const block = `${begin}\n${renderMarkdown(run, resultFile)}\n${end}`;
  writeFileSync(doc, text.slice(0, from) + block + text.slice(to + end.length));
}

function mosquittoVersion() {
  try {
    return execFileSync("/usr/sbin/mosquitto", ["-h"], { encoding: "utf8" }).split("\n")[0]?.trim() ?? null;
  } catch (err) {
    return (
      String(err.stdout ?? "")
        .split("\n")[0]
        ?.trim() || null
    );
  }
}

function gitCommit() {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoRoot, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain"], { cwd: repoRoot, encoding: "utf8" }).trim() !== "";
    return dirty ? `${head} with uncommitted changes` : head;
  } catch {
    return null;
  }
}

#!/usr/bin/env node
// `node bench/lib/profile-top.mjs <file.cpuprofile> [n]`: self time per function and per package,
// to say where the time of a scenario goes (the flame graph of the same file: Chrome DevTools or speedscope).
import { readFileSync } from "node:fs";

// Piped into `head`, the reader may go away early: that is not an error.
process.stdout.on("error", () => process.exit(0));
const profile = JSON.parse(readFileSync(process.argv[2], "utf8"));
const limit = Number(process.argv[3] ?? 25);
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  self.set(id, (self.get(id) ?? 0) + (dt[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const byFunction = new Map();
const byPackage = new Map();
for (const [id, us] of self) {
  const { callFrame } = nodes.get(id);
  const where = callFrame.url.replace(/^file:\/\//, "").replace(/.*\/node_modules\//, "");
  const pkg = callFrame.url.includes("node_modules/")
    ? where.split("/")[0].startsWith("@")
      ? where.split("/").slice(0, 2).join("/")
      : where.split("/")[0]
    : callFrame.url.includes("/dist/")
      ? `fieldgate ${callFrame.url.split("/dist/")[0].split("/").pop()}`
      : callFrame.url.startsWith("node:")
        ? "node internals"
        : callFrame.functionName || "(native/gc/idle)";
  const key = `${callFrame.functionName || "(anonymous)"} ${where.split("/").slice(-2).join("/")}:${callFrame.lineNumber + 1}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
}
const print = (title, map) => {
  process.stdout.write(`\n${title}\n`);
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, limit)) {
    process.stdout.write(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${key}\n`);
  }
};
process.stdout.write(`${(total / 1e6).toFixed(1)} s sampled\n`);
print("self time by package", byPackage);
print("self time by function", byFunction);

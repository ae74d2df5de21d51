import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { agentCli } from "../support/agent-process.js";
import { agentBin, repoRoot, tempDir } from "../support/cloud-process.js";

const simBin = path.join(repoRoot, "agent/dist/sim/main.js");
const STACK = /^\s+at .+[(:]\d+/m;

/** Runs a CLI whose reader hangs up before it writes, as `… | head -1` does. */
function withClosedStdout(bin: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  // Closed before the process has even loaded its modules, so its first write meets a closed pipe.
  child.stdout.destroy();
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stderr })));
}

function runSim(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [simBin, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stderr })));
}

describe("the agent's CLIs on a closed stdout and bad flags, as real processes", () => {
  it("fieldgate-agent status --json | head: exits quietly, no EPIPE trace", async () => {
    const dataDir = tempDir("agent-epipe");
    for (const args of [["status", "--json", "--data-dir", dataDir], ["status", "--data-dir", dataDir], ["--help"]]) {
      const { code, stderr } = await withClosedStdout(agentBin, args);
      expect(stderr, args.join(" ")).toBe("");
      expect(code, args.join(" ")).toBe(0);
    }
  });

  it("fieldgate-sim --help | head: exits quietly", async () => {
    const { code, stderr } = await withClosedStdout(simBin, ["--help"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
  });

  it("malformed flags: `error CONFIG_INVALID: --flag: …`, exit 2, no stack trace", async () => {
    const file = path.join(tempDir("agent-flags"), "plain-file");
    fs.writeFileSync(file, "x");
    const runs = [
      {
        args: ["enroll", "--cloud", "localhost:9443", "--uuid", "0f1e2d3c-4b5a-4968-8776-655443322110", "--token", "t"],
        line: 'error CONFIG_INVALID: --cloud: "localhost:9443" does not start with https://; expected the cloud API\'s https URL, such as https://cloud.example:8443',
      },
      {
        args: ["status", "--data-dir", file],
        line: `error CONFIG_INVALID: --data-dir: ${JSON.stringify(file)} is a file, not a directory; expected a directory`,
      },
      { args: ["run", "--config", `${file}.json`], line: "error CONFIG_INVALID: --config: cannot read config file" },
    ];
    for (const { args, line } of runs) {
      const out = await agentCli(args);
      expect(out.stderr, args.join(" ")).not.toMatch(STACK);
      expect(out.stderr.split("\n")[0], args.join(" ")).toContain(line);
      expect(out.code, args.join(" ")).toBe(2);
    }
  });

  it("fieldgate-sim: a malformed flag and an unknown one, in the same `error CODE:` form", async () => {
    const ca = path.join(tempDir("sim-flags"), "ca.crt");
    fs.writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n");
    for (const [args, line] of [
      [
        ["--url", "https://localhost:1", "--ca-file", ca, "--log-level", "loud"],
        'error CONFIG_INVALID: --log-level "loud": expected one of',
      ],
      [["--bogus"], "error VALIDATION_FAILED: unknown option '--bogus'"],
    ] as const) {
      const run = await runSim(args);
      expect(run.stderr, args.join(" ")).not.toMatch(STACK);
      expect(run.stderr, args.join(" ")).toContain(line);
      expect(run.code, args.join(" ")).toBe(2);
    }
  });
});

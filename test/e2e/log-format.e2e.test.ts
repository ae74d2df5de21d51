import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "../support/agent-process.js";
import { agentBin, cloudBin, eventually, serveArgs, tempDir } from "../support/cloud-process.js";

// `serve` and `run` as started by hand: the format flag and setting reach the real processes.
// (On a pipe the default is JSON; every other end-to-end test reads those lines.)

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

function startWithStdout(args: string[], env: Record<string, string> = {}): { lines: string[]; child: ChildProcess } {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  children.push(child);
  const lines: string[] = [];
  readline.createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => lines.push(line));
  return { lines, child };
}

const prettyLine = /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\] (INFO|WARN|ERROR): /;

function agentConfig(extra: Record<string, unknown> = {}): string {
  const dir = tempDir("agent-log-format");
  return writeAgentConfig(dir, {
    uuid: "0b6a2f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
    dataDir: path.join(dir, "data"),
    cloud: { url: "https://127.0.0.1:9" }, // nothing listens: the agent logs its enrollment tries
    ...extra,
  });
}

describe("log format of the daemons", () => {
  it("agent: log.format pretty gives human-readable lines; --log-format json overrides it", async () => {
    const file = agentConfig({ log: { level: "info", format: "pretty" } });
    const pretty = startWithStdout([agentBin, "run", "--config", file]);
    const seen = await eventually(() => (pretty.lines.length >= 3 ? pretty.lines.slice(0, 3) : undefined), 20_000);
    for (const line of seen) expect(line).toMatch(prettyLine);
    pretty.child.kill("SIGTERM");

    const json = startWithStdout([agentBin, "run", "--config", agentConfig(), "--log-format", "json"], {
      FIELDGATE_AGENT_LOG_FORMAT: "pretty",
    });
    const first = await eventually(() => json.lines[0], 20_000);
    expect(JSON.parse(first)).toMatchObject({ name: "fieldgate-agent" });
  });

  it("agent and cloud: an unknown format is CONFIG_INVALID naming the flag, exit 2", async () => {
    const agent = startWithStdout([agentBin, "run", "--config", agentConfig(), "--log-format", "text"]);
    const agentErr: string[] = [];
    agent.child.stderr?.on("data", (c: Buffer) => agentErr.push(c.toString()));
    const agentCode = await new Promise((r) => agent.child.once("exit", r));
    expect(agentCode).toBe(2);
    expect(agentErr.join("")).toContain(
      'error CONFIG_INVALID: --log-format: "text" is not valid; expected auto, json, pretty',
    );

    const cloud = startWithStdout([
      cloudBin,
      "serve",
      "--data-dir",
      tempDir("cloud-log-format"),
      "--log-format",
      "text",
    ]);
    const cloudErr: string[] = [];
    cloud.child.stderr?.on("data", (c: Buffer) => cloudErr.push(c.toString()));
    expect(await new Promise((r) => cloud.child.once("exit", r))).toBe(2);
    expect(cloudErr.join("")).toMatch(/^error CONFIG_INVALID: --log-format "text" is not a log format/);
  });

  it("cloud: --log-format pretty gives human-readable lines", async () => {
    const cloud = startWithStdout(serveArgs(tempDir("cloud-log-format"), "--log-format", "pretty"));
    const listening = await eventually(() => cloud.lines.find((l) => /listening/.test(l)), 30_000, "listening");
    expect(listening).toMatch(prettyLine);
    for (const line of cloud.lines) expect(line).not.toMatch(/^\{/);
    cloud.child.kill("SIGTERM");
  });
});

import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, repoRoot, tempDir } from "../support/cloud-process.js";

// `npm start` as a user runs it, on ephemeral ports and a temporary data directory. However it is
// stopped, its cloud and agent must not outlive it.

interface Demo {
  process: ChildProcess;
  exited: Promise<number | null>;
  cloudPid: number;
  agentPid: number;
  demoPid: number;
}

const started: ChildProcess[] = [];
const pidsToReap: number[] = [];

afterEach(() => {
  // A failing test must not leave a demo running on the machine.
  for (const child of started.splice(0)) child.kill("SIGKILL");
  for (const pid of pidsToReap.splice(0)) {
    if (alive(pid)) process.kill(pid, "SIGKILL");
  }
});

/** Whether `pid` is a running process (a zombie waiting for its reaper has stopped). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

async function startDemo(command: string, args: string[]): Promise<Demo> {
  const dataDir = tempDir("demo");
  const child = spawn(command, args, {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, FIELDGATE_DATA_DIR: dataDir, FIELDGATE_HTTP_PORT: "0", FIELDGATE_MQTT_PORT: "0" },
  });
  started.push(child);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const output: string[] = [];
  child.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not report:\n${output.join("")}`)), 90_000);
    void exited.then((code) => reject(new Error(`the demo exited (${code}):\n${output.join("")}`)));
    readline.createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      output.push(`${line}\n`);
      if (/^\[demo\] gateway .* is enrolled .* and reporting\.$/.test(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const cloudPid = (JSON.parse(fs.readFileSync(path.join(dataDir, "runtime.json"), "utf8")) as { pid: number }).pid;
  const agentStatus = path.join(dataDir, "demo-agent", "status.json");
  const agentPid = (JSON.parse(fs.readFileSync(agentStatus, "utf8")) as { pid: number }).pid;
  const demoPid = parentOf(cloudPid);
  expect(parentOf(agentPid)).toBe(demoPid);
  pidsToReap.push(cloudPid, agentPid, demoPid);
  return { process: child, exited, cloudPid, agentPid, demoPid };
}

describe("npm start (the demo)", () => {
  it("stops its cloud and agent when `npm start` gets SIGTERM", { timeout: 180_000 }, async () => {
    const demo = await startDemo("npm", ["start"]);
    expect([demo.cloudPid, demo.agentPid, demo.demoPid].every(alive)).toBe(true);
    demo.process.kill("SIGTERM");
    await demo.exited;
    // npm returns once the demo has stopped its children: nothing is left behind.
    expect({ cloud: alive(demo.cloudPid), agent: alive(demo.agentPid), demo: alive(demo.demoPid) }).toEqual({
      cloud: false,
      agent: false,
      demo: false,
    });
  });

  it("stops its cloud and agent when the demo process itself is killed", { timeout: 180_000 }, async () => {
    const demo = await startDemo(process.execPath, [path.join(repoRoot, "scripts", "demo.mjs")]);
    expect(demo.demoPid).toBe(demo.process.pid);
    demo.process.kill("SIGKILL");
    await demo.exited;
    await eventually(
      () => (alive(demo.cloudPid) || alive(demo.agentPid) ? undefined : true),
      20_000,
      "the cloud and the agent to stop after the demo died",
    );
  });
});

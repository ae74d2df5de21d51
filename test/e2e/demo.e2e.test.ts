import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, httpsJson, repoRoot, tempDir } from "../support/cloud-process.js";

// `npm start` as a user runs it, on ephemeral ports and a temporary data directory. However it is
// stopped, its cloud and agent must not outlive it.

interface Demo {
  process: ChildProcess;
  exited: Promise<number | null>;
  cloudPid: number;
  agentPid: number;
  demoPid: number;
  /** What the demo printed for the console: its URL and the demo operator's login. */
  console: { url: string; email: string; password: string };
  dataDir: string;
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
  let reporting = false;
  const consoleLine = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not report:\n${output.join("")}`)), 90_000);
    void exited.then((code) => reject(new Error(`the demo exited (${code}):\n${output.join("")}`)));
    readline.createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      output.push(`${line}\n`);
      if (/^\[demo\] gateway .* is enrolled .* and reporting\.$/.test(line)) reporting = true;
      const printed = /^\[demo\] console: (\S+) \(log in as (\S+), password (\S+)\)$/.exec(line);
      if (printed && reporting) {
        clearTimeout(timer);
        resolve(printed);
      }
    });
  });
  const cloudPid = (JSON.parse(fs.readFileSync(path.join(dataDir, "runtime.json"), "utf8")) as { pid: number }).pid;
  const agentStatus = path.join(dataDir, "demo-agent", "status.json");
  const agentPid = (JSON.parse(fs.readFileSync(agentStatus, "utf8")) as { pid: number }).pid;
  const demoPid = parentOf(cloudPid);
  expect(parentOf(agentPid)).toBe(demoPid);
  pidsToReap.push(cloudPid, agentPid, demoPid);
  const [, url = "", email = "", password = ""] = consoleLine;
  return { process: child, exited, cloudPid, agentPid, demoPid, console: { url, email, password }, dataDir };
}

describe("npm start (the demo)", () => {
  it("stops its cloud and agent when `npm start` gets SIGTERM", { timeout: 180_000 }, async () => {
    const demo = await startDemo("npm", ["start"]);
    expect([demo.cloudPid, demo.agentPid, demo.demoPid].every(alive)).toBe(true);
    // The console login it printed works, and the console is served where it said.
    const ca = fs.readFileSync(path.join(demo.dataDir, "pki", "ca.crt"), "utf8");
    const { email, password, url } = demo.console;
    const login = await httpsJson<{ csrfToken?: string }>(url, ca, "POST", "/api/v1/auth/login", {
      email,
      password,
      session: "cookie",
    });
    expect(login.status).toBe(200);
    expect(login.body.csrfToken).toBeTruthy();
    const page = await httpsJson(url, ca, "GET", "/");
    expect(page.status).toBe(200);
    expect(page.text).toContain('<div id="app">');
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

import { type ChildProcess, execFile, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { promisify } from "node:util";
import { agentBin } from "./cloud-process.js";

const run = promisify(execFile);

/** A real `fieldgate-agent run` process with its own config file and data directory. */
export interface AgentProcess {
  child: ChildProcess;
  logs: string[];
  exited: Promise<number | null>;
  /** Resolves with the first log entry whose message matches. */
  waitForLog(match: RegExp, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
}

export function writeAgentConfig(dir: string, config: Record<string, unknown>): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "agent.json");
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

export function startAgent(configFile: string, env: Record<string, string> = {}): AgentProcess {
  const child = spawn(process.execPath, [agentBin, "run", "--config", configFile], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  const logs: string[] = [];
  const waiters: { match: RegExp; resolve: (e: Record<string, unknown>) => void }[] = [];
  const onLine = (line: string) => {
    logs.push(line);
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      entry = { msg: line };
    }
    for (const w of [...waiters]) {
      if (w.match.test(String(entry.msg ?? ""))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(entry);
      }
    }
  };
  readline.createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", onLine);
  readline.createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", onLine);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    logs,
    exited,
    waitForLog(match, timeoutMs = 20_000) {
      const seen = logs.map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return { msg: l };
        }
      });
      const hit = seen.find((e) => match.test(String(e.msg ?? "")));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no log line matching ${match} within ${timeoutMs} ms:\n${logs.join("\n")}`)),
          timeoutMs,
        );
        waiters.push({
          match,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Runs the agent CLI once and returns its exit code and output. */
export async function agentCli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [agentBin, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `fieldgate-agent enroll` as the README runs it: token, CA file, data directory and the config file it writes. */
export function enrollCli(
  cloud: { url: string; caFile: string },
  device: { uuid: string; token: string; dataDir: string; configFile: string },
) {
  return agentCli([
    "enroll",
    "--cloud",
    cloud.url,
    "--uuid",
    device.uuid,
    "--token",
    device.token,
    "--ca-file",
    cloud.caFile,
    "--data-dir",
    device.dataDir,
    "--config",
    device.configFile,
  ]);
}

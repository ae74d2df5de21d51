import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { agentBin, repoRoot } from "./cloud-process.js";

/**
 * The agent launcher (`<root>/launcher.mjs`) run the way the systemd unit in docs/updates.md runs
 * it: `Restart=always`, started again shortly after every exit, until `stop()`.
 */
export interface SupervisedAgent {
  /** Every line of every run, in order. */
  logs: string[];
  /** How many times the launcher was started. */
  starts(): number;
  /** Resolves with the first log entry at or after line `from` whose message matches. */
  waitForLog(match: RegExp, timeoutMs?: number, from?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export function superviseLauncher(
  root: string,
  configFile: string,
  env: Record<string, string> = {},
  restartDelayMs = 300,
): SupervisedAgent {
  const logs: string[] = [];
  const waiters: { match: RegExp; from: number; resolve: (e: Record<string, unknown>) => void }[] = [];
  let child: ChildProcess | undefined;
  let starts = 0;
  let stopped = false;
  let exited: Promise<void> = Promise.resolve();
  const parse = (line: string): Record<string, unknown> => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      return { msg: line };
    }
  };
  const onLine = (line: string) => {
    logs.push(line);
    const entry = parse(line);
    for (const w of [...waiters]) {
      if (logs.length - 1 >= w.from && w.match.test(String(entry.msg ?? ""))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(entry);
      }
    }
  };
  const start = () => {
    if (stopped) return;
    starts += 1;
    const proc = spawn(process.execPath, [path.join(root, "launcher.mjs"), "run", "--config", configFile], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    child = proc;
    readline.createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on("line", onLine);
    readline.createInterface({ input: proc.stderr as NodeJS.ReadableStream }).on("line", onLine);
    exited = new Promise((resolve) =>
      proc.once("exit", (code, signal) => {
        onLine(`[supervisor] launcher exited with ${code ?? signal}`);
        resolve();
        if (!stopped) setTimeout(start, restartDelayMs);
      }),
    );
  };
  start();
  return {
    logs,
    starts: () => starts,
    waitForLog(match, timeoutMs = 30_000, from = 0) {
      const hit = logs
        .slice(from)
        .map(parse)
        .find((e) => match.test(String(e.msg ?? "")));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no log line matching ${match} within ${timeoutMs} ms:\n${logs.join("\n")}`)),
          timeoutMs,
        );
        waiters.push({
          match,
          from,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
    async stop() {
      stopped = true;
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * An agent install as the `agent` installer expects it in a slot or an image: `package.json` with
 * `version`, the built `dist/`, and `node_modules` (here a link to the repository's, whose
 * `@fieldgate/shared` is the built workspace). `main` replaces `dist/cli/main.js` to make a broken agent.
 */
export function agentInstall(dir: string, version: string, main?: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify({ name: "@fieldgate/agent", version, type: "module", private: true }),
  );
  fs.cpSync(path.dirname(path.dirname(agentBin)), path.join(dir, "dist"), { recursive: true });
  if (main !== undefined) fs.writeFileSync(path.join(dir, "dist", "cli", "main.js"), main);
  fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(dir, "node_modules"));
  return dir;
}

/** `<root>/a` holding the agent at `version`, `current` → a, and the launcher installed once. */
export function agentRoot(root: string, version: string): string {
  agentInstall(path.join(root, "a"), version);
  fs.symlinkSync("a", path.join(root, "current"));
  fs.copyFileSync(
    path.join(path.dirname(path.dirname(agentBin)), "update", "agent-launcher.js"),
    path.join(root, "launcher.mjs"),
  );
  return root;
}

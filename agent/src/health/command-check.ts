import { type ChildProcess, spawn } from "node:child_process";
import { formatDuration } from "@fieldgate/shared";
import { type CheckResult, type CheckStatus, clampMessage, type HealthCheck } from "./health-check.js";

/** A configured check: a command run without a shell, judged by its Nagios plugin exit code. */
export interface CommandCheckOptions {
  /** The check's name in reports (the agent uses `command.<configured name>`). */
  name: string;
  /** argv: the program (found on PATH if it has no slash) and its arguments. */
  command: readonly string[];
  intervalMs: number;
  timeoutMs: number;
}

/** Nagios plugin exit codes (Nagios Plugin Development Guidelines, "Plugin Return Codes"). */
const EXIT_STATUS: Record<number, CheckStatus> = { 0: "ok", 1: "warning", 2: "critical", 3: "unknown" };

/** Only the first line matters; a chatty plugin must not fill the agent's memory. */
const MAX_OUTPUT = 64 * 1024;

/**
 * Runs a command and maps its exit code: 0 ok, 1 warning, 2 critical, 3 unknown; any other code, a
 * signal, a failure to start or a timeout is unknown. The message is the first line of stdout, cut
 * before Nagios performance data (`|`). The command runs in its own process group so a timeout kills
 * whatever it started too (a shell script's `sleep` would otherwise hold its pipe open).
 */
export class CommandCheck implements HealthCheck {
  readonly name: string;
  readonly kind = "command";
  readonly intervalMs: number;
  private child: ChildProcess | undefined;

  constructor(private readonly options: CommandCheckOptions) {
    this.name = options.name;
    this.intervalMs = options.intervalMs;
  }

  run(): Promise<CheckResult> {
    const { command, timeoutMs } = this.options;
    const [program, ...args] = command;
    const result = (status: CheckStatus, message: string): CheckResult => ({
      name: this.name,
      status,
      message: clampMessage(message),
    });
    return new Promise((resolve) => {
      let stdout = "";
      let stderr = "";
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const settle = (r: CheckResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.child = undefined;
        resolve(r);
      };
      let child: ChildProcess;
      try {
        child = spawn(program as string, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
      } catch (err) {
        settle(result("unknown", `cannot run ${program}: ${(err as Error).message}`));
        return;
      }
      this.child = child;
      timer = setTimeout(() => {
        killGroup(child);
        settle(result("unknown", `timed out after ${formatDuration(timeoutMs)}`));
      }, timeoutMs);
      child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
        if (stdout.length < MAX_OUTPUT) stdout += chunk;
      });
      child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
        if (stderr.length < MAX_OUTPUT) stderr += chunk;
      });
      child.on("error", (err) => settle(result("unknown", `cannot run ${program}: ${err.message}`)));
      child.on("close", (code, signal) => {
        const line = firstLine(stdout);
        if (signal) return settle(result("unknown", `killed by ${signal}${line ? `: ${line}` : ""}`));
        const status = code === null ? undefined : EXIT_STATUS[code];
        if (status) return settle(result(status, line || firstLine(stderr) || `exit code ${code}`));
        settle(result("unknown", `exit code ${code}${line || stderr ? `: ${line || firstLine(stderr)}` : ""}`));
      });
    });
  }

  /** Kills a running instance (agent stop). */
  stop(): void {
    if (this.child) killGroup(this.child);
  }
}

function firstLine(text: string): string {
  const line = text.split(/\r?\n/).find((l) => l.trim().length > 0) ?? "";
  const bar = line.indexOf("|");
  return (bar >= 0 ? line.slice(0, bar) : line).trim();
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    child.kill("SIGKILL");
  }
}

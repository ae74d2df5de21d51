import { type ChildProcess, spawn } from "node:child_process";
import readline from "node:readline";
import type { LogLevelName } from "@fieldgate/shared";
import type { LogEntry } from "./log-entry.js";

/** Options of the journal source. */
export interface JournalSourceOptions {
  onEntry: (entry: LogEntry) => void;
  /** Reports that the journal is unavailable or failed; called once per condition. */
  onProblem: (message: string) => void;
  /** The command, for tests; default `journalctl`. */
  command?: string;
  restartDelayMs?: number;
}

/** syslog priorities 0–7 to our levels. */
const PRIORITY: readonly LogLevelName[] = ["fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug"];

/** Turns one `journalctl -o json` record into an entry, or `undefined` if it is not one. */
export function entryFromJournalLine(line: string): LogEntry | undefined {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  let message = rec.MESSAGE;
  // journald sends non-UTF-8 messages as an array of bytes.
  if (Array.isArray(message)) message = Buffer.from(message as number[]).toString("utf8");
  if (typeof message !== "string") return undefined;
  const micros = Number(rec.__REALTIME_TIMESTAMP);
  const priority = Number(rec.PRIORITY ?? 6);
  const ident = typeof rec.SYSLOG_IDENTIFIER === "string" ? rec.SYSLOG_IDENTIFIER : "journal";
  return {
    ts: Number.isFinite(micros) ? Math.floor(micros / 1000) : Date.now(),
    level: PRIORITY[priority] ?? "info",
    msg: `[journal:${ident}] ${message}`,
  };
}

/**
 * Follows the systemd journal with `journalctl -f -o json --since now` as a child process. Without
 * journalctl (containers, non-systemd hosts) it reports that once and does nothing; if journalctl
 * exits, it is started again after a delay.
 */
export class JournalSource {
  private child: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(private readonly options: JournalSourceOptions) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.spawnOnce();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.child?.kill("SIGTERM");
    this.child = undefined;
  }

  private spawnOnce(): void {
    const child = spawn(this.options.command ?? "journalctl", ["-f", "-o", "json", "--since", "now"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-500);
    });
    readline.createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const entry = entryFromJournalLine(line);
      if (entry) this.options.onEntry(entry);
    });
    child.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") {
        this.options.onProblem("journalctl is not installed; logs.journal is skipped");
        this.stopped = true;
        this.child = undefined;
        return;
      }
      this.options.onProblem(`journalctl failed: ${err.message}`);
    });
    child.on("exit", (code) => {
      if (this.child !== child || this.stopped) return;
      this.child = undefined;
      this.options.onProblem(
        `journalctl exited with ${code}${stderr.trim() ? `: ${stderr.trim()}` : ""}; restarting it in ${(this.options.restartDelayMs ?? 30_000) / 1000}s`,
      );
      this.timer = setTimeout(() => this.spawnOnce(), this.options.restartDelayMs ?? 30_000);
      this.timer.unref();
    });
  }
}

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ErrorCode, HealthStatus } from "@fieldgate/shared";
import { writeFileAtomic } from "../identity/atomic-file.js";

/** The daemon's connection state as other processes (`status`, `doctor`) see it. */
export type AgentState = "starting" | "enrolling" | "connecting" | "connected" | "offline" | "stopped";

/** `<dataDir>/status.json`: written by the daemon on every state change. */
export interface AgentStatus {
  v: 1;
  pid: number;
  uuid: string;
  state: AgentState;
  since: string;
  updatedAt: string;
  lastError: { code: ErrorCode; message: string; at: string } | null;
  lastPublishAt: string | null;
  /** The health aggregate and its checks, rewritten when a status changes (absent before the first round). */
  health?: StatusHealth;
}

/** The health part of status.json. */
export interface StatusHealth {
  status: HealthStatus;
  at: string;
  checks: { name: string; status: HealthStatus | "unknown"; message: string }[];
}

export function statusPath(dataDir: string): string {
  return join(dataDir, "status.json");
}

/** Reads status.json, or `undefined` if absent or unreadable. */
export function readStatus(dataDir: string): AgentStatus | undefined {
  const p = statusPath(dataDir);
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, "utf8")) as AgentStatus;
  } catch {
    return undefined;
  }
}

/** True if a process with this pid exists (signal 0 only checks). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Writes status.json atomically; publish times are throttled so a busy outbox does not wear the flash. */
export class StatusFile {
  private status: AgentStatus;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dataDir: string,
    uuid: string,
    private readonly throttleMs = 5000,
  ) {
    const now = new Date().toISOString();
    this.status = {
      v: 1,
      pid: process.pid,
      uuid,
      state: "starting",
      since: now,
      updatedAt: now,
      lastError: null,
      lastPublishAt: null,
    };
  }

  get current(): Readonly<AgentStatus> {
    return this.status;
  }

  setState(state: AgentState): void {
    if (state === this.status.state) return;
    this.status = { ...this.status, state, since: new Date().toISOString() };
    this.flush();
  }

  setError(code: ErrorCode, message: string): void {
    this.status = { ...this.status, lastError: { code, message, at: new Date().toISOString() } };
    this.flush();
  }

  /** Records the health snapshot; the monitor calls it only when a status changes, so the flash is spared. */
  setHealth(health: { status: HealthStatus; ts: number; checks: StatusHealth["checks"] }): void {
    const at = new Date(health.ts).toISOString();
    this.status = { ...this.status, health: { status: health.status, at, checks: health.checks } };
    this.flush();
  }

  published(at: number): void {
    this.status = { ...this.status, lastPublishAt: new Date(at).toISOString() };
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, this.throttleMs);
      this.timer.unref();
    }
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.status = { ...this.status, updatedAt: new Date().toISOString() };
    try {
      writeFileAtomic(statusPath(this.dataDir), `${JSON.stringify(this.status, null, 2)}\n`, 0o600);
    } catch {
      // status.json is a convenience for other processes; the daemon keeps running without it.
    }
  }
}

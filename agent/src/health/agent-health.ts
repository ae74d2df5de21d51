import { existsSync, readFileSync } from "node:fs";
import type { Logger } from "pino";
import type { AgentConfig } from "../config/config-schema.js";
import type { IdentityStore } from "../identity/identity-store.js";
import type { Backlog } from "../outbox/outbox-store.js";
import {
  certificateCheck,
  clockSkewCheck,
  diskCheck,
  loadCheck,
  memoryCheck,
  outboxAgeCheck,
  outboxBacklogCheck,
} from "./builtin-checks.js";
import { ClockSkew } from "./clock-skew.js";
import { CommandCheck } from "./command-check.js";
import type { HealthCheck } from "./health-check.js";
import { HealthMonitor, type HealthPublisher } from "./health-monitor.js";
import type { PostedStatusStore } from "./posted-status-store.js";

/** What the agent's health capability needs from the rest of the agent. */
export interface AgentHealthDeps {
  config: AgentConfig;
  identityStore: IdentityStore;
  backlog: () => Backlog;
  publisher: HealthPublisher;
  logger: Logger;
  /** Keeps statuses posted through the local API across restarts. */
  postedStatuses?: PostedStatusStore;
  /** The `storage` check: critical while the data directory's filesystem is full. */
  storage?: HealthCheck;
}

/** The monitor with every built-in and configured check, and the clock measurement it judges. */
export interface AgentHealth {
  monitor: HealthMonitor;
  clockSkew: ClockSkew;
}

/** The CA the agent trusts for the cloud API: `cloud.caFile`, else the one stored at enrollment, else the system's. */
export function cloudApiCa(config: AgentConfig, identityStore: IdentityStore): string | undefined {
  const file = config.cloud.caFile ?? identityStore.paths.ca;
  try {
    return existsSync(file) ? readFileSync(file, "utf8") : undefined;
  } catch {
    return undefined;
  }
}

/** Builds (does not start) the agent's health monitor: disk, memory, load, clock, certificate, outbox, commands. */
export function createAgentHealth(deps: AgentHealthDeps): AgentHealth {
  const { config, identityStore, backlog, publisher, logger } = deps;
  const t = config.health.thresholds;
  const clockSkew = new ClockSkew({
    cloudUrl: config.cloud.url,
    ca: () => cloudApiCa(config, identityStore),
    intervalMs: config.health.clockSkewIntervalMs,
    logger,
  });
  const checks = [
    diskCheck(t, config.dataDir),
    memoryCheck(t),
    loadCheck(t),
    clockSkewCheck(t, clockSkew),
    certificateCheck(t, () => identityStore.loadInfo()?.notAfter),
    outboxBacklogCheck(t, backlog),
    outboxAgeCheck(t, backlog),
    ...(deps.storage ? [deps.storage] : []),
    ...config.health.commands.map(
      (c) =>
        new CommandCheck({
          name: `command.${c.name}`,
          command: c.command,
          intervalMs: c.intervalMs,
          timeoutMs: c.timeoutMs,
        }),
    ),
  ];
  const monitor = new HealthMonitor({
    checks,
    publisher,
    logger,
    options: { reportIntervalMs: config.health.reportIntervalMs, checkIntervalMs: config.health.checkIntervalMs },
    ...(deps.postedStatuses && { postedStore: deps.postedStatuses }),
  });
  // Judge the clock as soon as a measurement lands, not at the next check round.
  clockSkew.on("measured", () => void monitor.runNow("clock"));
  clockSkew.on("failed", () => void monitor.runNow("clock"));
  return { monitor, clockSkew };
}

import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import {
  type ErrorCode,
  FieldgateError,
  formatDuration,
  LOG_FORMATS,
  type LogFormat,
  visibleText,
} from "@fieldgate/shared";
import { Command, CommanderError } from "commander";
import { Agent, outboxPath } from "../agent.js";
import { assertConfigWritable, readConfigFileForUpdate, writeConfigFile } from "../config/config-file.js";
import type { AgentConfig } from "../config/config-schema.js";
import { checkFileModes } from "../config/file-modes.js";
import { ConfigInvalidError, type ConfigProblem, type LoadedConfig, loadConfig } from "../config/load-config.js";
import { Doctor } from "../doctor/doctor.js";
import { enrollmentAdvice } from "../enrollment/enrollment-advice.js";
import { EnrollmentClient } from "../enrollment/enrollment-client.js";
import { generateFactoryKey } from "../identity/factory-key.js";
import { IdentityStore } from "../identity/identity-store.js";
import type { LinkView } from "../links/link-manager.js";
import { getFromLocalApi } from "../local-api/local-api-client.js";
import { createLogger, stdoutDestination } from "../log/logger.js";
import { SqliteLogBuffer } from "../logs/sqlite-log-buffer.js";
import { SqliteOutboxStore } from "../outbox/sqlite-outbox-store.js";
import { isProcessAlive, readStatus } from "../status/status-file.js";
import { dirFlag, flagError, httpsUrlFlag, pathFlag, tokenFlag, uuidFlag } from "./flag-values.js";

/** Exit codes of every command. */
export const EXIT = { ok: 0, failure: 1, usage: 2, restart: 75 } as const;

/** Where a command writes; tests capture it. */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** The device clock, for `doctor`; tests inject a wrong one. */
  now?: () => number;
  env: NodeJS.ProcessEnv;
  /** Resolves when the daemon should stop (SIGINT/SIGTERM in production). */
  waitForStop?: () => Promise<string>;
}

const DEFAULT_CONFIG = "/etc/fieldgate/agent.json";
const configFlag = pathFlag("--config", "the agent's config file (JSON)");
const logFormatFlag = (value: string): LogFormat => {
  if (!(LOG_FORMATS as readonly string[]).includes(value))
    throw flagError("--log-format", value, LOG_FORMATS.join(", "));
  return value as LogFormat;
};
const DEFAULT_DATA_DIR = "/var/lib/fieldgate";

function exitCodeFor(code: ErrorCode): number {
  return code === "CONFIG_INVALID" || code === "VALIDATION_FAILED" ? EXIT.usage : EXIT.failure;
}

/** `error CODE: message`, with the field in front of the message for configuration errors. */
export function formatError(err: unknown): { line: string; code: ErrorCode } {
  if (err instanceof FieldgateError) {
    const field = err.field && !err.message.startsWith(err.field) ? `${err.field}: ` : "";
    return { line: `error ${err.code}: ${field}${err.message}`, code: err.code };
  }
  return { line: `error INTERNAL: ${(err as Error)?.message ?? String(err)}`, code: "INTERNAL" };
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

function age(fromIso: string | null | undefined, now = Date.now()): string {
  if (!fromIso) return "never";
  return `${formatDuration(now - Date.parse(fromIso))} ago`;
}

/**
 * The data directory a command works on: `--data-dir`, else the config's, else the default.
 * `reset` passes `replacingIdentity`, so a broken or foreign identity does not stop its own removal.
 */
function resolveDataDir(
  opts: { config?: string; dataDir?: string },
  env: NodeJS.ProcessEnv,
  replacingIdentity = false,
): string {
  if (opts.dataDir) return resolve(opts.dataDir);
  const file = opts.config ?? env.FIELDGATE_AGENT_CONFIG;
  if (file) return loadConfigOf(opts, { file, env, replacingIdentity }).config.dataDir;
  return env.FIELDGATE_AGENT_DATA_DIR ? resolve(env.FIELDGATE_AGENT_DATA_DIR) : DEFAULT_DATA_DIR;
}

/** loadConfig, with a problem of the file as a whole (unreadable, not JSON) put on `--config` when it was given. */
function loadConfigOf(opts: { config?: string }, options: Parameters<typeof loadConfig>[0]): LoadedConfig {
  try {
    return loadConfig(options);
  } catch (err) {
    if (opts.config && err instanceof FieldgateError && err.field === "" && !(err instanceof ConfigInvalidError)) {
      throw new FieldgateError(err.code, err.message, "--config");
    }
    throw err;
  }
}

/** Config problems of values a flag gave, put on that flag (`cloud.caFile` → `--ca-file`). */
function onFlags(err: unknown, flagOf: Record<string, string | undefined>): unknown {
  if (!(err instanceof ConfigInvalidError)) return err;
  const problems: ConfigProblem[] = err.problems.map((p) => {
    const flag = flagOf[p.field];
    return flag ? { field: flag, message: p.message } : p;
  });
  return new ConfigInvalidError(problems, "the flags and config");
}

function defaultWaitForStop(): Promise<string> {
  return new Promise((res) => {
    const on = (signal: string) => () => res(signal);
    process.once("SIGINT", on("SIGINT"));
    process.once("SIGTERM", on("SIGTERM"));
  });
}

/**
 * Builds the `fieldgate-agent` program. `run(argv)` returns the exit code instead of exiting,
 * so tests drive it in-process.
 */
export function buildProgram(io: CliIo): { run: (argv: string[]) => Promise<number>; program: Command } {
  let exitCode: number = EXIT.ok;
  const fail = (err: unknown, extra?: string): void => {
    const { line, code } = formatError(err);
    io.err(line);
    if (extra) io.err(extra);
    exitCode = exitCodeFor(code);
  };

  const program = new Command("fieldgate-agent")
    .description("fieldgate agent: the gateway daemon and its CLI")
    .version(version())
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, "")),
      writeErr: (s) => io.err(s.replace(/\n$/, "")),
      outputError: (s, write) => write(`error VALIDATION_FAILED: ${s.replace(/^error: /, "").trim()}\n`),
    });

  program
    .command("run")
    .description("run the daemon (SIGINT/SIGTERM stop it cleanly)")
    .option("-c, --config <file>", `config file (default $FIELDGATE_AGENT_CONFIG or ${DEFAULT_CONFIG})`, configFlag)
    .option(
      "--log-format <format>",
      "auto (pretty on a terminal), json or pretty (default: config log.format)",
      logFormatFlag,
    )
    .action(async (opts: { config?: string; logFormat?: LogFormat }) => {
      let agent: Agent;
      // Listen before starting, so a stop that arrives during start-up is still a clean one.
      const stopRequested = (io.waitForStop ?? defaultWaitForStop)();
      try {
        const file = opts.config ?? io.env.FIELDGATE_AGENT_CONFIG ?? DEFAULT_CONFIG;
        const { config, warnings } = loadConfigOf(opts, { file, env: io.env });
        const modes = checkFileModes({
          dataDir: config.dataDir,
          factoryKeyFile: config.enrollment.factoryKeyFile,
          configFile: existsSync(file) ? file : undefined,
        });
        if (modes.errors.length > 0) throw new ConfigInvalidError(modes.errors, "the file modes");
        const logger = createLogger(config.log.level, stdoutDestination(opts.logFormat ?? config.log.format));
        for (const w of [...warnings, ...modes.warnings]) logger.warn(w);
        agent = new Agent(config, logger);
        await agent.start();
      } catch (err) {
        fail(err);
        return;
      }
      const signal = await Promise.race([stopRequested, agent.restartRequested.then(() => undefined)]);
      if (signal === undefined) {
        // The agent updated itself: exit (75, EX_TEMPFAIL) so the service manager starts the new one.
        io.err("restarting into the new agent version");
        exitCode = EXIT.restart;
      } else io.err(`received ${signal}, stopping`);
      await agent.stop();
    });

  program
    .command("enroll")
    .description("enroll this device once with a token, store its identity and write the config `run` needs")
    .requiredOption(
      "--cloud <url>",
      "https URL of the cloud API, e.g. https://cloud.example:8443",
      httpsUrlFlag("--cloud"),
    )
    .option(
      "--uuid <uuid>",
      "device uuid (default: the config's, else the stored identity's, else derived from /etc/machine-id)",
      uuidFlag("--uuid"),
    )
    .option(
      "--token <token>",
      "one-time enrollment token (default $FIELDGATE_AGENT_ENROLLMENT_TOKEN)",
      tokenFlag("--token"),
    )
    .option(
      "--ca-file <file>",
      "CA certificate (PEM) to trust for the cloud API instead of the system store",
      pathFlag("--ca-file"),
    )
    .option(
      "--data-dir <dir>",
      `data directory (default: the config's, else ${DEFAULT_DATA_DIR})`,
      dirFlag("--data-dir"),
    )
    .option(
      "-c, --config <file>",
      `config file to write or update, mode 0600 (default $FIELDGATE_AGENT_CONFIG or ${DEFAULT_CONFIG})`,
      configFlag,
    )
    .option("--json", "print the result as JSON")
    .action(async (opts: EnrollFlags) => {
      let uuid = opts.uuid ?? "";
      try {
        const configFile = resolve(opts.config ?? io.env.FIELDGATE_AGENT_CONFIG ?? DEFAULT_CONFIG);
        const { raw, config } = enrollmentConfig(opts, configFile, io.env);
        uuid = config.uuid;
        if (!config.enrollment.token) {
          throw new FieldgateError(
            "VALIDATION_FAILED",
            "pass --token (or set FIELDGATE_AGENT_ENROLLMENT_TOKEN) with the token the operator got",
            "token",
          );
        }
        // Before the token is spent: a config that cannot be written afterwards would strand the identity.
        assertConfigWritable(configFile);
        const identityStore = new IdentityStore(config.dataDir);
        const client = new EnrollmentClient({
          cloudUrl: config.cloud.url,
          uuid: config.uuid,
          token: config.enrollment.token,
          identity: identityStore,
          ...(config.cloud.caFile && { ca: readCa(config.cloud.caFile) }),
        });
        const identity = await client.enroll();
        writeConfigFile(configFile, withoutToken(raw, config.enrollment.token));
        const daysLeft = Math.floor((Date.parse(identity.notAfter) - Date.now()) / 86_400_000);
        const next = `fieldgate-agent run --config ${configFile}`;
        if (opts.json) {
          io.out(
            JSON.stringify({
              ok: true,
              uuid: identity.uuid,
              serial: identity.serial,
              notAfter: identity.notAfter,
              renewAfter: identity.renewAfter,
              mqttUrl: identity.mqttUrl,
              apiUrl: identity.apiUrl,
              identityDir: identityStore.paths.dir,
              configFile,
              next,
            }),
          );
        } else {
          io.out(`enrolled ${identity.uuid}`);
          io.out(`  certificate serial  ${identity.serial}`);
          io.out(`  valid until         ${identity.notAfter} (${daysLeft} days)`);
          io.out(`  mqtt                ${identity.mqttUrl}`);
          io.out(`  identity stored in  ${identityStore.paths.dir}`);
          io.out(`  config written to   ${configFile} (mode 0600, no token in it)`);
          io.out(`next: ${next}   (or restart the service that runs it)`);
        }
      } catch (err) {
        if (opts.json) {
          const fe = err instanceof FieldgateError ? err : new FieldgateError("INTERNAL", String(err));
          io.out(JSON.stringify({ ok: false, error: fe.toBody(), advice: enrollmentAdvice(fe.code, uuid) }));
          exitCode = exitCodeFor(fe.code);
        } else {
          const code = err instanceof FieldgateError ? err.code : "INTERNAL";
          fail(err, `what to do: ${enrollmentAdvice(code, uuid || "<uuid>")}`);
        }
      }
    });

  program
    .command("status")
    .description("show identity, connection and outbox backlog")
    .option("-c, --config <file>", "config file (to find the data directory)", configFlag)
    .option("--data-dir <dir>", `data directory (default ${DEFAULT_DATA_DIR})`, dirFlag("--data-dir"))
    .option("--json", "print as JSON")
    .action((opts: { config?: string; dataDir?: string; json?: boolean }) => {
      try {
        const dataDir = resolveDataDir(opts, io.env);
        const now = Date.now();
        const info = new IdentityStore(dataDir).loadInfo();
        const status = readStatus(dataDir);
        const running = status !== undefined && status.state !== "stopped" && isProcessAlive(status.pid);
        const backlog = SqliteOutboxStore.peek(outboxPath(dataDir));
        const logBacklog = SqliteLogBuffer.peek(outboxPath(dataDir));
        const daysLeft = info ? Math.floor((Date.parse(info.notAfter) - now) / 86_400_000) : null;
        const report = {
          dataDir,
          identity: info
            ? { enrolled: true, uuid: info.uuid, serial: info.serial, notAfter: info.notAfter, daysLeft }
            : { enrolled: false },
          daemon: status
            ? {
                running,
                pid: status.pid,
                state: running ? status.state : "not running",
                since: status.since,
                updatedAt: status.updatedAt,
                ageMs: now - Date.parse(status.updatedAt),
                lastError: status.lastError,
                lastPublishAt: status.lastPublishAt,
                health: status.health ?? null,
              }
            : { running: false, state: "not running" },
          outbox: backlog
            ? { ...backlog, oldestAgeMs: backlog.oldestTs === null ? null : now - backlog.oldestTs }
            : { rows: 0, batches: 0, oldestTs: null, droppedTotal: 0, setAside: 0, oldestAgeMs: null },
          logs: logBacklog
            ? { ...logBacklog, oldestAgeMs: logBacklog.oldestTs === null ? null : now - logBacklog.oldestTs }
            : { lines: 0, oldestTs: null, droppedUnreported: 0, oldestAgeMs: null },
        };
        if (opts.json) {
          io.out(JSON.stringify(report));
          return;
        }
        io.out(`data dir     ${dataDir}`);
        if (info) {
          io.out(`identity     ${info.uuid} enrolled, certificate ${info.serial}`);
          io.out(`             valid until ${info.notAfter} (${daysLeft} days left)`);
        } else {
          io.out("identity     not enrolled (run `fieldgate-agent enroll` or start the daemon with a token)");
        }
        if (!status) io.out("daemon       not running (no status.json yet)");
        else if (!running)
          io.out(`daemon       not running (last state ${status.state}, ${age(status.updatedAt, now)})`);
        else
          io.out(`connection   ${status.state} since ${age(status.since, now)} (status ${age(status.updatedAt, now)})`);
        if (status?.lastError) {
          io.out(
            `last error   ${status.lastError.code}: ${visibleText(status.lastError.message)} (${age(status.lastError.at, now)})`,
          );
        }
        if (status) io.out(`last publish ${age(status.lastPublishAt, now)}`);
        if (status?.health) {
          const notOk = status.health.checks.filter((c) => c.status !== "ok");
          io.out(
            `health       ${status.health.status} (${age(status.health.at, now)}${running ? "" : ", last known"})`,
          );
          for (const c of notOk) io.out(visibleText(`             ${c.status.padEnd(8)} ${c.name}: ${c.message}`));
        }
        const oldest =
          report.outbox.oldestAgeMs === null ? "" : `, oldest ${formatDuration(report.outbox.oldestAgeMs)} old`;
        io.out(`outbox       ${report.outbox.rows} readings waiting in ${report.outbox.batches} sent batches${oldest}`);
        if (report.outbox.droppedTotal > 0)
          io.out(`             ${report.outbox.droppedTotal} readings dropped by the cap (OUTBOX_FULL)`);
        if (report.outbox.setAside > 0)
          io.out(`             ${report.outbox.setAside} batches set aside, refused by the cloud (BATCH_SET_ASIDE)`);
        const oldestLine =
          report.logs.oldestAgeMs === null ? "" : `, oldest ${formatDuration(report.logs.oldestAgeMs)} old`;
        io.out(`logs         ${report.logs.lines} lines waiting to be forwarded${oldestLine}`);
        if (report.logs.droppedUnreported > 0)
          io.out(`             ${report.logs.droppedUnreported} lines dropped, not yet reported to the cloud`);
      } catch (err) {
        fail(err);
      }
    });

  program
    .command("links")
    .description("list the device links: state, last reading, counters and last error (asks the running daemon)")
    .option("-c, --config <file>", "config file (to find the local API socket)", configFlag)
    .option(
      "--data-dir <dir>",
      `data directory, for <dir>/agent.sock (default ${DEFAULT_DATA_DIR})`,
      dirFlag("--data-dir"),
    )
    .option("--json", "print as JSON")
    .action(async (opts: { config?: string; dataDir?: string; json?: boolean }) => {
      try {
        const socket = resolveSocket(opts, io.env);
        let links: LinkView[];
        try {
          links = (await getFromLocalApi<{ links: LinkView[] }>(socket, "/v1/links")).links;
        } catch (err) {
          throw new FieldgateError(
            "LINK_AGENT_UNREACHABLE",
            `cannot reach the agent on ${socket} (${(err as { code?: string }).code ?? (err as Error).message}); is the daemon running?`,
          );
        }
        if (opts.json) {
          io.out(JSON.stringify({ links }));
          return;
        }
        if (links.length === 0) {
          io.out("no links configured (see docs/links.md)");
          return;
        }
        const now = io.now?.() ?? Date.now();
        for (const l of links) io.out(linkText(l, now));
      } catch (err) {
        fail(err);
      }
    });

  program
    .command("doctor")
    .description("diagnose this gateway: config, network, TLS, clock, registration, certificate, broker, disk")
    .option("-c, --config <file>", `config file (default $FIELDGATE_AGENT_CONFIG or ${DEFAULT_CONFIG})`, configFlag)
    .option("--json", "print the results as JSON")
    .action(async (opts: { config?: string; json?: boolean }) => {
      const configFile = opts.config ?? io.env.FIELDGATE_AGENT_CONFIG ?? DEFAULT_CONFIG;
      const results = await new Doctor({ configFile, env: io.env, ...(io.now && { now: io.now }) }).run();
      if (opts.json) io.out(JSON.stringify({ ok: results.every((r) => r.status !== "fail"), results }, null, 2));
      else {
        const width = Math.max(...results.map((r) => r.check.length));
        for (const r of results) {
          io.out(
            `${r.status.toUpperCase().padEnd(7)} ${r.check.padEnd(width)}  ${r.code ? `${r.code}: ` : ""}${r.message}${r.fix ? `\n        ${" ".repeat(width)}  fix: ${r.fix}` : ""}`,
          );
        }
      }
      exitCode = results.some((r) => r.status === "fail") ? EXIT.failure : EXIT.ok;
    });

  program
    .command("reset")
    .description("factory reset of the operational identity (key, certificate); the factory key and outbox stay")
    .option("--yes", "confirm")
    .option("-c, --config <file>", "config file (to find the data directory)", configFlag)
    .option("--data-dir <dir>", `data directory (default ${DEFAULT_DATA_DIR})`, dirFlag("--data-dir"))
    .action((opts: { yes?: boolean; config?: string; dataDir?: string }) => {
      try {
        if (!opts.yes) {
          throw new FieldgateError(
            "VALIDATION_FAILED",
            "reset removes this device's key and certificate; it must enroll again. Pass --yes to confirm",
          );
        }
        const dataDir = resolveDataDir(opts, io.env, true);
        const removed = new IdentityStore(dataDir).reset();
        io.out(removed.length ? `removed ${removed.join(", ")}` : `no operational identity in ${dataDir}`);
        io.out("the factory key and the outbox were kept; the device enrolls again on the next daemon start");
        const status = readStatus(dataDir);
        if (status && status.state !== "stopped" && isProcessAlive(status.pid)) {
          io.err(`note: the daemon (pid ${status.pid}) still holds the old identity in memory; restart it`);
        }
      } catch (err) {
        fail(err);
      }
    });

  const factoryKey = program.command("factory-key").description("manage the factory identity key");
  factoryKey
    .command("generate")
    .description("create a P-256 factory key (mode 0600) and print its public key for registration")
    .requiredOption("--out <file>", "where to write the private key", pathFlag("--out"))
    .action((opts: { out: string }) => {
      try {
        const out = resolve(opts.out);
        if (statSync(out, { throwIfNoEntry: false })?.isDirectory()) {
          throw flagError("--out", opts.out, "the path of the new key file", "is a directory");
        }
        if (statSync(dirname(out), { throwIfNoEntry: false })?.isDirectory() !== true) {
          throw flagError(
            "--out",
            opts.out,
            "a file in an existing directory",
            "is in a directory that does not exist",
          );
        }
        const publicPem = generateFactoryKey(out);
        io.err(`wrote the factory private key to ${resolve(opts.out)} (mode 0600); register this public key:`);
        io.out(publicPem.trimEnd());
      } catch (err) {
        fail(err);
      }
    });

  return {
    program,
    run: async (argv: string[]) => {
      exitCode = EXIT.ok;
      try {
        await program.parseAsync(argv, { from: "user" });
      } catch (err) {
        if (err instanceof CommanderError) {
          const benign = ["commander.helpDisplayed", "commander.version"].includes(err.code);
          return benign ? EXIT.ok : EXIT.usage;
        }
        fail(err);
      }
      return exitCode;
    },
  };
}

/** The local API socket a command talks to: the config's, else `<data dir>/agent.sock`. */
function resolveSocket(opts: { config?: string; dataDir?: string }, env: NodeJS.ProcessEnv): string {
  const file = opts.dataDir ? undefined : (opts.config ?? env.FIELDGATE_AGENT_CONFIG);
  if (file) return loadConfigOf(opts, { file, env }).config.localApi.socket;
  return join(resolveDataDir(opts, env), "agent.sock");
}

/** One link for humans: a summary line, then its last reading, reason and last error. */
function linkText(l: LinkView, now: number): string {
  const ago = (ts: number) => `${formatDuration(now - ts)} ago`;
  const c = l.counters;
  const lines = [
    `${l.id}  ${l.type}  ${l.enabled ? l.state : "disabled"} since ${ago(l.since)}`,
    `  counters     readings ${c.readings}, framing errors ${c.framingErrors}, reconnects ${c.reconnects}, exceptions ${c.exceptions}, timeouts ${c.timeouts}`,
  ];
  if (l.reason) lines.push(`  reason       ${l.reason}`);
  if (l.lastReading) {
    const values = l.lastReading.readings
      .slice(0, 8)
      .map((r) => `${r.name}=${String(r.value)}${r.unit ? ` ${r.unit}` : ""}`)
      .join(", ");
    const more = l.lastReading.readings.length > 8 ? `, … (${l.lastReading.readings.length} in all)` : "";
    lines.push(`  last reading ${values}${more} (${ago(l.lastReading.ts)})`);
  } else lines.push("  last reading none yet");
  if (l.lastError) lines.push(`  last error   ${l.lastError.code}: ${l.lastError.message} (${ago(l.lastError.ts)})`);
  // Per line: names, units and messages come from devices and config; the line breaks are ours.
  return lines.map(visibleText).join("\n");
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new FieldgateError(
      "CONFIG_INVALID",
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      "cloud.caFile",
    );
  }
}

interface EnrollFlags {
  cloud: string;
  uuid?: string;
  token?: string;
  caFile?: string;
  dataDir?: string;
  config?: string;
  json?: boolean;
}

/**
 * The config file `enroll` writes, and it validated: the file's keys kept, with the flags' cloud
 * URL, CA file and data directory (absolute) and the uuid it enrolls — the flag's, else the file's,
 * else the stored identity's, else the machine id's. The token is used, never written.
 */
function enrollmentConfig(
  opts: EnrollFlags,
  configFile: string,
  env: NodeJS.ProcessEnv,
): { raw: Record<string, unknown>; config: AgentConfig } {
  const raw = readConfigFileForUpdate(configFile);
  const baseDir = dirname(configFile);
  const cloud: Record<string, unknown> = { ...(raw.cloud as Record<string, unknown> | undefined), url: opts.cloud };
  if (opts.caFile) cloud.caFile = resolve(opts.caFile);
  const fileDataDir = typeof raw.dataDir === "string" ? resolve(baseDir, raw.dataDir) : undefined;
  const dataDir = opts.dataDir ? resolve(opts.dataDir) : (fileDataDir ?? DEFAULT_DATA_DIR);
  const storedUuid = new IdentityStore(dataDir).loadInfo()?.uuid;
  const uuid = opts.uuid ?? (typeof raw.uuid === "string" ? raw.uuid : storedUuid);
  const updated: Record<string, unknown> = { ...raw, ...(uuid && { uuid }), dataDir, cloud };
  const enrollment = { ...(raw.enrollment as Record<string, unknown> | undefined) };
  if (opts.token) enrollment.token = opts.token;
  let config: AgentConfig;
  try {
    config = loadConfig({ raw: { ...updated, enrollment }, baseDir, env, replacingIdentity: true }).config;
  } catch (err) {
    throw onFlags(err, {
      uuid: opts.uuid && "--uuid",
      "cloud.url": "--cloud",
      "cloud.caFile": opts.caFile && "--ca-file",
      dataDir: opts.dataDir && "--data-dir",
      "enrollment.token": opts.token && "--token",
    });
  }
  // What `run` needs, as loaded (environment overrides included), so `run` finds the same device.
  return {
    raw: {
      ...updated,
      uuid: config.uuid,
      dataDir: config.dataDir,
      cloud: { ...cloud, url: config.cloud.url, ...(config.cloud.caFile && { caFile: config.cloud.caFile }) },
    },
    config,
  };
}

/** The config without the token just spent: a used token is useless, and a secret in a file. */
function withoutToken(raw: Record<string, unknown>, token: string | undefined): Record<string, unknown> {
  const enrollment = { ...(raw.enrollment as Record<string, unknown> | undefined) };
  if (enrollment.token === token) delete enrollment.token;
  const { enrollment: _, ...rest } = raw;
  return Object.keys(enrollment).length > 0 ? { ...rest, enrollment } : rest;
}

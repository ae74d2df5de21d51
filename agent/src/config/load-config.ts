import { readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { checkLinks, FieldgateError, type LinkConfig, parseDuration, SchemaValidator } from "@fieldgate/shared";
import type { TSchema } from "@sinclair/typebox";
import { IdentityStore } from "../identity/identity-store.js";
import { parseConfirmGate } from "../update/confirm-gate.js";
import { parseByteRate } from "../update/token-bucket.js";
import { type AgentConfig, AgentConfigFile, type UpdateInstallerConfig } from "./config-schema.js";
import { deriveDeviceUuid } from "./device-uuid.js";
import { jsonSyntaxError } from "./json-position.js";
import { checkKeyFiles } from "./key-files.js";

/** Prefix of every environment override; `FIELDGATE_AGENT_CONFIG` is reserved for the config file path. */
export const ENV_PREFIX = "FIELDGATE_AGENT_";

export interface LoadConfigOptions {
  /** Path of the JSON file; relative paths inside it resolve against its directory. */
  file?: string;
  /** Raw config object instead of a file (tests, `enroll`). */
  raw?: unknown;
  /** With `raw`: the directory its relative paths mean (the file it came from); default the cwd. */
  baseDir?: string;
  env?: NodeJS.ProcessEnv;
  /** Where to read the machine id when `uuid` is absent and no identity is stored. */
  machineIdFile?: string;
  /**
   * `enroll` is about to replace the stored identity: its uuid does not bind the config and its
   * files are not checked. Otherwise a stored identity's uuid is the device's uuid.
   */
  replacingIdentity?: boolean;
  /** The clock certificates are checked against; injected by tests. */
  now?: () => number;
}

/** One thing wrong in a configuration: the key and what is wrong with it, with the fix. */
export interface ConfigProblem {
  field: string;
  message: string;
}

/**
 * `CONFIG_INVALID` with every problem found, so an operator fixes a file in one go. With one
 * problem it reads like any other config error (`<field>: <message>`).
 */
export class ConfigInvalidError extends FieldgateError {
  constructor(
    readonly problems: readonly ConfigProblem[],
    source: string,
  ) {
    const [first] = problems;
    super(
      "CONFIG_INVALID",
      problems.length === 1 && first
        ? first.message
        : `${problems.length} problems in ${source}:\n${problems.map((p) => `  ${p.field || "(file)"}: ${p.message}`).join("\n")}`,
      problems.length === 1 ? first?.field : undefined,
    );
  }
}

/** How to get a config file when there is none: enroll writes one; the example shows every key. */
export function howToCreateConfig(file: string): string {
  return `create it with \`fieldgate-agent enroll --cloud <url> --token <token> --ca-file <ca.crt> --config ${file}\` (enroll writes it), or start from docs/examples/agent.json`;
}

export interface LoadedConfig {
  config: AgentConfig;
  /** Non-fatal remarks, e.g. unknown `FIELDGATE_AGENT_*` variables. */
  warnings: string[];
}

/**
 * Maps a config path to its environment variable: segments upper-cased and joined by `_`,
 * camelCase split at each capital. `cloud.url` → `FIELDGATE_AGENT_CLOUD_URL`,
 * `telemetry.batchMax` → `FIELDGATE_AGENT_TELEMETRY_BATCH_MAX`.
 */
export function envNameForPath(path: readonly string[]): string {
  return ENV_PREFIX + path.map((seg) => seg.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()).join("_");
}

interface Leaf {
  path: string[];
  schema: TSchema;
}

function leaves(schema: TSchema, prefix: string[] = []): Leaf[] {
  const props = (schema as { properties?: Record<string, TSchema> }).properties;
  if (schema.type === "object" && props) {
    return Object.entries(props).flatMap(([k, s]) => leaves(s, [...prefix, k]));
  }
  return [{ path: prefix, schema }];
}

const CONFIG_LEAVES = leaves(AgentConfigFile);

/** Every environment variable the agent reads, with the config path it overrides. */
export function envOverrideTable(): { env: string; path: string }[] {
  return CONFIG_LEAVES.map((l) => ({ env: envNameForPath(l.path), path: l.path.join(".") }));
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function fillDefaults(schema: TSchema, value: unknown): unknown {
  const props = (schema as { properties?: Record<string, TSchema> }).properties;
  if (schema.type !== "object" || !props) return value === undefined ? structuredClone(schema.default) : value;
  const v = value === undefined ? {} : value;
  if (!isObj(v)) return v;
  for (const [k, s] of Object.entries(props)) {
    const filled = fillDefaults(s, v[k]);
    if (filled !== undefined) v[k] = filled;
  }
  return v;
}

function setPath(target: Obj, path: readonly string[], value: unknown): void {
  let cur: Obj = target;
  for (const seg of path.slice(0, -1)) {
    const next = cur[seg];
    if (!isObj(next)) cur[seg] = {};
    cur = cur[seg] as Obj;
  }
  cur[path[path.length - 1] as string] = value;
}

function getPath(target: unknown, path: readonly string[]): unknown {
  let cur = target;
  for (const seg of path) cur = isObj(cur) ? cur[seg] : undefined;
  return cur;
}

function coerceEnv(schema: TSchema, text: string): unknown {
  if ((schema.type === "integer" || schema.type === "number") && /^-?\d+(\.\d+)?$/.test(text.trim())) {
    return Number(text);
  }
  if (schema.type === "boolean" && /^(true|false)$/i.test(text.trim())) return text.trim().toLowerCase() === "true";
  // Lists of objects (links) come as JSON from the environment.
  if (schema.type === "array" && text.trim().startsWith("[")) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  // Lists (logs.files) come comma-separated from the environment.
  if (schema.type === "array")
    return text
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  return text;
}

function invalid(field: string, message: string): FieldgateError {
  return new FieldgateError("CONFIG_INVALID", message, field);
}

function describeValue(v: unknown): string {
  const text = JSON.stringify(v);
  return text === undefined ? String(v) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const validator = new SchemaValidator();

/**
 * Reads, merges (defaults ← file ← environment), validates once and deep-freezes the configuration.
 * Throws `FieldgateError("CONFIG_INVALID", message, field)` naming the key, the value and what was expected.
 */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const warnings: string[] = [];
  let raw: unknown = options.raw ?? {};
  let baseDir = options.baseDir ?? process.cwd();
  if (options.file) {
    baseDir = dirname(resolve(options.file));
    let text: string;
    try {
      text = readFileSync(options.file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") {
        throw invalid(
          "",
          `cannot read config file ${options.file}: it does not exist; ${howToCreateConfig(options.file)}`,
        );
      }
      const reason = code === "EISDIR" ? "it is a directory, not a file" : (err as Error).message;
      throw invalid("", `cannot read config file ${options.file}: ${reason}`);
    }
    raw = parseConfigText(text, options.file);
  }
  if (!isObj(raw)) throw invalid("", "the configuration must be a JSON object");
  const merged = structuredClone(raw);

  // Relative paths in the file mean "next to the file"; paths from the environment mean "from the cwd".
  for (const p of [
    ["dataDir"],
    ["cloud", "caFile"],
    ["enrollment", "factoryKeyFile"],
    ["localApi", "socket"],
    ["updates", "publicKeyFile"],
    ["updates", "installer", "root"],
  ]) {
    const v = getPath(merged, p);
    if (typeof v === "string" && v.length > 0) setPath(merged, p, resolve(baseDir, v));
  }

  const fromEnv = new Map<string, string>();
  const known = new Set<string>([`${ENV_PREFIX}CONFIG`]);
  for (const leaf of CONFIG_LEAVES) {
    const name = envNameForPath(leaf.path);
    known.add(name);
    const text = env[name];
    if (text === undefined || text === "") continue;
    let value = coerceEnv(leaf.schema, text);
    if (
      ["dataDir", "cloud.caFile", "enrollment.factoryKeyFile", "localApi.socket", "updates.publicKeyFile"].includes(
        leaf.path.join("."),
      )
    ) {
      value = resolve(text);
    }
    setPath(merged, leaf.path, value);
    fromEnv.set(leaf.path.join("."), name);
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith(ENV_PREFIX) && !known.has(name)) warnings.push(`ignoring unknown environment variable ${name}`);
  }

  fillDefaults(AgentConfigFile, merged);
  const sourceName = options.file ?? "the configuration";
  // Links are checked item by item against their own type first, so an error names the right field.
  const fromSource = (field: string) => (fromEnv.has(field) ? ` (from ${fromEnv.get(field)})` : "");
  const schemaProblems: ConfigProblem[] = [];
  let links: LinkConfig[] = [];
  try {
    links = checkLinks(merged.links, "links", "CONFIG_INVALID");
  } catch (err) {
    if (!(err instanceof FieldgateError)) throw err;
    const field = err.field ?? "links";
    // Phrased "<field> <reason>" like the validator's; the field is printed separately.
    const message = err.message.startsWith(`${field} `) ? err.message.slice(field.length + 1) : err.message;
    schemaProblems.push({ field, message });
  }
  // With a bad link reported above, the rest of the file is still checked, without the links.
  const checked = schemaProblems.length > 0 ? { ...merged, links: [] } : merged;
  for (const { field = "", message } of validator.problems(AgentConfigFile, checked)) {
    // The shared validator phrases it as "<field> <reason>"; the CLI prints the field separately.
    const reason = field && message.startsWith(`${field} `) ? message.slice(field.length + 1) : message;
    const value = getPath(merged, field.replace(/\[(\d+)\]/g, ".$1").split("."));
    const got = value === undefined || reason === "is not an allowed property" ? "" : `, got ${describeValue(value)}`;
    schemaProblems.push({ field, message: `${reason}${got}${fromSource(field)}` });
  }
  if (schemaProblems.length > 0) throw new ConfigInvalidError(schemaProblems, sourceName);
  const file = merged as AgentConfigFile;

  // Past the schema, every problem is collected and reported together.
  const problems: ConfigProblem[] = [];
  const problem = (field: string, message: string) => problems.push({ field, message });
  const duration = (field: string, text: string): number => {
    const ms = parseDuration(text);
    if (ms === undefined || ms <= 0) {
      problem(
        field,
        `must be a positive duration such as 10s, 1m or 250ms, got ${describeValue(text)}${fromSource(field)}`,
      );
      return Number.NaN; // compares false with everything, so no second complaint follows from it
    }
    return ms;
  };

  const retryMinMs = duration("enrollment.retryMin", file.enrollment.retryMin);
  const retryMaxMs = duration("enrollment.retryMax", file.enrollment.retryMax);
  if (retryMaxMs < retryMinMs) problem("enrollment.retryMax", "must not be shorter than enrollment.retryMin");
  const reconnectMinMs = duration("mqtt.reconnectMin", file.mqtt.reconnectMin);
  const reconnectMaxMs = duration("mqtt.reconnectMax", file.mqtt.reconnectMax);
  if (reconnectMaxMs < reconnectMinMs) problem("mqtt.reconnectMax", "must not be shorter than mqtt.reconnectMin");
  const keepaliveMs = duration("mqtt.keepalive", file.mqtt.keepalive);
  if (keepaliveMs > 65_535_000) problem("mqtt.keepalive", "must be at most 65535s (MQTT 3.1.1 limit)");

  const h = file.health;
  const outboxRowsCrit = h.outboxRowsCrit ?? Math.max(1, Math.floor(file.outbox.maxRows * 0.9));
  const healthThresholds = {
    diskFreeWarnPct: h.diskFreeWarnPct,
    diskFreeCritPct: h.diskFreeCritPct,
    memoryUsedWarnPct: h.memoryUsedWarnPct,
    memoryUsedCritPct: h.memoryUsedCritPct,
    loadPerCoreWarn: h.loadPerCoreWarn,
    loadPerCoreCrit: h.loadPerCoreCrit,
    clockSkewWarnS: h.clockSkewWarnS,
    clockSkewCritS: h.clockSkewCritS,
    certDaysWarn: h.certDaysWarn,
    certDaysCrit: h.certDaysCrit,
    // With a small outbox cap the default warning level would sit above the derived critical one.
    outboxRowsWarn: h.outboxRowsCrit === undefined ? Math.min(h.outboxRowsWarn, outboxRowsCrit) : h.outboxRowsWarn,
    outboxRowsCrit,
    outboxAgeWarnMs: duration("health.outboxAgeWarn", h.outboxAgeWarn),
    outboxAgeCritMs: duration("health.outboxAgeCrit", h.outboxAgeCrit),
  };
  // A warning threshold past its critical one would skip straight to red; name the pair instead.
  for (const [warn, crit, lowIsBad] of [
    ["diskFreeWarnPct", "diskFreeCritPct", true],
    ["memoryUsedWarnPct", "memoryUsedCritPct", false],
    ["loadPerCoreWarn", "loadPerCoreCrit", false],
    ["clockSkewWarnS", "clockSkewCritS", false],
    ["certDaysWarn", "certDaysCrit", true],
    ["outboxRowsWarn", "outboxRowsCrit", false],
    ["outboxAgeWarnMs", "outboxAgeCritMs", false],
  ] as const) {
    const w = healthThresholds[warn];
    const c = healthThresholds[crit];
    const key = (k: string) => `health.${k.replace(/Ms$/, "")}`;
    if (lowIsBad ? w < c : w > c) {
      problem(key(warn), `must be ${lowIsBad ? "at least" : "at most"} ${key(crit)} (${c}), got ${w}`);
    }
  }
  const commandNames = new Set<string>();
  const healthCommands = h.commands.map((c, i) => {
    if (commandNames.has(c.name)) problem(`health.commands[${i}].name`, `${JSON.stringify(c.name)} is used twice`);
    commandNames.add(c.name);
    return {
      name: c.name,
      command: [...c.command],
      intervalMs: duration(`health.commands[${i}].interval`, c.interval ?? "1m"),
      timeoutMs: duration(`health.commands[${i}].timeout`, c.timeout ?? "10s"),
    };
  });

  const installer = updateInstaller(file.updates.installer, duration);
  let downloadRateLimit: number | undefined;
  if (file.updates.downloadRateLimit !== undefined) {
    downloadRateLimit = parseByteRate(file.updates.downloadRateLimit);
    if (downloadRateLimit === undefined) {
      const field = "updates.downloadRateLimit";
      problem(
        field,
        `must be a rate such as 512KiB/s, 2MB/s or 100000B/s, got ${describeValue(file.updates.downloadRateLimit)}${fromSource(field)}`,
      );
    }
  }
  const startJitterMs = parseDuration(file.updates.startJitter) ?? Number.NaN;
  if (!(startJitterMs >= 0)) {
    problem(
      "updates.startJitter",
      `must be a duration such as 0s, 30s or 5m, got ${describeValue(file.updates.startJitter)}${fromSource("updates.startJitter")}`,
    );
  }

  // A bad gate is one more problem of the file, reported with the others.
  const gateField = (index: number | undefined) =>
    index === undefined ? "updates.confirmGate" : `updates.confirmGate[${index}]`;
  let confirmGate: ReturnType<typeof parseConfirmGate> = "all";
  try {
    confirmGate = parseConfirmGate(
      file.updates.confirmGate,
      (index, message) => invalid(gateField(index), `${message}${fromSource("updates.confirmGate")}`),
      fromEnv.has("updates.confirmGate"),
    );
  } catch (err) {
    if (!(err instanceof FieldgateError)) throw err;
    problem(err.field ?? "updates.confirmGate", err.message);
  }

  const now = options.now?.() ?? Date.now();
  if (statSync(file.dataDir, { throwIfNoEntry: false })?.isDirectory() === false) {
    problem("dataDir", `${file.dataDir} exists and is not a directory; point dataDir at a directory`);
  }
  const keyFiles = checkKeyFiles(
    {
      caFile: file.cloud.caFile,
      factoryKeyFile: file.enrollment.factoryKeyFile,
      publicKeyFile: file.updates.publicKeyFile,
      // `enroll` replaces the stored identity, so a broken one must not stop it.
      dataDir: options.replacingIdentity ? "" : file.dataDir,
    },
    now,
  );
  problems.push(...keyFiles.errors);
  warnings.push(...keyFiles.warnings);
  const uuid = deviceUuid(file, options, problems);

  const config: AgentConfig = {
    uuid,
    dataDir: file.dataDir,
    cloud: {
      url: file.cloud.url.replace(/\/+$/, ""),
      ...(file.cloud.caFile !== undefined && { caFile: file.cloud.caFile }),
      ...(file.cloud.mqttUrl !== undefined && { mqttUrl: file.cloud.mqttUrl }),
    },
    enrollment: {
      ...(file.enrollment.token !== undefined && { token: file.enrollment.token }),
      ...(file.enrollment.factoryKeyFile !== undefined && { factoryKeyFile: file.enrollment.factoryKeyFile }),
      retryMinMs,
      retryMaxMs,
    },
    telemetry: {
      sampleIntervalMs: duration("telemetry.sampleInterval", file.telemetry.sampleInterval),
      batchMax: file.telemetry.batchMax,
      publishIntervalMs: duration("telemetry.publishInterval", file.telemetry.publishInterval),
      maxInFlight: file.telemetry.maxInFlight,
      syntheticRate: file.telemetry.syntheticRate,
    },
    outbox: { maxRows: file.outbox.maxRows, policy: file.outbox.policy, maxSendAttempts: file.outbox.maxSendAttempts },
    updates: {
      enabled: file.updates.enabled,
      ...(file.updates.publicKeyFile !== undefined && { publicKeyFile: file.updates.publicKeyFile }),
      ...(installer !== undefined && { installer }),
      confirmDeadlineMs: duration("updates.confirmDeadline", file.updates.confirmDeadline),
      ...(file.updates.confirmCommand !== undefined && { confirmCommand: [...file.updates.confirmCommand] }),
      confirmGate,
      confirmRequiresCloud: file.updates.confirmRequiresCloud,
      jobTimeoutMs: duration("updates.jobTimeout", file.updates.jobTimeout),
      ...(downloadRateLimit !== undefined && { downloadRateLimit }),
      startJitterMs,
    },
    health: {
      reportIntervalMs: duration("health.reportInterval", h.reportInterval),
      checkIntervalMs: duration("health.checkInterval", h.checkInterval),
      clockSkewIntervalMs: duration("health.clockSkewInterval", h.clockSkewInterval),
      thresholds: healthThresholds,
      commands: healthCommands,
    },
    localApi: {
      enabled: file.localApi.enabled,
      socket: file.localApi.socket ?? join(file.dataDir, "agent.sock"),
      ...(file.localApi.port !== undefined && { port: file.localApi.port }),
    },
    mqtt: { keepaliveS: Math.max(1, Math.round(keepaliveMs / 1000)), reconnectMinMs, reconnectMaxMs },
    log: { level: file.log.level, format: file.log.format },
    logs: {
      forwardLevel: file.logs.forwardLevel as AgentConfig["logs"]["forwardLevel"],
      batchMax: file.logs.batchMax,
      flushIntervalMs: duration("logs.flushInterval", file.logs.flushInterval),
      maxLinesPerSecond: file.logs.maxLinesPerSecond,
      bufferMax: file.logs.bufferMax,
      files: file.logs.files.map((f) => resolve(baseDir, f)),
      journal: file.logs.journal,
    },
    links,
    linkPaths: file.linkPaths,
  };
  // Durations inside the object above report their problems too, so this comes last.
  if (problems.length > 0) throw new ConfigInvalidError(problems, sourceName);
  return { config: deepFreeze(config), warnings };
}

/**
 * The device's uuid: the configured one, else the stored identity's (it is what the cloud knows
 * the device by), else derived from the machine id. A configured uuid that contradicts the stored
 * identity is a problem: the agent would enroll again under a uuid nobody registered.
 */
function deviceUuid(file: AgentConfigFile, options: LoadConfigOptions, problems: ConfigProblem[]): string {
  const configured = file.uuid?.toLowerCase();
  const stored = options.replacingIdentity
    ? undefined
    : new IdentityStore(file.dataDir).loadInfo()?.uuid?.toLowerCase();
  if (configured && stored && configured !== stored) {
    problems.push({
      field: "uuid",
      message: `is ${configured}, but the identity stored in ${file.dataDir} is for ${stored}; set uuid to ${stored} (or remove it), or run \`fieldgate-agent reset --yes\` and enroll again as ${configured}`,
    });
  }
  if (configured) return configured;
  if (stored) return stored;
  try {
    return deriveDeviceUuid(options.machineIdFile).toLowerCase();
  } catch (err) {
    if (!(err instanceof FieldgateError)) throw err;
    problems.push({ field: err.field ?? "uuid", message: err.message });
    return "";
  }
}

/** The file's JSON, or `CONFIG_INVALID` with the line and column of the first syntax error. */
export function parseConfigText(text: string, file: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text; // a byte order mark, as some editors write
  try {
    return JSON.parse(body);
  } catch {
    const at = jsonSyntaxError(body);
    throw invalid("", `config file ${file} is not valid JSON: line ${at.line}, column ${at.column}: ${at.message}`);
  }
}

/** `updates.installer` resolved: durations in ms, defaults filled, the pairs a reboot needs checked. */
function updateInstaller(
  inst: AgentConfigFile["updates"]["installer"],
  duration: (field: string, text: string) => number,
): UpdateInstallerConfig | undefined {
  if (inst === undefined) return undefined;
  if (inst.type === "ab-slots") return { type: "ab-slots", root: inst.root };
  if (inst.type === "agent") return { type: "agent", root: inst.root, maxBoots: inst.maxBoots ?? 3 };
  const activation = inst.activation ?? "none";
  if (activation === "reboot") {
    // Without them the agent could neither restart the device nor tell which version came back.
    for (const key of ["rebootCommand", "versionCommand"] as const) {
      if (inst[key] === undefined) {
        throw invalid(`updates.installer.${key}`, `is required with updates.installer.activation "reboot"`);
      }
    }
  }
  return {
    type: "script",
    command: [...inst.command],
    timeoutMs: duration("updates.installer.timeout", inst.timeout ?? "10m"),
    activation,
    ...(inst.rebootCommand !== undefined && { rebootCommand: [...inst.rebootCommand] }),
    ...(inst.versionCommand !== undefined && { versionCommand: [...inst.versionCommand] }),
  };
}

/** Freezes an object graph so no capability can change configuration after validation. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

import { LinkConfig, LOG_FORMATS, type LogLevelName, MAX_LINKS, UUID_PATTERN } from "@fieldgate/shared";
import { type Static, Type } from "@sinclair/typebox";
import { DEFAULT_LINK_PATHS } from "../links/serial/link-paths.js";

const Duration = (def: string) =>
  Type.String({ minLength: 1, default: def, description: "duration such as 10s, 1m30s or 250ms" });

/** The agent's configuration file, as written by the operator (durations are strings). */
export const AgentConfigFile = Type.Object(
  {
    uuid: Type.Optional(Type.String({ pattern: UUID_PATTERN, description: "device uuid (8-4-4-4-12 hex)" })),
    dataDir: Type.String({ minLength: 1, default: "/var/lib/fieldgate" }),
    cloud: Type.Object(
      {
        url: Type.String({ pattern: "^https://[^\\s/]+", description: "https URL of the cloud API" }),
        caFile: Type.Optional(Type.String({ minLength: 1 })),
        mqttUrl: Type.Optional(Type.String({ pattern: "^mqtts://[^\\s/]+", description: "mqtts:// URL" })),
      },
      { additionalProperties: false },
    ),
    enrollment: Type.Object(
      {
        token: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
        factoryKeyFile: Type.Optional(Type.String({ minLength: 1 })),
        retryMin: Duration("1s"),
        retryMax: Duration("30s"),
      },
      { additionalProperties: false },
    ),
    telemetry: Type.Object(
      {
        sampleInterval: Duration("10s"),
        batchMax: Type.Integer({ minimum: 1, maximum: 10_000, default: 500 }),
        publishInterval: Duration("1s"),
        maxInFlight: Type.Integer({ minimum: 1, maximum: 1000, default: 8 }),
        syntheticRate: Type.Number({ minimum: 0, maximum: 10_000, default: 0 }),
      },
      { additionalProperties: false },
    ),
    outbox: Type.Object(
      {
        maxRows: Type.Integer({ minimum: 1, default: 1_000_000 }),
        policy: Type.Literal("drop-oldest", { default: "drop-oldest" }),
        // A batch sent this often without a PUBACK is set aside (issue #12), so it cannot stall the rest.
        maxSendAttempts: Type.Integer({ minimum: 1, maximum: 1000, default: 10 }),
      },
      { additionalProperties: false },
    ),
    // Firmware updates (issue #5) run only where this says so; `doctor` reports it.
    updates: Type.Object(
      {
        enabled: Type.Boolean({ default: false }),
        // A firmware public key (PEM) trusted besides the one learned at enrollment.
        publicKeyFile: Type.Optional(Type.String({ minLength: 1 })),
        // How an image is put in place (docs/updates.md); without one, jobs fail at INSTALLING.
        installer: Type.Optional(
          Type.Union([
            Type.Object(
              {
                type: Type.Literal("script"),
                command: Type.Array(Type.String({ minLength: 1 }), {
                  minItems: 1,
                  description: "argv, run without a shell; {image} becomes the image path",
                }),
                // Optional, not defaulted: defaults are not filled inside a union.
                timeout: Type.Optional(Type.String({ minLength: 1, description: "duration, default 10m" })),
                // "reboot": after CONFIRMING is persisted the agent runs rebootCommand and confirms
                // after the device comes back, if versionCommand then prints the new version.
                activation: Type.Optional(Type.Union([Type.Literal("none"), Type.Literal("reboot")])),
                rebootCommand: Type.Optional(
                  Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: "argv, run without a shell" }),
                ),
                versionCommand: Type.Optional(
                  Type.Array(Type.String({ minLength: 1 }), {
                    minItems: 1,
                    description: "argv printing the running firmware version",
                  }),
                ),
              },
              { additionalProperties: false },
            ),
            Type.Object(
              { type: Type.Literal("ab-slots"), root: Type.String({ minLength: 1 }) },
              { additionalProperties: false },
            ),
            // The agent updates itself: two install slots under root, run through root/launcher.mjs.
            Type.Object(
              {
                type: Type.Literal("agent"),
                root: Type.String({ minLength: 1 }),
                maxBoots: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: "default 3" })),
              },
              { additionalProperties: false },
            ),
          ]),
        ),
        confirmDeadline: Duration("5m"),
        // Which health checks hold back the confirmation (docs/updates.md#the-confirmation-gate).
        confirmGate: Type.Optional(
          Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String(), { minItems: 1, maxItems: 64 })], {
            description: '"device" (default), "all", or a list of check names, prefixes ending in * and @kinds',
          }),
        ),
        // Confirm only once the cloud acknowledged a report sent after the activation.
        confirmRequiresCloud: Type.Boolean({ default: true }),
        confirmCommand: Type.Optional(
          Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: "argv, run without a shell" }),
        ),
        jobTimeout: Duration("60m"),
        // Bytes per second for image downloads, such as 512KiB/s or 2MB/s; none means unlimited.
        downloadRateLimit: Type.Optional(Type.String({ minLength: 1, description: "rate such as 512KiB/s" })),
        // A random delay in [0, startJitter) before a download starts, so a fleet spreads out.
        startJitter: Type.String({ minLength: 1, default: "0s", description: "duration such as 30s or 0s" }),
      },
      { additionalProperties: false, default: {} },
    ),
    health: Type.Object(
      {
        reportInterval: Duration("5m"),
        checkInterval: Duration("30s"),
        clockSkewInterval: Duration("10m"),
        diskFreeWarnPct: Type.Number({ minimum: 0, maximum: 100, default: 15 }),
        diskFreeCritPct: Type.Number({ minimum: 0, maximum: 100, default: 5 }),
        memoryUsedWarnPct: Type.Number({ minimum: 0, maximum: 100, default: 90 }),
        memoryUsedCritPct: Type.Number({ minimum: 0, maximum: 100, default: 97 }),
        loadPerCoreWarn: Type.Number({ minimum: 0, default: 2 }),
        loadPerCoreCrit: Type.Number({ minimum: 0, default: 4 }),
        clockSkewWarnS: Type.Number({ minimum: 0, default: 60 }),
        clockSkewCritS: Type.Number({ minimum: 0, default: 300, description: "5 min: where certificates fail" }),
        certDaysWarn: Type.Number({ minimum: 0, default: 14 }),
        certDaysCrit: Type.Number({ minimum: 0, default: 3 }),
        outboxRowsWarn: Type.Integer({ minimum: 1, default: 100_000 }),
        outboxRowsCrit: Type.Optional(Type.Integer({ minimum: 1, description: "default: 90 % of outbox.maxRows" })),
        outboxAgeWarn: Duration("1h"),
        outboxAgeCrit: Duration("24h"),
        commands: Type.Array(
          Type.Object(
            {
              name: Type.String({ pattern: "^[A-Za-z0-9_.-]{1,64}$", description: "check name (A-Z a-z 0-9 _ . -)" }),
              command: Type.Array(Type.String({ minLength: 1 }), {
                minItems: 1,
                description: "argv, run without a shell",
              }),
              interval: Type.Optional(Type.String({ minLength: 1, description: "duration, default 1m" })),
              timeout: Type.Optional(Type.String({ minLength: 1, description: "duration, default 10s" })),
            },
            { additionalProperties: false },
          ),
          { default: [], maxItems: 64 },
        ),
      },
      { additionalProperties: false },
    ),
    localApi: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        socket: Type.Optional(
          Type.String({ minLength: 1, description: "Unix socket path, default <dataDir>/agent.sock" }),
        ),
        port: Type.Optional(
          Type.Integer({ minimum: 0, maximum: 65_535, description: "also listen on 127.0.0.1:port" }),
        ),
      },
      { additionalProperties: false },
    ),
    mqtt: Type.Object(
      {
        keepalive: Duration("30s"),
        reconnectMin: Duration("1s"),
        reconnectMax: Duration("30s"),
      },
      { additionalProperties: false },
    ),
    log: Type.Object(
      {
        level: Type.Union(
          ["trace", "debug", "info", "warn", "error", "fatal", "silent"].map((l) => Type.Literal(l)),
          { default: "info" },
        ),
        // auto: human-readable lines when stdout is a terminal, JSON lines otherwise.
        format: Type.Union(
          LOG_FORMATS.map((f) => Type.Literal(f)),
          { default: "auto" },
        ),
      },
      { additionalProperties: false },
    ),
    logs: Type.Object(
      {
        forwardLevel: Type.Union(
          ["trace", "debug", "info", "warn", "error", "fatal"].map((l) => Type.Literal(l)),
          { default: "info", description: "lowest level forwarded to the cloud" },
        ),
        batchMax: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        flushInterval: Duration("2s"),
        maxLinesPerSecond: Type.Integer({ minimum: 1, maximum: 10_000, default: 50 }),
        bufferMax: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 5000 }),
        files: Type.Array(Type.String({ minLength: 1 }), { default: [], maxItems: 32 }),
        journal: Type.Boolean({ default: false }),
      },
      { additionalProperties: false },
    ),
    // Device links (issue #6, docs/links.md); a desired config from the cloud with `links` replaces these.
    links: Type.Array(LinkConfig, {
      default: [],
      maxItems: MAX_LINKS,
      description: "device links (serial, ble); ids must be unique",
    }),
    // Set on the gateway only (never by the cloud): the paths a serial link may open (docs/links.md).
    linkPaths: Type.Array(Type.String({ pattern: "^/", minLength: 2, maxLength: 4096 }), {
      default: [...DEFAULT_LINK_PATHS],
      maxItems: 64,
      description: "absolute path patterns serial links may open; * matches within one path segment",
    }),
  },
  { additionalProperties: false },
);
export type AgentConfigFile = Static<typeof AgentConfigFile>;

export type LogLevel = AgentConfigFile["log"]["level"];
export type LogFormatName = AgentConfigFile["log"]["format"];

/** The validated, resolved configuration: paths absolute, durations in milliseconds, deeply frozen. */
export interface AgentConfig {
  readonly uuid: string;
  readonly dataDir: string;
  readonly cloud: { readonly url: string; readonly caFile?: string; readonly mqttUrl?: string };
  readonly enrollment: {
    readonly token?: string;
    readonly factoryKeyFile?: string;
    readonly retryMinMs: number;
    readonly retryMaxMs: number;
  };
  readonly telemetry: {
    readonly sampleIntervalMs: number;
    readonly batchMax: number;
    readonly publishIntervalMs: number;
    readonly maxInFlight: number;
    readonly syntheticRate: number;
  };
  readonly outbox: { readonly maxRows: number; readonly policy: "drop-oldest"; readonly maxSendAttempts: number };
  readonly updates: {
    readonly enabled: boolean;
    readonly publicKeyFile?: string;
    readonly installer?: UpdateInstallerConfig;
    readonly confirmDeadlineMs: number;
    readonly confirmCommand?: readonly string[];
    /** `"all"` (every check must be ok) or the selectors of the gate checks; `"device"` is resolved to its selectors. */
    readonly confirmGate: "all" | readonly string[];
    readonly confirmRequiresCloud: boolean;
    readonly jobTimeoutMs: number;
    /** Bytes per second; absent means unlimited. */
    readonly downloadRateLimit?: number;
    readonly startJitterMs: number;
  };
  readonly health: {
    readonly reportIntervalMs: number;
    readonly checkIntervalMs: number;
    readonly clockSkewIntervalMs: number;
    readonly thresholds: HealthThresholds;
    readonly commands: readonly {
      readonly name: string;
      readonly command: readonly string[];
      readonly intervalMs: number;
      readonly timeoutMs: number;
    }[];
  };
  readonly localApi: { readonly enabled: boolean; readonly socket: string; readonly port?: number };
  readonly mqtt: { readonly keepaliveS: number; readonly reconnectMinMs: number; readonly reconnectMaxMs: number };
  readonly log: { readonly level: LogLevel; readonly format: LogFormatName };
  readonly logs: {
    readonly forwardLevel: LogLevelName;
    readonly batchMax: number;
    readonly flushIntervalMs: number;
    readonly maxLinesPerSecond: number;
    readonly bufferMax: number;
    readonly files: readonly string[];
    readonly journal: boolean;
  };
  /** Device links from the file, checked by `checkLinks` (durations stay text; each link resolves its own). */
  readonly links: readonly LinkConfig[];
  /** Path patterns a serial link may open, the link's path and its resolved target both (`linkPaths`). */
  readonly linkPaths: readonly string[];
}

/** `updates.installer`, resolved: a script's argv and timeout, or the root directory of ab-slots or agent slots. */
export type UpdateInstallerConfig =
  | {
      readonly type: "script";
      readonly command: readonly string[];
      readonly timeoutMs: number;
      readonly activation: "none" | "reboot";
      readonly rebootCommand?: readonly string[];
      readonly versionCommand?: readonly string[];
    }
  | { readonly type: "ab-slots"; readonly root: string }
  | { readonly type: "agent"; readonly root: string; readonly maxBoots: number };

/** The thresholds of the built-in health checks (`health.*` in the configuration). */
export interface HealthThresholds {
  readonly diskFreeWarnPct: number;
  readonly diskFreeCritPct: number;
  readonly memoryUsedWarnPct: number;
  readonly memoryUsedCritPct: number;
  readonly loadPerCoreWarn: number;
  readonly loadPerCoreCrit: number;
  readonly clockSkewWarnS: number;
  readonly clockSkewCritS: number;
  readonly certDaysWarn: number;
  readonly certDaysCrit: number;
  readonly outboxRowsWarn: number;
  readonly outboxRowsCrit: number;
  readonly outboxAgeWarnMs: number;
  readonly outboxAgeCritMs: number;
}

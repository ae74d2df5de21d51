import { UUID_PATTERN } from "@fieldgate/shared";
import { type Static, Type } from "@sinclair/typebox";

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
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type AgentConfigFile = Static<typeof AgentConfigFile>;

export type LogLevel = AgentConfigFile["log"]["level"];

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
  readonly outbox: { readonly maxRows: number; readonly policy: "drop-oldest" };
  readonly mqtt: { readonly keepaliveS: number; readonly reconnectMinMs: number; readonly reconnectMaxMs: number };
  readonly log: { readonly level: LogLevel };
}

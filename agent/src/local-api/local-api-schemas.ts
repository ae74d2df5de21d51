import { Reading } from "@fieldgate/shared";
import { type Static, Type } from "@sinclair/typebox";

/** `POST /v1/telemetry`: a batch of readings (a single reading object is accepted too). */
export const LocalTelemetryBody = Type.Object(
  { readings: Type.Array(Reading, { minItems: 1, maxItems: 10_000 }) },
  { additionalProperties: false },
);
export type LocalTelemetryBody = Static<typeof LocalTelemetryBody>;

/** `POST /v1/status/{name}`: a named status with an optional time-to-live (`"10m"` or seconds). */
export const LocalStatusBody = Type.Object(
  {
    status: Type.Union(["ok", "warning", "critical", "unknown"].map((s) => Type.Literal(s))),
    message: Type.Optional(Type.String({ maxLength: 1024 })),
    ttl: Type.Optional(
      Type.Union([
        Type.String({ minLength: 1, maxLength: 32, description: "duration such as 90s or 10m" }),
        Type.Number({ exclusiveMinimum: 0, description: "seconds" }),
      ]),
    ),
  },
  { additionalProperties: false },
);
export type LocalStatusBody = Static<typeof LocalStatusBody>;

/** Names of posted statuses; the check is reported as `local.<name>`. */
export const LOCAL_STATUS_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
